#!/usr/bin/env bash
# Records the etcdctl / etcdutl / HTTP-gateway outputs that test/unit/etcd-parsers.test.ts parses,
# from a throw-away local cluster run with the etcd binaries in BIN_DIR, into OUT_DIR:
#
#   bash scripts/record-etcd-fixtures.sh .tmp/etcd-3.5/usr/bin test/fixtures/etcd-3.5
#   bash scripts/record-etcd-fixtures.sh /usr/bin test/fixtures/etcd-3.4 gateway
#
# Mode "all" (the default) writes every file; mode "gateway" only the HTTP gateway's member lists
# and, as gateway-member-list-etcdctl.json, etcdctl's member list of the same cluster (so their
# IDs can be compared): how the 3.4 gateway files were added next to 3.4 files recorded earlier.
#
# The situations are those of test/fixtures/etcd-3.4 (same file names): a 3-member cluster a, b, c
# (leader a) on 127.0.0.1, client ports BASE+91..93 and peer ports BASE+101..103 (BASE is
# $BASE_PORT, default 30700: 30791.., 30801..); a learner added (peer BASE+104) but never started,
# its failed promote, its removal; 20 keys put; a snapshot saved from b; a defrag of a; leadership
# moved a -> b, then a move-leader sent to a (no longer the leader); a member update (a, same peer
# URL); status and health of a plus a port where nothing listens (BASE+99); b and c killed (a
# without quorum) for the "no-leader" files; and a single-member cluster (client BASE+95, peer BASE+105, 64 KiB quota)
# filled up to its NOSPACE alarm. The HTTP gateway's member list (`linearizable:false`) is taken on
# the healthy cluster and on a without quorum.
#
# Where etcd 3.5 differs: `snapshot status` runs through etcdutl when BIN_DIR has it, and
# `member list` without quorum fails in 3.5 (it is linearizable) — its stderr is kept as
# member-list-no-leader.err and no .json is written when stdout is empty; with etcdutl, etcdctl's
# deprecated `snapshot status` is kept too (snapshot-status-etcdctl-deprecated.json / .err). With
# RAW_DIR set, every command's raw stdout, stderr and exit code are copied there (to compare versions).
#
# Members run under setsid, their data in a mktemp dir; both are removed on exit, whatever happens.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 || ! "${3:-all}" =~ ^(all|gateway)$ ]]; then
  printf 'usage: %s BIN_DIR OUT_DIR [all|gateway]\n' "$0" >&2
  exit 2
fi
bin="$(cd "$1" && pwd)"
out="$2"
mode="${3:-all}"
base="${BASE_PORT:-30700}"
if ! [[ "$base" =~ ^[0-9]+$ ]] || ((base < 30000 || base + 105 > 30999)); then
  echo "BASE_PORT must keep every port in 30000-30999" >&2
  exit 2
fi
for b in etcd etcdctl; do [[ -x "$bin/$b" ]] || { echo "$bin/$b not found" >&2; exit 2; }; done

# A clean client environment: no ETCD* variable may change what etcdctl prints.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^ETCD' || true)
export ETCDCTL_API=3

say() { printf 'record: %s\n' "$*" >&2; }

tmp="$(mktemp -d /tmp/qk-etcd-fixtures-XXXXXX)"
declare -A pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

raw="$tmp/raw" stage="$tmp/out"
mkdir -p "$raw" "$stage"

port_free() { ! ss -Htln "sport = :$1" | grep -q .; }
for p in $((base + 91)) $((base + 92)) $((base + 93)) $((base + 95)) $((base + 99)) \
  $((base + 101)) $((base + 102)) $((base + 103)) $((base + 104)) $((base + 105)); do
  port_free "$p" || { echo "port $p is in use: pick another BASE_PORT" >&2; exit 1; }
done

url() { printf 'http://127.0.0.1:%s' "$1"; }
ca="$(url $((base + 91)))" cb="$(url $((base + 92)))" cc="$(url $((base + 93)))"
pa="$(url $((base + 101)))" pb="$(url $((base + 102)))" pc="$(url $((base + 103)))"
learner_peer="$(url $((base + 104)))"
dead="$(url $((base + 99)))"
cn="$(url $((base + 95)))" pn="$(url $((base + 105)))"
all="$ca,$cb,$cc"
token=qk-fixtures

