#!/usr/bin/env bash
# `npm test`: set up what the tests need, run every test (unit, host-script, integration with
# real etcd and the sandbox AWS), and end with one line: `tests: N passed, N failed`.
# Extra arguments go to jest (e.g. `npm test -- test/unit`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Which etcd the tests run (QK_ETCD_VERSION): 3.4 is Debian bookworm's (the system's); 3.5 is
# 3.5.16 from Debian trixie, fetched into .tmp/etcd-3.5 (scripts/etcd-3.5.sh) and put first on
# PATH for the tests, the sandbox hosts and their host scripts alike.
case "${QK_ETCD_VERSION:-3.4}" in
  3.4) ;;
  3.5) PATH="$(bash scripts/etcd-3.5.sh):$PATH"; export PATH ;;
  *) echo "QK_ETCD_VERSION must be 3.4 or 3.5, got '${QK_ETCD_VERSION}'" >&2; exit 2 ;;
esac
echo "tests run etcd $(etcd --version | sed -n 's/^etcd Version: //p') ($(command -v etcd))" >&2
# The SDK warns that releases after Jan 2027 need Node 22; package-lock.json pins ours.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
mkdir -p .tmp
results=.tmp/jest-results.json
rm -f "$results"
status=0
# Two test files at a time (QK_TEST_WORKERS): most of a sandbox test is waiting on etcd, SSM polls
# and timers, not CPU, so two workers on the 2-core CI machine nearly halve the run. Each file
# has its own sandbox (moto, etcd clusters on free ports, temp dirs named by its worker's pid).
workers=${QK_TEST_WORKERS:-2}
[[ $workers =~ ^[1-8]$ ]] || { echo "QK_TEST_WORKERS must be 1-8, got '$workers'" >&2; exit 2; }
npx jest --maxWorkers="$workers" --json --outputFile="$results" "$@" || status=$?
if [[ -f "$results" ]]; then
  node scripts/count-tests.js "$results"
else
  echo "tests: 0 passed, 0 failed (jest wrote no results)"
  [[ $status -ne 0 ]] || status=1
fi
exit "$status"
