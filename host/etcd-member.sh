#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Controls the etcd member on this master.
#
#   etcd-member.sh start  --name etcd-a --initial-cluster etcd-a=https://10.0.1.5:2380,... \
#                         --initial-cluster-state new|existing [--token T] [--data-dir /var/lib/etcd/data]
#   etcd-member.sh stop [--if-quorum-without-me]
#   etcd-member.sh status        # JSON: running, pid, urls, local /health, etcd versions (this
#                                # host's binary; the running member's server and cluster versions)
#   etcd-member.sh urls          # JSON: the peer and client URLs this host advertises, its etcd version
#   etcd-member.sh apiserver     # JSON: whether kube-apiserver /readyz answers 200 on this host
#   etcd-member.sh guard         # JSON: the boot guard alone on etcd's unit (adopt: etcd keeps
#                                # running as its AMI set it up; `start` later writes the full one)
#   (the read-only survey and view of the cluster are etcd-query.sh's)
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
name="" initial_cluster="" state="" token="quorum-keeper" data_dir="" keep_running=0 if_safe=0
while (($#)); do
  case "$1" in
    --if-quorum-without-me) if_safe=1; shift ;;
    --keep-running) keep_running=1; shift ;;
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

# quorum_without_me: may this member stop now? The other voters, asked from here at this moment,
# must still make a quorum without it (a stopped member stays a voter). The flow's gate read the
# cluster before the drain — the deregistration delay, minutes — and a member that failed since
# would make this stop the one that loses quorum. Prints what it found; exit 1 when not safe.
# (JSON read with sed: the hosts need no JSON tool. `endpoint status --cluster` lists the members
# that answered and fails for the others: those count as not following.)
quorum_without_me() {
  local etcdctl list status me="" leader="" voters learners followers=0 item id lead
  etcdctl="$(qk_bin etcdctl)"
  list="$("$etcdctl" "${QK_TLS_ARGS[@]}" --endpoints="$QK_CLIENT_URL" --command-timeout=3s member list -w json 2>/dev/null)" ||
    { printf 'this member did not answer a member list'; return 1; }
  status="$("$etcdctl" "${QK_TLS_ARGS[@]}" --endpoints="$QK_CLIENT_URL" --command-timeout=3s endpoint status --cluster -w json 2>/dev/null || true)"
  voters="$(grep -o '"ID":[0-9]*' <<<"$list" | wc -l)"
  learners="$(grep -o '"isLearner":true' <<<"$list" | wc -l)"
  voters=$((voters - learners))
  local -a items=()
  mapfile -t items <<<"${status//\},\{\"Endpoint\"/$'}\n{\"Endpoint\"'}"
  for item in "${items[@]}"; do
    [[ "$item" == *"\"Endpoint\":\"${QK_CLIENT_URL}\""* ]] || continue
    me="$(sed -n 's/.*"member_id":\([0-9]*\).*/\1/p' <<<"$item")"
    leader="$(sed -n 's/.*"leader":\([0-9]*\).*/\1/p' <<<"$item")"
  done
  [[ -n "$me" && -n "$leader" && "$leader" != 0 ]] || { printf 'this member reports no leader'; return 1; }
  for item in "${items[@]}"; do
    id="$(sed -n 's/.*"member_id":\([0-9]*\).*/\1/p' <<<"$item")"
    lead="$(sed -n 's/.*"leader":\([0-9]*\).*/\1/p' <<<"$item")"
    [[ -n "$id" && "$id" != "$me" && "$lead" == "$leader" && "$item" != *'"isLearner":true'* ]] && followers=$((followers + 1))
  done
  printf '%d of the %d other voters follow the leader; quorum of %d voters is %d' "$followers" "$((voters - 1))" "$voters" "$((voters / 2 + 1))"
  ((followers >= voters / 2 + 1))
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
  if [[ "$(cat "${dir}/10-quorum-keeper.conf" 2>/dev/null || true)" != "$want" ]]; then
    mkdir -p "$dir"
    printf '%s\n' "$want" >"${dir}/10-quorum-keeper.conf.tmp"
    mv "${dir}/10-quorum-keeper.conf.tmp" "${dir}/10-quorum-keeper.conf"
    qk_log "installed the boot guard ${dir#"$QK_ROOT"}/10-quorum-keeper.conf"
    [[ "$QK_SERVICE_MODE" == process ]] || systemctl daemon-reload
  fi
  [[ "$QK_SERVICE_MODE" == process ]] && return 0
  # Started at boot: with the guard (the verified volume's mount, its marker) that is safe, and it
  # is how a rebooted master's member comes back by itself (etcd-mount.sh mounts the volume then).
  # Every start (idempotent): a master whose guard predates this, or whose enable failed once.
  systemctl enable "$unit" >/dev/null 2>&1 || qk_log "could not enable ${unit} (no [Install] section?): after a reboot the reconciler starts etcd"
}