ctl() { "$bin/etcdctl" "$@"; }

# start_member NAME CLIENT_URL PEER_URL INITIAL_CLUSTER [extra etcd flags...]
start_member() {
  local name=$1 client=$2 peer=$3 cluster=$4
  shift 4
  setsid "$bin/etcd" --name "$name" --data-dir "$tmp/$name" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$cluster" --initial-cluster-token "$token" --initial-cluster-state new \
    "$@" >"$tmp/$name.log" 2>&1 </dev/null &
  pids[$name]=$!
}

wait_healthy() {
  local i
  for ((i = 0; i < 60; i++)); do
    ctl --endpoints="$1" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "$1 did not become healthy; logs in $tmp" >&2
  tail -n 20 "$tmp"/*.log >&2
  return 1
}

member_id() { ctl --endpoints="$all" member list -w simple | awk -F', ' -v n="$1" '$3 == n { print $1 }'; }
leader_endpoint() {
  local ep
  for ep in "$ca" "$cb" "$cc"; do
    [[ "$(ctl --endpoints="$ep" endpoint status -w simple 2>/dev/null | awk -F', ' '{ print $5 }')" == true ]] && { printf '%s\n' "$ep"; return 0; }
  done
  return 1
}

# rec NAME STDOUT_FILE|- STDERR_FILE|- COMMAND...: runs COMMAND, keeps its stdout / stderr as the
# named fixtures ("-": not a fixture), and logs the exit code. STDOUT_FILE "+x" means stdout and
# stderr together (2>&1) into x, as a shell user would see them.
rec() {
  local name=$1 o=$2 e=$3 rc
  shift 3
  set +e
  if [[ "$o" == +* ]]; then
    "$@" >"$raw/$name.all" 2>&1
    rc=$?
    cp "$raw/$name.all" "$stage/${o#+}"
  else
    "$@" >"$raw/$name.out" 2>"$raw/$name.err"
    rc=$?
    [[ "$o" == - ]] || cp "$raw/$name.out" "$stage/$o"
    [[ "$e" == - ]] || cp "$raw/$name.err" "$stage/$e"
  fi
  set -e
  printf '%s\n' "$rc" >"$raw/$name.rc"
  say "$name: exit $rc"
}

say "etcd $("$bin/etcd" --version | sed -n 's/^etcd Version: //p') from $bin, data in $tmp"
initial="a=$pa,b=$pb,c=$pc"
start_member a "$ca" "$pa" "$initial"
start_member b "$cb" "$pb" "$initial"
start_member c "$cc" "$pc" "$initial"
for ep in "$ca" "$cb" "$cc"; do wait_healthy "$ep"; done
id_a="$(member_id a)" id_b="$(member_id b)" id_c="$(member_id c)"
say "members a=$id_a b=$id_b c=$id_c"
if [[ "$(leader_endpoint)" != "$ca" ]]; then
  ctl --endpoints="$all" move-leader "$id_a" >/dev/null
  sleep 1
fi
[[ "$(leader_endpoint)" == "$ca" ]] || { echo "a is not the leader" >&2; exit 1; }
# etcd refuses a member add ("unhealthy cluster") until the leader has been connected to every
# voting member for 5 s (strict reconfig check).
sleep 6

# Healthy cluster.
rec member-list-3 member-list-3.json - ctl --endpoints="$all" member list -w json
rec endpoint-status-cluster endpoint-status-cluster.json - ctl --endpoints="$ca" endpoint status --cluster -w json
rec endpoint-health-cluster endpoint-health-cluster.json - ctl --endpoints="$ca" endpoint health --cluster -w json
rec gateway-member-list gateway-member-list.json - curl -s -X POST "$ca/v3/cluster/member/list" -d '{"linearizable":false}'

# A learner added but never started: promote refused, then removed.
rec member-add-learner member-add-learner.json - ctl --endpoints="$all" member add d --learner --peer-urls="$learner_peer" -w json
rec member-list-unstarted-learner member-list-unstarted-learner.json - ctl --endpoints="$all" member list -w json
id_d="$(member_id '')"
[[ -n "$id_d" ]] || { echo "the learner was not added" >&2; exit 1; }
rec member-promote-not-ready member-promote-not-ready.out member-promote-not-ready.err ctl --endpoints="$all" member promote "$id_d"
rec member-remove member-remove.json - ctl --endpoints="$all" member remove "$id_d" -w json

# Data, a snapshot of it, a defrag.
for i in $(seq 1 20); do ctl --endpoints="$all" put "k$i" "v$i" >/dev/null; done
snap="$tmp/snap.db"
rec snapshot-save +snapshot-save.out - ctl --endpoints="$cb" snapshot save "$snap"
if [[ -x "$bin/etcdutl" ]]; then
  rec snapshot-status snapshot-status.json - "$bin/etcdutl" snapshot status "$snap" -w json
  rec snapshot-status-etcdctl snapshot-status-etcdctl-deprecated.json snapshot-status-etcdctl-deprecated.err \
    ctl snapshot status "$snap" -w json
else
  rec snapshot-status snapshot-status.json - ctl snapshot status "$snap" -w json
fi
rec defrag +defrag.out - ctl --endpoints="$ca" defrag

# Leadership a -> b, then move-leader sent to a alone (no longer the leader); a member update.
rec move-leader +move-leader.out - ctl --endpoints="$all" move-leader "$id_b"
sleep 1
rec move-leader-not-leader +move-leader-not-leader.out - ctl --endpoints="$ca" move-leader "$id_c"
rec member-update member-update.json - ctl --endpoints="$all" member update "$id_a" --peer-urls="$pa" -w json

# One endpoint answering, one where nothing listens.
rec endpoint-status-unreachable endpoint-status-unreachable.json endpoint-status-unreachable.err ctl --endpoints="$ca,$dead" endpoint status -w json
rec endpoint-health-unreachable endpoint-health-unreachable.json endpoint-health-unreachable.err ctl --endpoints="$ca,$dead" endpoint health -w json

# b and c dead: a has no quorum and no leader.
for m in b c; do
  kill -KILL "${pids[$m]}"
  wait "${pids[$m]}" 2>/dev/null || true
  unset "pids[$m]"
done
sleep 4
rec member-list-no-leader - - ctl --endpoints="$ca" member list -w json
if [[ -s "$raw/member-list-no-leader.out" ]]; then cp "$raw/member-list-no-leader.out" "$stage/member-list-no-leader.json"; fi
if [[ -s "$raw/member-list-no-leader.err" ]]; then cp "$raw/member-list-no-leader.err" "$stage/member-list-no-leader.err"; fi
rec endpoint-status-no-leader endpoint-status-no-leader.json endpoint-status-no-leader.err ctl --endpoints="$ca" endpoint status -w json
rec endpoint-health-no-leader endpoint-health-no-leader.json endpoint-health-no-leader.err ctl --endpoints="$ca" endpoint health -w json
rec gateway-member-list-no-quorum gateway-member-list-no-quorum.json - curl -s -X POST "$ca/v3/cluster/member/list" -d '{"linearizable":false}'

# A single member with a 64 KiB quota, filled until NOSPACE.
start_member n "$cn" "$pn" "n=$pn" --quota-backend-bytes=65536
wait_healthy "$cn"
big="$(head -c 16384 /dev/zero | tr '\0' x)"
for i in $(seq 1 40); do
  ctl --endpoints="$cn" put "big$i" "$big" >/dev/null 2>"$raw/nospace-put.err" || break
done
say "NOSPACE put: $(tail -n 1 "$raw/nospace-put.err")"
rec alarm-list-nospace alarm-list-nospace.json - ctl --endpoints="$cn" alarm list -w json
rec endpoint-status-nospace endpoint-status-nospace.json - ctl --endpoints="$cn" endpoint status -w json

mkdir -p "$out"
if [[ "$mode" == gateway ]]; then
  cp "$stage/gateway-member-list.json" "$stage/gateway-member-list-no-quorum.json" "$out/"
  cp "$stage/member-list-3.json" "$out/gateway-member-list-etcdctl.json"
else
  cp "$stage"/* "$out/"
fi
if [[ -n "${RAW_DIR:-}" ]]; then
  mkdir -p "$RAW_DIR"
  cp "$raw"/* "$RAW_DIR/"
fi
say "done: $out"
