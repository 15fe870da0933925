#!/usr/bin/env bash
# `npm test`: set up what the tests need, run every test (unit, host-script, integration with
# real etcd and the sandbox AWS), and end with one line: `tests: N passed, N failed`.
#
# Which etcd (what Kubernetes 1.29–1.33 ships is 3.5):
#   npm test                       every test on etcd 3.5.16 (Debian trixie's, fetched into
#                                  .tmp/etcd-3.5 by scripts/etcd-3.5.sh), then the compatibility
#                                  subset on 3.4.23 (Debian bookworm's, the system's); one count
#   npm test -- ARGS               ARGS go to jest, on 3.5 only
#   QK_ETCD_VERSION=3.4 npm test   every test on 3.4 (3.5 likewise); ARGS go to jest
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The SDK warns that releases after Jan 2027 need Node 22; package-lock.json pins ours.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
mkdir -p .tmp
system_path="$PATH"
etcd35="$(bash scripts/etcd-3.5.sh)"

# What must keep working on 3.4 clusters until they are upgraded (issue 20): the replacement with
# data (a) and blank (b), without quorum (e) and of the leader (f); backup, restore, the survey
# and its parsing, the host scripts, the sandbox. The replacement's other cases (latency,
# duplicates, predecessors, holds, interruptions) do not depend on etcd's version and run on 3.5
# only: the whole file on 3.4 cost 5 of CI's 40 minutes. Likewise the restore's quorum judgement
# over frozen members and its resumption after an interruption (flow logic, ~95 s), and the
# reconciler's quorum-loss recovery (recovery.test.ts: the 3.4 restore itself runs in "two of
# three members dead"); and the sandbox's models of AWS (lifecycle, hooks, volumes, targets, SSM
# agents, latency), which no etcd version changes (~95 s).
compat_34=(test/unit/etcd-parsers.test.ts test/host test/integration/sandbox.test.ts test/integration/replacement.test.ts
  test/integration/backup.test.ts test/integration/restore.test.ts
  -t '^(?!master replacement \(launch hook\) (?!\((a|b|e|f)\) ))(?!disaster-recovery restore (judges quorum|a restore interrupted))(?!sandbox AWS with a real etcd control plane (reports a failing script|knows which SSM agents|makes target health|models lifecycle|models hook expiry|never shows a master|makes an EBS volume|under the AWS latency))')

# Two test files at a time (QK_TEST_WORKERS): most of a sandbox test is waiting on etcd, SSM polls
# and timers, not CPU, so two workers on the 2-core CI machine nearly halve the run. Each file
# has its own sandbox (moto, etcd clusters on free ports, temp dirs named by its worker's pid).
workers=${QK_TEST_WORKERS:-2}
[[ $workers =~ ^[1-8]$ ]] || { echo "QK_TEST_WORKERS must be 1-8, got '$workers'" >&2; exit 2; }

status=0
results=()
rm -f .tmp/jest-results.json .tmp/jest-results-3.4.json
# run_on VERSION RESULTS JEST-ARGS...: jest with that etcd first on PATH (tests, sandbox hosts and
# their host scripts alike).
run_on() {
  local version="$1" out="$2"
  shift 2
  case "$version" in
    3.4) PATH="$system_path" ;;
    3.5) PATH="$etcd35:$system_path" ;;
  esac
  export PATH
  echo "tests run etcd $(etcd --version | sed -n 's/^etcd Version: //p') ($(command -v etcd)): ${*:-every test}" >&2
  rm -f "$out"
  npx jest --maxWorkers="$workers" --json --outputFile="$out" "$@" || status=1
  if [[ -f "$out" ]]; then results+=("$out"); else echo "jest wrote no results for etcd $version" >&2; status=1; fi
}

case "${QK_ETCD_VERSION:-}" in
  "")
    run_on 3.5 .tmp/jest-results.json "$@"
    (($#)) || run_on 3.4 .tmp/jest-results-3.4.json "${compat_34[@]}"
    ;;
  3.4|3.5) run_on "$QK_ETCD_VERSION" .tmp/jest-results.json "$@" ;;
  *) echo "QK_ETCD_VERSION must be 3.4 or 3.5, got '${QK_ETCD_VERSION}'" >&2; exit 2 ;;
esac
if ((${#results[@]})); then
  node scripts/count-tests.js "${results[@]}"
else
  echo "tests: 0 passed, 1 failed"
fi
exit "$status"
