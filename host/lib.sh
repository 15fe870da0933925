#!/usr/bin/env bash
# Shared helpers for Quorum Keeper host scripts. Sourced, never run.
#
# Environment (all optional; production uses the defaults):
#   QK_HOST_ROOT     prefix for every host path (default: empty = /). The sandbox points it at a
#                    per-host directory so the same scripts run unchanged on one machine.
#   QK_SERVICE_MODE  systemd (default) | process: how etcd is started and stopped.
#   QK_DEVICE_MODE   block (default) | directory: in directory mode an EBS "device" is a
#                    directory and mounting is a symlink (sandbox only; no root needed).
#   QK_BIN_DIR       directory holding etcd/etcdctl/etcdutl (default: found on PATH).
#   QK_DEVICE_WAIT_SEC  how long a mount waits for the volume's device link (default 20).
# Host configuration lives in ${QK_HOST_ROOT}/etc/quorum-keeper/host.env (see docs/host-scripts.md).

# shellcheck disable=SC2034  # variables are used by the sourcing scripts

QK_ROOT="${QK_HOST_ROOT:-}"
QK_ROOT="${QK_ROOT%/}"
QK_CONF_DIR="${QK_ROOT}/etc/quorum-keeper"
QK_RUN_DIR="${QK_ROOT}/run/quorum-keeper"
QK_LOG_DIR="${QK_ROOT}/var/log/quorum-keeper"
QK_SERVICE_MODE="${QK_SERVICE_MODE:-systemd}"
QK_DEVICE_MODE="${QK_DEVICE_MODE:-block}"
# How long etcd-mount.sh waits for an attached volume's device link to appear (udev), seconds.
QK_DEVICE_WAIT_SEC="${QK_DEVICE_WAIT_SEC:-20}"

# Exit codes shared by every script (documented in docs/host-scripts.md):
readonly QK_EXIT_USAGE=2      # a bad or missing argument; nothing was touched
readonly QK_EXIT_BLANK=3      # the device is blank and formatting was not allowed
readonly QK_EXIT_OWNER=4      # the volume belongs to another cluster/member, or has no marker
readonly QK_EXIT_NODEVICE=5   # the volume's block device is not (yet) present
readonly QK_EXIT_FAILED=6     # an operation failed (see stderr)
readonly QK_EXIT_COPY=7       # the volume is a copy of another member volume (its marker names that one)
readonly QK_EXIT_CORRUPT=8    # a snapshot's data is damaged (not a valid snapshot, trial restore or checksum failed)
readonly QK_EXIT_UNVERIFIED=9 # a snapshot's trial restore gave no verdict (not running, timed out)
readonly QK_EXIT_UNSAFE=10    # not done: the cluster would lose quorum (checked on this host just before)

# qk_need OPTION [VALUE...]: dies unless the option was given a non-empty value.
# Usage in an argument loop:  --name) qk_need "$@"; name="$2"; shift 2 ;;
qk_need() {
  [[ $# -ge 2 && -n "$2" ]] || qk_die "$QK_EXIT_USAGE" "$1 needs a non-empty value (invalid or missing)"
}

qk_log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${QK_SCRIPT:-qk}" "$*" >&2; }
qk_die() { local code="$1"; shift; qk_log "ERROR: $*"; exit "$code"; }

# Strict patterns; keep in sync with lib/validate.ts (test/host/patterns.test.ts holds the two
# sides to the same verdicts, and to the same set of kinds).
qk_pattern() {
  case "$1" in
    memberName|clusterName) echo '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' ;;
    etcdName) echo '^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$' ;; # and no '..' (qk_valid)
    memberIdHex) echo '^[0-9a-f]{1,16}$' ;;
    volumeId) echo '^vol-[0-9a-f]{8}([0-9a-f]{9})?$' ;;
    instanceId) echo '^i-[0-9a-f]{8}([0-9a-f]{9})?$' ;;
    url) echo '^https?://[A-Za-z0-9.-]{1,253}:[0-9]{1,5}$' ;; # a DNS name has at most 253 characters
    absPath) echo '^/[A-Za-z0-9._/-]*$' ;;
    token) echo '^[A-Za-z0-9._-]{1,128}$' ;;
    duration) echo '^[0-9]{1,6}(ms|s|m)$' ;;
    state) echo '^(new|existing)$' ;;
    device) echo '^/dev/(xvd|sd)[a-z]{1,2}$' ;;
    b64url) echo '^[A-Za-z0-9_-]+={0,2}$' ;;
    compressor) echo '^(auto|zstd|gzip)$' ;;
    # A presigned S3 URL, as it arrives base64url-decoded (qk_b64url_url): path and query of
    # RFC 3986 characters, no spaces, quotes, backslashes or brackets.
    presignedUrl) echo '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9._~%/!$&'"'"'()*+,;=:@?-]*$' ;;
    *) return 1 ;;
  esac
}