# The guard alone ([Unit]: only on the verified volume), for a master whose etcd Quorum Keeper did
# not start (adopt): its unit keeps its own ExecStart, since Quorum Keeper's configuration file does
# not exist there until its first start. Never replaces a drop-in that is there (the full one).
install_guard_only() {
  local mp="${QK_MOUNT_POINT%/}" unit="${QK_ETCD_UNIT%.service}.service"
  local dir="${QK_ROOT}/etc/systemd/system/${unit}.d"
  if [[ -e "${dir}/10-quorum-keeper.conf" ]]; then printf present; return 0; fi
  mkdir -p "$dir"
  printf '%s\n' '# Written by Quorum Keeper (etcd-member.sh guard, adopt): etcd starts only on its verified volume.' \
    '[Unit]' "RequiresMountsFor=${mp}" "ConditionPathExists=${mp}/${QK_VOLUME_MARKER}" >"${dir}/10-quorum-keeper.conf.tmp"
  mv "${dir}/10-quorum-keeper.conf.tmp" "${dir}/10-quorum-keeper.conf"
  qk_log "installed the boot guard ${dir#"$QK_ROOT"}/10-quorum-keeper.conf (the guard only: etcd's unit is the AMI's)"
  [[ "$QK_SERVICE_MODE" == process ]] || systemctl daemon-reload
  printf installed
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
    # What the running etcd was started with (a copy kept at each start); before that copy
    # existed, the file as it was.
    old="$(cat "${conf}.running" 2>/dev/null || cat "$conf" 2>/dev/null || true)"
    write_config
    install_boot_guard
    # The initial-cluster* settings only matter to a member's first start (an existing data dir
    # ignores them): a change there alone never restarts a running etcd (a needless election
    # when it leads; the repair of a neighbour used to do exactly that).
    if qk_etcd_running && [[ "$(grep -v '^initial-cluster' <<<"$old")" == "$(grep -v '^initial-cluster' "$conf")" ]]; then
      qk_log "etcd already running with this configuration"
    elif qk_etcd_running && ((keep_running)); then
      # A repair of a running member (--keep-running): a restart would cost the cluster a voter
      # (with another member down, its quorum), so the new configuration waits for etcd's next
      # start (the boot guard's unit reads this file) and the answer says so.
      QK_CONFIG_PENDING=true
      qk_log "configuration differs from the running etcd's; not restarted (--keep-running): applied at its next start"
    else
      if qk_etcd_running; then qk_log "configuration changed; restarting etcd"; stop_etcd; fi
      # A member dir without a WAL (a first start that failed) is no member's state: etcd would
      # start a new member over its stale backend. Kept aside (never deleted), out of etcd's way.
      if [[ -d "${QK_ROOT}${data_dir}/member" ]] && ! qk_has_data "$data_dir"; then
        aside="${data_dir}.nowal-$(date +%s)"
        mkdir -p "${QK_ROOT}${aside}"
        mv "${QK_ROOT}${data_dir}/member" "${QK_ROOT}${aside}/member"
        qk_log "set aside ${data_dir}/member (a backend without a write-ahead log) at ${aside}/member"
      fi
      mkdir -p "${QK_ROOT}${data_dir}"
      chmod 700 "${QK_ROOT}${data_dir}"
      start_etcd
      cp "$conf" "${conf}.running"
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
        elif [[ "$(qk_local_health 1)" == true ]]; then
          break
        fi
        sleep 0.2
      done
    fi
    qk_status_json "$data_dir"
    ;;
  stop)
    qk_lock
    if ((if_safe)) && qk_etcd_running; then
      found="$(quorum_without_me)" || qk_die "$QK_EXIT_UNSAFE" "etcd NOT stopped: stopping it now would lose quorum (${found})"
      qk_log "stopping etcd: ${found}"
    fi
    stop_etcd
    qk_status_json "$data_dir"
    ;;
  status) qk_status_json "$data_dir" ;;
  guard)
    qk_lock
    result="$(install_guard_only)"
    printf '{"result":"%s","guard":"%s"}\n' "$result" "$(qk_guard_state)"
    ;;
  apiserver)
    code="$(curl -sk -o /dev/null -w '%{http_code}' --max-time 5 "$QK_APISERVER_READYZ" 2>/dev/null || true)"
    printf '{"ready":%s,"httpStatus":%s}\n' "$([[ "$code" == 200 ]] && printf true || printf false)" "$(qk_json_str "${code:-000}")"
    ;;
  urls) printf '{"peerUrl":%s,"clientUrl":%s,"hostIp":%s,"etcdVersion":%s}\n' "$(qk_json_str "$QK_PEER_URL")" "$(qk_json_str "$QK_CLIENT_URL")" "$(qk_json_str "$QK_HOST_IP")" "$(qk_binary_version_json)" ;;
  *) qk_die "$QK_EXIT_USAGE" "usage: etcd-member.sh start|stop|status|urls|apiserver|guard [options] (survey and view: etcd-query.sh)" ;;
esac
