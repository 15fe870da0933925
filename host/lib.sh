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
# Host configuration lives in ${QK_HOST_ROOT}/etc/quorum-keeper/host.env (see docs/host-scripts.md).

# shellcheck disable=SC2034  # variables are used by the sourcing scripts

QK_ROOT="${QK_HOST_ROOT:-}"
QK_ROOT="${QK_ROOT%/}"
QK_CONF_DIR="${QK_ROOT}/etc/quorum-keeper"
QK_RUN_DIR="${QK_ROOT}/run/quorum-keeper"
QK_LOG_DIR="${QK_ROOT}/var/log/quorum-keeper"
QK_SERVICE_MODE="${QK_SERVICE_MODE:-systemd}"
QK_DEVICE_MODE="${QK_DEVICE_MODE:-block}"

# Exit codes shared by every script (documented in docs/host-scripts.md):
readonly QK_EXIT_USAGE=2      # a bad or missing argument; nothing was touched
readonly QK_EXIT_BLANK=3      # the device is blank and formatting was not allowed
readonly QK_EXIT_OWNER=4      # the volume belongs to another cluster/member, or has no marker
readonly QK_EXIT_NODEVICE=5   # the volume's block device is not (yet) present
readonly QK_EXIT_FAILED=6     # an operation failed (see stderr)

# qk_need OPTION [VALUE...]: dies unless the option was given a non-empty value.
# Usage in an argument loop:  --name) qk_need "$@"; name="$2"; shift 2 ;;
qk_need() {
  [[ $# -ge 2 && -n "$2" ]] || qk_die "$QK_EXIT_USAGE" "$1 needs a non-empty value (invalid or missing)"
}

qk_log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${QK_SCRIPT:-qk}" "$*" >&2; }
qk_die() { local code="$1"; shift; qk_log "ERROR: $*"; exit "$code"; }

# Strict patterns; keep in sync with lib/validate.ts.
qk_pattern() {
  case "$1" in
    memberName|clusterName) echo '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' ;;
    memberIdHex) echo '^[0-9a-f]{1,16}$' ;;
    volumeId) echo '^vol-[0-9a-f]{8}([0-9a-f]{9})?$' ;;
    instanceId) echo '^i-[0-9a-f]{8}([0-9a-f]{9})?$' ;;
    url) echo '^https?://[A-Za-z0-9.-]+:[0-9]{1,5}$' ;;
    absPath) echo '^/[A-Za-z0-9._/-]*$' ;;
    token) echo '^[A-Za-z0-9._-]{1,128}$' ;;
    duration) echo '^[0-9]{1,6}(ms|s|m)$' ;;
    state) echo '^(new|existing)$' ;;
    device) echo '^/dev/(xvd|sd)[a-z]{1,2}$' ;;
    b64url) echo '^[A-Za-z0-9_-]+={0,2}$' ;;
    compressor) echo '^(auto|zstd|gzip)$' ;;
    *) return 1 ;;
  esac
}

# Longest accepted value per kind. Kept out of the regexes: glibc compiles a bounded repeat
# like {0,4095} by expansion, which made every check take ~0.3 s.
qk_max_len() {
  case "$1" in absPath) echo 4096 ;; b64url) echo 8192 ;; *) echo 512 ;; esac
}

