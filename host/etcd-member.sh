#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Controls the etcd member on this master.
#
#   etcd-member.sh start  --name etcd-a --initial-cluster etcd-a=https://10.0.1.5:2380,... \
#                         --initial-cluster-state new|existing [--token T] [--data-dir /var/lib/etcd/data]
#   etcd-member.sh stop
#   etcd-member.sh status        # JSON: running, pid, urls, local /health, etcd versions (this
#                                # host's binary; the running member's server and cluster versions)
#   etcd-member.sh urls          # JSON: the peer and client URLs this host advertises, its etcd version
#   etcd-member.sh apiserver     # JSON: whether kube-apiserver /readyz answers 200 on this host
#   etcd-member.sh survey [--lease kube-scheduler]... [--certs]
#                                # JSON: everything a flow needs to judge the cluster, in ONE
#                                # SSM round trip: this member's status, and (run side by side
#                                # through this member) member list (linearizable, and this
#                                # member's own serializable view), endpoint status --cluster,
#                                # endpoint health --cluster, alarm list, and the kube-system
#                                # Leases named, each as exit code + base64 stdout/stderr (the
#                                # caller parses them with the same parsers as single commands);
#                                # with --certs, the expiry of the certificate every member
#                                # serves on its client and peer URL (openssl s_client; null:
#                                # not read)
#   etcd-member.sh view [--skip-stale NAME=PEER_URL]
#                                # JSON: member list and endpoint status of every member, in ONE
#                                # round trip, side by side (same encoding as survey). With
#                                # --skip-stale (then `asked` lists the client URLs whose status
#                                # was asked; else it is null: all of them), member NAME is
#                                # not asked unless it already advertises PEER_URL: its old
#                                # incarnation is dead, and dialling it costs the whole timeout.
#
# The peer/client URLs come from host.env (this host's IP and ports), never from the caller,
# so a member always advertises the address it really listens on. etcd is configured with
# --config-file only (etcd refuses ETCD_* variables that shadow flags). `start` refuses to
# run when the data dir is under the volume mount point but no verified volume is mounted
# there: etcd would otherwise create an empty data dir on the root disk. It also installs a
# drop-in for etcd's unit so that the init system never starts etcd without that volume either
# (at boot, or when a stopped master is started again after its volume was detached): etcd on an
# empty data dir would rejoin under the same member ID with an empty log (forgotten votes).
set -euo pipefail
export QK_SCRIPT=etcd-member
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cmd="${1-}"
[[ $# -gt 0 ]] && shift
name="" initial_cluster="" state="" token="quorum-keeper" data_dir="" skip_stale=""
leases=() read_certs=0
while (($#)); do
  case "$1" in
    --lease) qk_need "$@"; leases+=("$2"); shift 2 ;;
    --certs) read_certs=1; shift ;;
    --skip-stale) qk_need "$@"; skip_stale="$2"; shift 2 ;;
    --name) qk_need "$@"; name="$2"; shift 2 ;;
    --initial-cluster) qk_need "$@"; initial_cluster="$2"; shift 2 ;;
    --initial-cluster-state) qk_need "$@"; state="$2"; shift 2 ;;
    --token) qk_need "$@"; token="$2"; shift 2 ;;
    --data-dir) qk_need "$@"; data_dir="$2"; shift 2 ;;
    *) qk_die "$QK_EXIT_USAGE" "unknown argument $(printf '%q' "${1:0:80}")" ;;
  esac
done
qk_load_host_env
qk_tls_args
data_dir="${data_dir:-${QK_MOUNT_POINT%/}/data}"
conf="${QK_CONF_DIR}/etcd.conf.yml"
pidfile="$QK_ETCD_PIDFILE"

