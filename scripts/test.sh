#!/usr/bin/env bash
# `npm test`: set up what the tests need, run every test (unit, host-script, integration with
# real etcd and the sandbox AWS), and end with one line: `tests: N passed, N failed`.
# Extra arguments go to jest (e.g. `npm test -- test/unit`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The SDK warns that releases after Jan 2027 need Node 22; package-lock.json pins ours.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
mkdir -p .tmp
results=.tmp/jest-results.json
rm -f "$results"
status=0
npx jest --runInBand --json --outputFile="$results" "$@" || status=$?
if [[ -f "$results" ]]; then
  node scripts/count-tests.js "$results"
else
  echo "tests: 0 passed, 0 failed (jest wrote no results)"
  [[ $status -ne 0 ]] || status=1
fi
exit "$status"