# qk_check KIND VALUE FIELD: exit 2 unless VALUE matches KIND's pattern (and fits on one line).
qk_check() {
  local kind="$1" value="$2" field="$3" pattern
  pattern="$(qk_pattern "$kind")" || qk_die "$QK_EXIT_USAGE" "internal: unknown pattern $kind"
  if (( ${#value} > $(qk_max_len "$kind") )); then
    qk_die "$QK_EXIT_USAGE" "invalid $field: longer than $(qk_max_len "$kind") characters"
  fi
  if [[ "$value" == *$'\n'* || ! "$value" =~ $pattern ]]; then
    qk_die "$QK_EXIT_USAGE" "invalid $field: $(printf '%q' "${value:0:80}") does not match $pattern"
  fi
  if [[ "$kind" == absPath && ( "$value" == *"/../"* || "$value" == *"/.." ) ]]; then
    qk_die "$QK_EXIT_USAGE" "invalid $field: '..' segments are not allowed"
  fi
  if [[ "$kind" == url ]]; then
    local port="${value##*:}"
    (( 10#$port >= 1 && 10#$port <= 65535 )) || qk_die "$QK_EXIT_USAGE" "invalid $field: port out of range"
  fi
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
    qk_check memberName "${item%%=*}" "initial cluster member name"
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
  QK_MOUNT_POINT="/var/lib/etcd"
  QK_APISERVER_READYZ="https://127.0.0.1:6443/readyz"
  QK_APISERVER_URL="https://127.0.0.1:6443"
  QK_KUBE_CACERT=""
  QK_KUBE_CERT=""
  QK_KUBE_KEY=""
  QK_KUBE_TOKEN_FILE=""
  local file="${QK_CONF_DIR}/host.env" key value
  [[ -f "$file" ]] || file=/dev/null
  while IFS='=' read -r key value || [[ -n "$key" ]]; do
    [[ -z "$key" || "$key" == \#* ]] && continue
    case "$key" in
      QK_HOST_IP) [[ "$value" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_ETCD_SCHEME) [[ "$value" =~ ^https?$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_ETCD_PEER_PORT|QK_ETCD_CLIENT_PORT) [[ "$value" =~ ^[0-9]{1,5}$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_ETCD_UNIT) [[ "$value" =~ ^[A-Za-z0-9@._-]{1,64}$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_ETCD_CACERT|QK_ETCD_CERT|QK_ETCD_KEY|QK_ETCD_PEER_CERT|QK_ETCD_PEER_KEY|QK_MOUNT_POINT)
        [[ -z "$value" ]] || qk_check absPath "$value" "host.env $key" ;;
      QK_APISERVER_READYZ) [[ "$value" =~ ^https?://[A-Za-z0-9.-]+:[0-9]{1,5}/readyz$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_APISERVER_URL) [[ "$value" =~ ^https?://[A-Za-z0-9.-]+:[0-9]{1,5}$ ]] || qk_die "$QK_EXIT_USAGE" "host.env: bad $key" ;;
      QK_KUBE_CACERT|QK_KUBE_CERT|QK_KUBE_KEY|QK_KUBE_TOKEN_FILE) [[ -z "$value" ]] || qk_check absPath "$value" "host.env $key" ;;
      *) qk_log "host.env: ignoring unknown key $(printf '%q' "$key")"; continue ;;
    esac
    printf -v "$key" '%s' "$value"
  done <"$file"
  QK_PEER_URL="${QK_ETCD_SCHEME}://${QK_HOST_IP}:${QK_ETCD_PEER_PORT}"
  QK_CLIENT_URL="${QK_ETCD_SCHEME}://${QK_HOST_IP}:${QK_ETCD_CLIENT_PORT}"
}

# etcdctl TLS flags from host.env, as an array: "${QK_TLS_ARGS[@]}"
qk_tls_args() {
  QK_TLS_ARGS=()
  if [[ -n "$QK_ETCD_CACERT" ]]; then
    QK_TLS_ARGS=(--cacert="${QK_ROOT}${QK_ETCD_CACERT}" --cert="${QK_ROOT}${QK_ETCD_CERT}" --key="${QK_ROOT}${QK_ETCD_KEY}")
  fi
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

# qk_etcd_running: whether this host's etcd runs (after qk_load_host_env).
qk_etcd_running() {
  if [[ "$QK_SERVICE_MODE" == process ]]; then qk_etcd_pid >/dev/null; else systemctl is-active --quiet "$QK_ETCD_UNIT"; fi
}

# JSON string escaping for the one-line results scripts print on stdout.
qk_json_str() {
  local s="$1"
  s="${s//\\/\\\\}"; s="${s//\"/\\\"}"; s="${s//$'\n'/\\n}"; s="${s//$'\t'/\\t}"
  printf '"%s"' "$s"
}