# prints true/false from the member's own /health. The NOSPACE alarm is left out
# (?exclude=NOSPACE, etcd-io/etcd#12880, backported to 3.4 in 2021 and answered by 3.4.23 here;
# releases without it ignore the parameter and report the alarm as unhealthy, as before): a
# member out of space still serves reads and membership changes, and recovering from NOSPACE
# needs healthy peers and backups, not an ABANDONed master. The alarm itself is reported by
# `survey` (alarm list) and the probe.
local_health() { # [MAX-SECONDS] (default 3)
  local body
  body="$(curl -s --max-time "${1:-3}" "${QK_TLS_CURL[@]}" "${QK_CLIENT_URL}/health?exclude=NOSPACE" 2>/dev/null || true)"
  if [[ "$body" == *'"health":"true"'* ]]; then printf true; else printf false; fi
}

write_config() {
  local listen_client="$QK_CLIENT_URL"
  [[ "$QK_HOST_IP" == 127.0.0.1 ]] || listen_client="${QK_CLIENT_URL},${QK_ETCD_SCHEME}://127.0.0.1:${QK_ETCD_CLIENT_PORT}"
  mkdir -p "$QK_CONF_DIR"
  {
    printf 'name: %s\n' "$name"
    printf 'data-dir: %s\n' "${QK_ROOT}${data_dir}"
    printf 'listen-peer-urls: %s\n' "$QK_PEER_URL"
    printf 'listen-client-urls: %s\n' "$listen_client"
    printf 'initial-advertise-peer-urls: %s\n' "$QK_PEER_URL"
    printf 'advertise-client-urls: %s\n' "$QK_CLIENT_URL"
    printf 'initial-cluster: %s\n' "$initial_cluster"
    printf 'initial-cluster-state: %s\n' "$state"
    printf 'initial-cluster-token: %s\n' "$token"
    # In --config-file mode etcd does not apply its flag defaults: restore the ones that matter.
    printf 'enable-grpc-gateway: true\n'
    printf 'initial-election-tick-advance: true\n'
    if [[ "$QK_ETCD_SCHEME" == https ]]; then
      printf 'client-transport-security:\n  cert-file: %s\n  key-file: %s\n  trusted-ca-file: %s\n  client-cert-auth: true\n' \
        "${QK_ROOT}${QK_ETCD_CERT}" "${QK_ROOT}${QK_ETCD_KEY}" "${QK_ROOT}${QK_ETCD_CACERT}"
      printf 'peer-transport-security:\n  cert-file: %s\n  key-file: %s\n  trusted-ca-file: %s\n  client-cert-auth: true\n' \
        "${QK_ROOT}${QK_ETCD_PEER_CERT}" "${QK_ROOT}${QK_ETCD_PEER_KEY}" "${QK_ROOT}${QK_ETCD_CACERT}"
    fi
  } >"${conf}.tmp"
  mv "${conf}.tmp" "$conf"
}