# Longest accepted value per kind. Kept out of the regexes: glibc compiles a bounded repeat
# like {0,4095} by expansion, which made every check take ~0.3 s ({1,253} costs ~0.3 ms).
# (presignedUrl: the most that a b64url value of 8192 characters decodes to.)
qk_max_len() {
  case "$1" in absPath) echo 4096 ;; b64url) echo 8192 ;; presignedUrl) echo 6144 ;; *) echo 512 ;; esac
}

# qk_valid KIND VALUE: whether VALUE is a valid KIND (fits, one line, matches the pattern, and
# the kind's own rules); if not, QK_WHY says why. An unknown KIND is a bug: exit 2.
QK_WHY=""
qk_valid() {
  local kind="$1" value="$2" pattern max
  pattern="$(qk_pattern "$kind")" || qk_die "$QK_EXIT_USAGE" "internal: unknown pattern $kind"
  max="$(qk_max_len "$kind")"
  QK_WHY=""
  if (( ${#value} > max )); then
    QK_WHY="longer than $max characters"
  elif [[ "$value" == *$'\n'* || ! "$value" =~ $pattern ]]; then
    QK_WHY="$(printf '%q' "${value:0:80}") does not match $pattern"
  elif [[ "$kind" == etcdName && "$value" == *..* ]]; then
    QK_WHY="'..' is not allowed"
  elif [[ "$kind" == absPath && ( "$value" == *"/../"* || "$value" == *"/.." ) ]]; then
    QK_WHY="'..' segments are not allowed"
  elif [[ "$kind" == url ]] && ! (( 10#${value##*:} >= 1 && 10#${value##*:} <= 65535 )); then
    QK_WHY="port out of range"
  fi
  [[ -z "$QK_WHY" ]]
}

# qk_check KIND VALUE FIELD: exit 2 unless VALUE is a valid KIND (qk_valid).
qk_check() {
  qk_valid "$1" "$2" || qk_die "$QK_EXIT_USAGE" "invalid $3: $QK_WHY"
}

# qk_check_urls LIST FIELD: a comma-separated list of URLs.
qk_check_urls() {
  local list="$1" field="$2" u
  [[ -n "$list" ]] || qk_die "$QK_EXIT_USAGE" "missing $field"
  local -a parts
  IFS=',' read -r -a parts <<<"$list"
  for u in "${parts[@]}"; do qk_check url "$u" "$field"; done
}

# qk_check_initial_cluster VALUE: name=url[,name=url...]
qk_check_initial_cluster() {
  local list="$1" item
  [[ -n "$list" && "$list" != *$'\n'* ]] || qk_die "$QK_EXIT_USAGE" "missing initial cluster"
  local -a parts
  IFS=',' read -r -a parts <<<"$list"
  (( ${#parts[@]} <= 16 )) || qk_die "$QK_EXIT_USAGE" "initial cluster: too many members"
  for item in "${parts[@]}"; do
    [[ "$item" == *=* ]] || qk_die "$QK_EXIT_USAGE" "invalid initial cluster item $(printf '%q' "${item:0:80}")"
    qk_check etcdName "${item%%=*}" "initial cluster member name"
    qk_check url "${item#*=}" "initial cluster peer URL"
  done
}

qk_bin() {
  if [[ -n "${QK_BIN_DIR:-}" ]]; then printf '%s/%s' "${QK_BIN_DIR%/}" "$1"; else command -v "$1" || printf '%s' "$1"; fi
}

# Loads host.env: a file of KEY=VALUE lines written at provisioning time. It is parsed, not
# sourced, and only known keys with validated values are accepted.
qk_load_host_env() {
  QK_HOST_IP="127.0.0.1"
  QK_ETCD_SCHEME="http"
  QK_ETCD_PEER_PORT="2380"
  QK_ETCD_CLIENT_PORT="2379"
  QK_ETCD_UNIT="etcd"
  QK_ETCD_CACERT=""
  QK_ETCD_CERT=""
  QK_ETCD_KEY=""
  QK_ETCD_PEER_CERT=""
  QK_ETCD_PEER_KEY=""
  QK_ETCD_CLIENT_CERT=""
  QK_ETCD_CLIENT_KEY=""
  QK_MOUNT_POINT="/var/lib/etcd"
  QK_APISERVER_READYZ="https://127.0.0.1:6443/readyz"
  QK_APISERVER_URL="https://127.0.0.1:6443"
  QK_KUBE_CACERT=""
  QK_KUBE_CERT=""
  QK_KUBE_KEY=""
  QK_KUBE_TOKEN_FILE=""
  local file="${QK_CONF_DIR}/host.env" key value url
  url="$(qk_pattern url)"
  url="${url%\$}" # the URL pattern, open at the end
  [[ -f "$file" ]] || file=/dev/null
  while IFS='=' read -r key value || [[ -n "$key" ]]; do
    [[ -z "$key" || "$key" == \#* ]] && continue
    case "$key" in
      QK_HOST_IP) [[ "$value" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_ETCD_SCHEME) [[ "$value" =~ ^https?$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_ETCD_PEER_PORT|QK_ETCD_CLIENT_PORT) [[ "$value" =~ ^[0-9]{1,5}$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_ETCD_UNIT) [[ "$value" =~ ^[A-Za-z0-9@._-]{1,64}$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_ETCD_CACERT|QK_ETCD_CERT|QK_ETCD_KEY|QK_ETCD_PEER_CERT|QK_ETCD_PEER_KEY|QK_ETCD_CLIENT_CERT|QK_ETCD_CLIENT_KEY|QK_MOUNT_POINT)
        [[ -z "$value" ]] || qk_check absPath "$value" "host.env $key" ;;
      QK_APISERVER_READYZ) [[ "$value" =~ ${url}/readyz$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_APISERVER_URL) [[ "$value" =~ ${url}$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_KUBE_CACERT|QK_KUBE_CERT|QK_KUBE_KEY|QK_KUBE_TOKEN_FILE) [[ -z "$value" ]] || qk_check absPath "$value" "host.env $key" ;;
      *) qk_log "host.env: ignoring unknown key $(printf '%q' "$key")"; continue ;;
    esac
    printf -v "$key" '%s' "$value"
  done <"$file"
  QK_PEER_URL="${QK_ETCD_SCHEME}://${QK_HOST_IP}:${QK_ETCD_PEER_PORT}"
  QK_CLIENT_URL="${QK_ETCD_SCHEME}://${QK_HOST_IP}:${QK_ETCD_CLIENT_PORT}"
  if [[ "$QK_ETCD_SCHEME" == https ]]; then
    local k
    for k in QK_ETCD_CACERT QK_ETCD_CERT QK_ETCD_KEY QK_ETCD_PEER_CERT QK_ETCD_PEER_KEY; do
      [[ -n "${!k}" ]] || qk_die "$QK_EXIT_USAGE" "host.env: QK_ETCD_SCHEME=https needs $k (etcd runs with mutual TLS on client and peer URLs)"
    done
    if [[ -n "$QK_ETCD_CLIENT_CERT" && -z "$QK_ETCD_CLIENT_KEY" || -z "$QK_ETCD_CLIENT_CERT" && -n "$QK_ETCD_CLIENT_KEY" ]]; then
      qk_die "$QK_EXIT_USAGE" "host.env: QK_ETCD_CLIENT_CERT and QK_ETCD_CLIENT_KEY go together"
    fi
  fi
}

# The client certificate etcdctl and curl present to etcd, from host.env, as arrays:
# "${QK_TLS_ARGS[@]}" (etcdctl), "${QK_TLS_CURL[@]}" (curl) and "${QK_TLS_OPENSSL[@]}" (openssl
# s_client). QK_ETCD_CLIENT_CERT/KEY when set (kubeadm: etcd/healthcheck-client), else the server
# certificate (kubeadm's carries client auth too).
qk_tls_args() {
  QK_TLS_ARGS=()
  QK_TLS_CURL=()
  QK_TLS_OPENSSL=()
  if [[ "$QK_ETCD_SCHEME" == https ]]; then
    local cert="${QK_ETCD_CLIENT_CERT:-$QK_ETCD_CERT}" key="${QK_ETCD_CLIENT_KEY:-$QK_ETCD_KEY}"
    QK_TLS_ARGS=(--cacert="${QK_ROOT}${QK_ETCD_CACERT}" --cert="${QK_ROOT}${cert}" --key="${QK_ROOT}${key}")
    QK_TLS_CURL=(--cacert "${QK_ROOT}${QK_ETCD_CACERT}" --cert "${QK_ROOT}${cert}" --key "${QK_ROOT}${key}")
    QK_TLS_OPENSSL=(-cert "${QK_ROOT}${cert}" -key "${QK_ROOT}${key}")
  fi
}

# qk_etcd_env: etcd(ctl) refuses an ETCD*_ variable that shadows a flag it is given: drop them
# all from the environment (QK_* settings stay), and speak the v3 API.
qk_etcd_env() {
  local v
  for v in $(compgen -e); do [[ "$v" == ETCD* ]] && unset "$v"; done
  export ETCDCTL_API=3
}

# qk_offline_tool: the tool for offline snapshot commands: etcdutl where installed (3.5+), else etcdctl.
qk_offline_tool() {
  if command -v "$(qk_bin etcdutl)" >/dev/null 2>&1; then qk_bin etcdutl; else qk_bin etcdctl; fi
}

# The marker etcd-mount.sh writes at the root of a volume it verified (it names cluster and member).
QK_VOLUME_MARKER=".quorum-keeper-volume"

# qk_need_volume DATA_DIR ACTION: dies unless DATA_DIR is outside the volume mount point or a
# verified volume is mounted there; else ACTION (e.g. "start etcd on") would write to the root disk.
qk_need_volume() {
  local mp="${QK_MOUNT_POINT%/}"
  if [[ "$1" == "$mp"/* && ! -f "${QK_ROOT}${mp}/${QK_VOLUME_MARKER}" ]]; then
    qk_die "$QK_EXIT_FAILED" "no verified etcd volume is mounted at $mp (run etcd-mount.sh first); refusing to $2 the root disk"
  fi
}

# qk_b64url_decode VALUE FIELD: the text a base64url argument carries, on stdout (exit 2 if it
# is not base64url). Values that would be awkward on a command line travel this way.
qk_b64url_decode() {
  qk_check b64url "$1" "$2 (base64url)"
  local b64="${1//-/+}"
  b64="${b64//_//}"
  while (( ${#b64} % 4 )); do b64+="="; done
  printf '%s' "$b64" | base64 -d 2>/dev/null || qk_die "$QK_EXIT_USAGE" "invalid $2: not valid base64url"
}

# qk_b64url_url VALUE FIELD: the presigned URL a base64url argument carries, checked, on stdout.
qk_b64url_url() {
  local url
  url="$(qk_b64url_decode "$1" "$2")" || exit
  qk_valid presignedUrl "$url" || qk_die "$QK_EXIT_USAGE" "invalid $2: the decoded value has an unexpected shape"
  printf '%s' "$url"
}

QK_ETCD_PIDFILE="${QK_RUN_DIR}/etcd.pid"

# qk_lock: one mutating step at a time on this host. A retried SSM command (whose first answer
# was lost, so the SDK sent it again) or two flows must never mount, start/stop etcd or restore
# side by side. Waits up to QK_LOCK_WAIT_SEC (default 120 s); released when the script exits.
# Processes that outlive the script (etcd) must not inherit it: start them with {QK_LOCK_FD}>&-.
QK_LOCK_FD=""
qk_lock() {
  command -v flock >/dev/null || qk_die "$QK_EXIT_FAILED" "flock (util-linux) is required on the master"
  mkdir -p "$QK_RUN_DIR"
  exec {QK_LOCK_FD}>>"${QK_RUN_DIR}/host.lock"
  flock -w "${QK_LOCK_WAIT_SEC:-120}" "$QK_LOCK_FD" ||
    qk_die "$QK_EXIT_FAILED" "another Quorum Keeper step still holds ${QK_RUN_DIR}/host.lock"
}

# qk_etcd_pid: prints the pid of the etcd started in process mode, if it is alive.
qk_etcd_pid() {
  [[ -f "$QK_ETCD_PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$QK_ETCD_PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && printf '%s' "$pid"
}

# qk_etcd_running: whether this host's etcd runs (after qk_load_host_env). Under systemd a
# Type=notify unit is `activating` from its start until etcd says READY (it has joined its
# cluster): its process runs, so that counts (`is-active` alone exits 0 only once `active`).
qk_etcd_running() {
  if [[ "$QK_SERVICE_MODE" == process ]]; then qk_etcd_pid >/dev/null; return; fi
  local state
  state="$(systemctl is-active "$QK_ETCD_UNIT" 2>/dev/null || true)"
  [[ "$state" == active || "$state" == activating || "$state" == reloading ]]
}

# qk_etcd_known_stopped: etcd is known NOT to run here — no process (process mode), or its unit
# says inactive or failed. systemctl failing to answer (D-Bus down, a timeout) is no such
# knowledge: the quorum rule counts a member down only on evidence.
qk_etcd_known_stopped() {
  if [[ "$QK_SERVICE_MODE" == process ]]; then ! qk_etcd_pid >/dev/null; return; fi
  local state
  state="$(systemctl is-active "$QK_ETCD_UNIT" 2>/dev/null || true)"
  [[ "$state" == inactive || "$state" == failed ]]
}

# JSON string escaping for the one-line results scripts print on stdout.
qk_json_str() {
  local s="$1"
  s="${s//\\/\\\\}"; s="${s//\"/\\\"}"; s="${s//$'\n'/\\n}"; s="${s//$'\t'/\\t}"
  printf '"%s"' "$s"
}

# --- this member's status (etcd-member.sh status; the survey's local part) ---------------------

# prints true/false from the member's own /health. The NOSPACE alarm is left out
# (?exclude=NOSPACE, etcd-io/etcd#12880, backported to 3.4 in 2021 and answered by 3.4.23 here;
# releases without it ignore the parameter and report the alarm as unhealthy, as before): a
# member out of space still serves reads and membership changes, and recovering from NOSPACE
# needs healthy peers and backups, not an ABANDONed master. The alarm itself is reported by
# `survey` (alarm list) and the probe.
qk_local_health() { # [MAX-SECONDS] (default 3)
  local body
  body="$(curl -s --max-time "${1:-3}" "${QK_TLS_CURL[@]}" "${QK_CLIENT_URL}/health?exclude=NOSPACE" 2>/dev/null || true)"
  if [[ "$body" == *'"health":"true"'* ]]; then printf true; else printf false; fi
}

# The etcd this host would run (its binary's version, e.g. 3.5.16), as a JSON string or null.
qk_binary_version_json() {
  local v
  v="$("$(qk_bin etcd)" --version 2>/dev/null | sed -n 's/^etcd Version: //p' | head -n 1)" || true
  if [[ "$v" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,4}$ ]]; then qk_json_str "$v"; else printf null; fi
}

# The running member's server and cluster versions from its /version (the cluster version is the
# lowest minor of all members: it moves up only once every member runs the newer one), as
# `"serverVersion":…,"clusterVersion":…` (null when etcd does not answer).
qk_running_versions_json() {
  local body server=null cluster=null re='"etcdserver":"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,4})".*"etcdcluster":"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,4})"'
  body="$(curl -s --max-time 2 "${QK_TLS_CURL[@]}" "${QK_CLIENT_URL}/version" 2>/dev/null || true)"
  if [[ "$body" =~ $re ]]; then server="\"${BASH_REMATCH[1]}\"" cluster="\"${BASH_REMATCH[2]}\""; fi
  printf '"serverVersion":%s,"clusterVersion":%s' "$server" "$cluster"
}

# qk_has_data DATA-DIR: does the data dir hold a member's state? Its write-ahead log is what
# makes it one: a backend (member/snap/db) without a WAL — what a member whose first start failed
# leaves — is no member's data, and counting it as data refused its slot forever.
qk_has_data() {
  compgen -G "${QK_ROOT}${1}/member/wal/*.wal" >/dev/null
}

# Set by `etcd-member.sh start --keep-running` when the running etcd was left on an older configuration.
QK_CONFIG_PENDING=false

# The boot guard on etcd's unit (etcd-member.sh): `full` (Quorum Keeper's drop-in: the guard and
# how etcd runs), `unit` (the guard only: an adopted master whose etcd still runs as its AMI set
# it up), `none` (etcd could start at boot on whatever is at the mount point).
qk_guard_state() {
  local f="${QK_ROOT}/etc/systemd/system/${QK_ETCD_UNIT%.service}.service.d/10-quorum-keeper.conf" text
  text="$(cat "$f" 2>/dev/null || true)"
  if [[ "$text" != *"ConditionPathExists=${QK_MOUNT_POINT%/}/${QK_VOLUME_MARKER}"* ]]; then printf none
  elif [[ "$text" == *"--config-file"* ]]; then printf full
  else printf unit; fi
}

qk_status_json() { # DATA-DIR: this member's status as one JSON line
  local data_dir="$1" running=false stopped=false pid="null" health=false versions='"serverVersion":null,"clusterVersion":null'
  if qk_etcd_running; then running=true; health="$(qk_local_health 3)"; versions="$(qk_running_versions_json)"
  elif qk_etcd_known_stopped; then stopped=true; fi
  if [[ "$QK_SERVICE_MODE" == process ]]; then
    pid="$(qk_etcd_pid || printf null)"
  else
    pid="$(systemctl show -p MainPID --value "$QK_ETCD_UNIT" 2>/dev/null || true)"
    [[ "$pid" =~ ^[1-9][0-9]*$ ]] || pid=null
  fi
  printf '{"running":%s,"pid":%s,"healthy":%s,"peerUrl":%s,"clientUrl":%s,"dataDir":%s,"hasData":%s,"etcdVersion":%s,%s,"configPending":%s,"stopped":%s,"guard":"%s"}\n' \
    "$running" "$pid" "$health" "$(qk_json_str "$QK_PEER_URL")" "$(qk_json_str "$QK_CLIENT_URL")" "$(qk_json_str "$data_dir")" \
    "$(qk_has_data "$data_dir" && printf true || printf false)" "$(qk_binary_version_json)" "$versions" "$QK_CONFIG_PENDING" "$stopped" "$(qk_guard_state)"
}