stop_etcd() {
  if [[ "$QK_SERVICE_MODE" != process ]]; then systemctl stop "$QK_ETCD_UNIT"; return; fi
  local pid i
  pid="$(qk_etcd_pid)" || { rm -f "$pidfile"; return 0; }
  kill -TERM "$pid"
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.1
  done
  qk_log "etcd (pid $pid) did not stop within 20 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# The boot guard and how the unit runs etcd: a drop-in for etcd's unit. [Unit]: RequiresMountsFor
# orders etcd after the volume's mount where one is declared; ConditionPathExists skips the start
# unless the marker of the verified volume is there (the bare mount point on the root disk has
# none). [Service]: ExecStart runs etcd with the configuration this script writes, whatever the
# AMI's unit says (its flags would be ignored under --config-file anyway); TimeoutStartSec=infinity
# because etcd says READY (Type=notify units) only once it has joined its cluster: a member
# starting while its peers are still down (a restore starts members one by one; after a full
# outage the first master up waits for the others) must not be killed by systemd's default 90 s.
# Idempotent: written, and systemd reloaded, only when it changes. In process mode (host tests)
# the same files are written under QK_HOST_ROOT with the unit itself.
install_boot_guard() {
  local mp="${QK_MOUNT_POINT%/}" unit="${QK_ETCD_UNIT%.service}.service" want
  local dir="${QK_ROOT}/etc/systemd/system/${unit}.d"
  want="$(printf '%s\n' '# Written by Quorum Keeper (etcd-member.sh start): etcd starts only on its verified volume.' \
    '[Unit]' "RequiresMountsFor=${mp}" "ConditionPathExists=${mp}/${QK_VOLUME_MARKER}" \
    '[Service]' 'ExecStart=' "ExecStart=$(qk_bin etcd) --config-file ${conf}" 'TimeoutStartSec=infinity')"
  if [[ "$QK_SERVICE_MODE" == process ]]; then
    mkdir -p "${QK_ROOT}/etc/systemd/system"
    printf '[Unit]\nDescription=etcd (sandbox stand-in)\n[Service]\nExecStart=%s --config-file %s\n[Install]\nWantedBy=multi-user.target\n' \
      "$(qk_bin etcd)" "$conf" >"${QK_ROOT}/etc/systemd/system/${unit}"
  fi
  [[ "$(cat "${dir}/10-quorum-keeper.conf" 2>/dev/null || true)" == "$want" ]] && return 0
  mkdir -p "$dir"
  printf '%s\n' "$want" >"${dir}/10-quorum-keeper.conf.tmp"
  mv "${dir}/10-quorum-keeper.conf.tmp" "${dir}/10-quorum-keeper.conf"
  qk_log "installed the boot guard ${dir#"$QK_ROOT"}/10-quorum-keeper.conf"
  [[ "$QK_SERVICE_MODE" == process ]] || systemctl daemon-reload
}

start_etcd() {
  # --no-block: a Type=notify unit's start job lasts until etcd has joined its cluster, which a
  # member waiting for its peers does not do yet; the caller waits (bounded) on its own terms.
  if [[ "$QK_SERVICE_MODE" != process ]]; then systemctl start --no-block "$QK_ETCD_UNIT"; return; fi
  mkdir -p "$QK_RUN_DIR" "$QK_LOG_DIR"
  local etcd
  etcd="$(qk_bin etcd)"
  # setsid: etcd gets its own session, so it survives the end of this command's process group;
  # it must not keep this step's host lock (qk_lock) open for its lifetime.
  setsid "$etcd" --config-file "$conf" >>"${QK_LOG_DIR}/etcd.log" 2>&1 </dev/null {QK_LOCK_FD}>&- &
  printf '%s\n' "$!" >"$pidfile"
}


# The etcd this host would run (its binary's version, e.g. 3.5.16), as a JSON string or null.
binary_version_json() {
  local v
  v="$("$(qk_bin etcd)" --version 2>/dev/null | sed -n 's/^etcd Version: //p' | head -n 1)" || true
  if [[ "$v" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,4}$ ]]; then qk_json_str "$v"; else printf null; fi
}

# The running member's server and cluster versions from its /version (the cluster version is the
# lowest minor of all members: it moves up only once every member runs the newer one), as
# `"serverVersion":…,"clusterVersion":…` (null when etcd does not answer).
running_versions_json() {
  local body server=null cluster=null re='"etcdserver":"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,4})".*"etcdcluster":"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,4})"'
  body="$(curl -s --max-time 2 "${QK_TLS_CURL[@]}" "${QK_CLIENT_URL}/version" 2>/dev/null || true)"
  if [[ "$body" =~ $re ]]; then server="\"${BASH_REMATCH[1]}\"" cluster="\"${BASH_REMATCH[2]}\""; fi
  printf '"serverVersion":%s,"clusterVersion":%s' "$server" "$cluster"
}

status_json() {
  local running=false pid="null" health=false versions='"serverVersion":null,"clusterVersion":null'
  if qk_etcd_running; then running=true; health="$(local_health)"; versions="$(running_versions_json)"; fi
  if [[ "$QK_SERVICE_MODE" == process ]]; then
    pid="$(qk_etcd_pid || printf null)"
  else
    pid="$(systemctl show -p MainPID --value "$QK_ETCD_UNIT" 2>/dev/null || true)"
    [[ "$pid" =~ ^[1-9][0-9]*$ ]] || pid=null
  fi
  printf '{"running":%s,"pid":%s,"healthy":%s,"peerUrl":%s,"clientUrl":%s,"dataDir":%s,"hasData":%s,"etcdVersion":%s,%s}\n' \
    "$running" "$pid" "$health" "$(qk_json_str "$QK_PEER_URL")" "$(qk_json_str "$QK_CLIENT_URL")" "$(qk_json_str "$data_dir")" \
    "$([[ -f "${QK_ROOT}${data_dir}/member/snap/db" ]] && printf true || printf false)" "$(binary_version_json)" "$versions"
}

# One query's result as JSON: {"rc":N,"out":"<base64 stdout>","err":"<base64 stderr, last 1 KB>"}.
# SSM keeps only the first 24,000 characters of stdout: six queries' stderr at 1 KB each (1,368
# characters in base64) leave the answers room; etcdctl's error is on its last lines. (The
# certificates add ~80 characters per URL: at most 32 URLs, typically 6.)
query_json() { # DIR NAME
  printf '{"rc":%s,"out":"%s","err":"%s"}' "$(cat "$1/$2.rc" 2>/dev/null || printf 124)" \
    "$(base64 -w0 <"$1/$2.out")" "$(tail -c 1024 "$1/$2.err" | base64 -w0)"
}

run_query() { # DIR NAME COMMAND... (records exit code, stdout, stderr)
  local d="$1" n="$2"
  shift 2
  "$@" >"$d/$n.out" 2>"$d/$n.err" && printf 0 >"$d/$n.rc" || printf '%s' "$?" >"$d/$n.rc"
}

# member_urls FILE clientURLs|peerURLs: the first URL of that kind of every member in a member
# list JSON answer (etcd's gateway), one a line, each a valid URL (anything else is left out); at
# most 16. Only started members have client URLs; every member has a peer URL.
member_urls() {
  local u n=0
  while IFS= read -r u; do
    qk_valid url "$u" && ((n++ < 16)) && printf '%s\n' "$u"
  done < <(grep -o "\"$2\":[[:space:]]*\\[[[:space:]]*\"[^\"]*\"" "$1" 2>/dev/null | sed 's/.*"\([^"]*\)"$/\1/')
  return 0
}
member_client_urls() { member_urls "$1" clientURLs; }

# cert_end URL FILE: the expiry (notAfter, epoch seconds) of the certificate the TLS server at URL
# presents, written to FILE; nothing when it cannot be read within 3 s. openssl presents this
# host's client certificate: etcd's listeners require one (without it etcd still shows its own,
# but logs a rejected connection per read). What etcd serves, not what is on disk: etcd reads its
# certificate files at every handshake, so a renewed file shows at once.
cert_end() {
  local out end date='[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4} GMT'
  out="$(timeout 3 openssl s_client -connect "${1#https://}" "${QK_TLS_OPENSSL[@]}" </dev/null 2>/dev/null)" || true
  # OpenSSL 3 prints each certificate's validity, the server's own first ("v:NotBefore: …;
  # NotAfter: …"): one process per URL (each costs ~30 ms of CPU). Older ones do not: x509 reads
  # the certificate s_client printed.
  if [[ "$out" =~ v:NotBefore:\ [^\;]*\;\ NotAfter:\ ($date) ]]; then
    end="${BASH_REMATCH[1]}"
  else
    end="$(openssl x509 -noout -enddate 2>/dev/null <<<"$out")" || true
    end="${end#notAfter=}"
  fi
  [[ "$end" =~ ^${date}$ ]] || return 0
  end="$(date -u -d "$end" +%s 2>/dev/null)" || return 0
  [[ ! "$end" =~ ^[0-9]{1,12}$ ]] || printf '%s' "$end" >"$2"
}

survey() {
  local local_status tmp etcdctl q l first=1 auth=() certs=() certs_asked=0 i u
  local_status="$(status_json)"
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: the trap runs after this function returns
  trap "rm -rf '$tmp'" EXIT
  if qk_etcd_running; then
    qk_tls_args
    qk_etcd_env
    # (--endpoints is a list flag: given twice, etcdctl asks both lists; so it is given once.)
    etcdctl=("$(qk_bin etcdctl)" "${QK_TLS_ARGS[@]}" --dial-timeout=2s --command-timeout=3s)
    # etcd 3.5 serves `member list` linearizably (through the leader): without quorum it times out,
    # where 3.4 answered from the member's own state — and so does `endpoint status|health
    # --cluster`, which starts with a member list. This member's own view first, through its HTTP
    # gateway with linearizable=false (3.4 accepts and ignores the field; a few ms, no leader
    # needed): the caller takes it when the linearizable list failed, and status and health ask
    # the client URLs it names (each checked against the URL pattern) instead of `--cluster`.
    run_query "$tmp" localMembers curl -sS --max-time 3 "${QK_TLS_CURL[@]}" -X POST \
      -d '{"linearizable":false}' "${QK_CLIENT_URL}/v3/cluster/member/list"
    local endpoints=() scope=(--endpoints="$QK_CLIENT_URL" --cluster)
    mapfile -t endpoints < <(member_client_urls "$tmp/localMembers.out")
    ((${#endpoints[@]} == 0)) || scope=(--endpoints="$(IFS=,; printf '%s' "${endpoints[*]}")")
    run_query "$tmp" members "${etcdctl[@]}" --endpoints="$QK_CLIENT_URL" member list -w json &
    run_query "$tmp" status "${etcdctl[@]}" "${scope[@]}" endpoint status -w json &
    run_query "$tmp" health "${etcdctl[@]}" "${scope[@]}" endpoint health -w json &
    run_query "$tmp" alarms "${etcdctl[@]}" --endpoints="$QK_CLIENT_URL" alarm list -w json &
    # --certs: the certificate every member serves on its client and peer URL (from the view
    # above; this member's own URLs without one), each read side by side with the queries. Plain
    # http, or no openssl on this master: none read (unknown), and the survey goes on.
    if ((read_certs)) && [[ "$QK_ETCD_SCHEME" == https ]] && command -v openssl >/dev/null 2>&1; then
      certs_asked=1
      local peer_urls=()
      mapfile -t peer_urls < <(member_urls "$tmp/localMembers.out" peerURLs)
      for u in "${endpoints[@]:-$QK_CLIENT_URL}"; do [[ "$u" != https://* ]] || certs+=("client $u"); done
      for u in "${peer_urls[@]:-$QK_PEER_URL}"; do [[ "$u" != https://* ]] || certs+=("peer $u"); done
      for i in "${!certs[@]}"; do cert_end "${certs[i]#* }" "$tmp/cert-$i" & done
    fi
  fi
  if [[ -n "$QK_KUBE_CACERT" ]]; then auth+=(--cacert "${QK_ROOT}${QK_KUBE_CACERT}"); else auth+=(-k); fi
  [[ -z "$QK_KUBE_CERT" ]] || auth+=(--cert "${QK_ROOT}${QK_KUBE_CERT}" --key "${QK_ROOT}${QK_KUBE_KEY}")
  local token=""
  if [[ -n "$QK_KUBE_TOKEN_FILE" && ${#leases[@]} -gt 0 ]]; then
    token="$(tr -d '\n' <"${QK_ROOT}${QK_KUBE_TOKEN_FILE}")"
    [[ "$token" =~ ^[A-Za-z0-9._-]{1,4096}$ ]] || qk_die "$QK_EXIT_FAILED" "the token in $QK_KUBE_TOKEN_FILE is not a bearer token"
  fi
  # The token travels in a curl config read from stdin, never on a command line.
  for l in "${leases[@]}"; do
    if [[ -n "$token" ]]; then
      printf 'header = "Authorization: Bearer %s"\n' "$token" |
        run_query "$tmp" "lease-$l" curl -sS --max-time 3 -K - "${auth[@]}" -w '\n%{http_code}' \
          "${QK_APISERVER_URL}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/$l" &
    else
      run_query "$tmp" "lease-$l" curl -sS --max-time 3 "${auth[@]}" -w '\n%{http_code}' \
        "${QK_APISERVER_URL}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/$l" &
    fi
  done
  wait
  printf '{"local":%s,"queries":{' "$local_status"
  if [[ -f "$tmp/members.out" ]]; then
    for q in members localMembers status health alarms; do
      ((first)) || printf ','
      first=0
      printf '"%s":%s' "$q" "$(query_json "$tmp" "$q")"
    done
  fi
  printf '},"leases":{'
  first=1
  for l in "${leases[@]}"; do
    ((first)) || printf ','
    first=0
    printf '"%s":%s' "$l" "$(query_json "$tmp" "lease-$l")"
  done
  # Certificates: [{kind, url, notAfter (epoch seconds, null: unreadable)}], or null: not read.
  printf '},"certs":'
  if ((certs_asked)); then
    printf '['
    first=1
    for i in "${!certs[@]}"; do
      ((first)) || printf ','
      first=0
      u=null
      [[ ! -s "$tmp/cert-$i" ]] || read -r u <"$tmp/cert-$i" || true
      printf '{"kind":"%s","notAfter":%s,"url":' "${certs[i]%% *}" "$u"
      qk_json_str "${certs[i]#* }"
      printf '}'
    done
    printf ']'
  else
    printf null
  fi
  printf '}\n'
}

# Member list, then the status of the members worth asking: one SSM round trip for the two
# reads every membership decision starts from.
view() {
  local tmp etcdctl line id started mname peers clients learner skip_name="" skip_url="" asked=() first=1 u
  if [[ -n "$skip_stale" ]]; then
    skip_name="${skip_stale%%=*}" skip_url="${skip_stale#*=}"
    qk_check etcdName "$skip_name" "--skip-stale member name"
    qk_check url "$skip_url" "--skip-stale peer URL"
  fi
  qk_etcd_running || qk_die "$QK_EXIT_FAILED" "etcd is not running on this host"
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: the trap runs after this function returns
  trap "rm -rf '$tmp'" EXIT
  qk_tls_args
  qk_etcd_env
  # (--endpoints is a list flag: given twice, etcdctl asks both lists; so it is given once.)
  etcdctl=("$(qk_bin etcdctl)" "${QK_TLS_ARGS[@]}" --dial-timeout=2s)
  run_query "$tmp" members "${etcdctl[@]}" --endpoints="$QK_CLIENT_URL" --command-timeout=3s member list -w json &
  if [[ -z "$skip_name" ]]; then
    # Every member is worth asking: both reads side by side ("asked" is then null: the caller
    # expects an answer from every started member of the list).
    run_query "$tmp" status "${etcdctl[@]}" --endpoints="$QK_CLIENT_URL" --command-timeout=2s endpoint status --cluster -w json &
    wait
    printf '{"members":%s,"status":%s,"asked":null}\n' "$(query_json "$tmp" members)" "$(query_json "$tmp" status)"
    return
  fi
  # The simple format ("id, started, name, peer urls, client urls, is learner") is what bash can
  # split safely; the JSON answer above is what the caller parses (64-bit IDs intact).
  "${etcdctl[@]}" --endpoints="$QK_CLIENT_URL" --command-timeout=3s member list -w simple >"$tmp/simple" 2>"$tmp/simple.err" || true
  wait
  while IFS= read -r line; do
    IFS='|' read -r id started mname peers clients learner <<<"${line//, /|}"
    : "$id" "$started" "$learner"
    [[ -n "$clients" ]] || continue # not started yet: nothing to ask
    [[ "$mname" == "$skip_name" && ",${peers}," != *",${skip_url},"* ]] && continue
    asked+=("${clients%%,*}")
  done <"$tmp/simple"
  if ((${#asked[@]})); then
    run_query "$tmp" status "${etcdctl[@]}" --endpoints="$(IFS=,; printf '%s' "${asked[*]}")" --command-timeout=2s endpoint status -w json
  else
    printf '' >"$tmp/status.out"; printf '' >"$tmp/status.err"; printf 0 >"$tmp/status.rc"
  fi
  printf '{"members":%s,"status":%s,"asked":[' "$(query_json "$tmp" members)" "$(query_json "$tmp" status)"
  for u in "${asked[@]}"; do
    ((first)) || printf ','
    first=0
    qk_json_str "$u"
  done
  printf ']}\n'
}

case "$cmd" in
  start)
    qk_check etcdName "$name" "member name"
    qk_check_initial_cluster "$initial_cluster"
    qk_check state "$state" "initial cluster state"
    qk_check token "$token" "cluster token"
    qk_check absPath "$data_dir" "data dir"
    [[ ",${initial_cluster}," == *",${name}=${QK_PEER_URL},"* ]] ||
      qk_die "$QK_EXIT_USAGE" "initial cluster does not list this host as ${name}=${QK_PEER_URL}"
    qk_lock
    qk_need_volume "$data_dir" "start etcd on"
    old="$(cat "$conf" 2>/dev/null || true)"
    write_config
    install_boot_guard
    # The initial-cluster* settings only matter to a member's first start (an existing data dir
    # ignores them): a change there alone never restarts a running etcd (a needless election
    # when it leads; the repair of a neighbour used to do exactly that).
    if qk_etcd_running && [[ "$(grep -v '^initial-cluster' <<<"$old")" == "$(grep -v '^initial-cluster' "$conf")" ]]; then
      qk_log "etcd already running with this configuration"
    else
      if qk_etcd_running; then qk_log "configuration changed; restarting etcd"; stop_etcd; fi
      mkdir -p "${QK_ROOT}${data_dir}"
      chmod 700 "${QK_ROOT}${data_dir}"
      start_etcd
      # Wait briefly (10 s) for the process to either come up or die (a bad config dies at once);
      # a member whose peers are down stays unhealthy (etcd 3.5's /health then waits for its read:
      # each ask is cut at 1 s). A start job queued with --no-block may show `inactive` for a
      # moment before it runs (seconds on a loaded host); one still inactive after 5 s was skipped (a failed Condition: the
      # boot guard) or refused.
      logs="${QK_LOG_DIR}/etcd.log"
      [[ "$QK_SERVICE_MODE" == process ]] || logs="systemctl status ${QK_ETCD_UNIT} and journalctl -u ${QK_ETCD_UNIT}"
      started=$SECONDS
      while ((SECONDS - started < 10)); do
        if ! qk_etcd_running; then
          [[ "$QK_SERVICE_MODE" != process && $((SECONDS - started)) -lt 5 && "$(systemctl is-active "$QK_ETCD_UNIT" 2>/dev/null || true)" == inactive ]] ||
            qk_die "$QK_EXIT_FAILED" "etcd exited during start-up, or its unit did not start it; see $logs"
        elif [[ "$(local_health 1)" == true ]]; then
          break
        fi
        sleep 0.2
      done
    fi
    status_json
    ;;
  stop)
    qk_lock
    stop_etcd
    status_json
    ;;
  status) status_json ;;
  apiserver)
    code="$(curl -sk -o /dev/null -w '%{http_code}' --max-time 5 "$QK_APISERVER_READYZ" 2>/dev/null || true)"
    printf '{"ready":%s,"httpStatus":%s}\n' "$([[ "$code" == 200 ]] && printf true || printf false)" "$(qk_json_str "${code:-000}")"
    ;;
  survey)
    (( ${#leases[@]} <= 4 )) || qk_die "$QK_EXIT_USAGE" "at most 4 --lease names"
    for l in "${leases[@]}"; do
      [[ "$l" =~ ^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$ ]] || qk_die "$QK_EXIT_USAGE" "invalid lease name $(printf '%q' "${l:0:80}")"
    done
    survey
    ;;
  view) view ;;
  urls) printf '{"peerUrl":%s,"clientUrl":%s,"hostIp":%s,"etcdVersion":%s}\n' "$(qk_json_str "$QK_PEER_URL")" "$(qk_json_str "$QK_CLIENT_URL")" "$(qk_json_str "$QK_HOST_IP")" "$(binary_version_json)" ;;
  *) qk_die "$QK_EXIT_USAGE" "usage: etcd-member.sh start|stop|status|urls|apiserver|survey|view [options]" ;;
esac
