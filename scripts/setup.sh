#!/usr/bin/env bash
# Makes this machine ready for `npm test` and `npm run demo`, or says exactly what is missing.
#   - node modules: `npm ci` when node_modules is missing or older than package-lock.json
#   - etcd 3.4 (Debian etcd-server + etcd-client), curl and openssl: installed with apt-get when
#     absent (needs root; otherwise the exact command to run is printed)
#   - etcd 3.5.16 (Debian trixie's packages, unpacked into .tmp/etcd-3.5; the system's 3.4 stays):
#     scripts/etcd-3.5.sh, when missing
#   - moto_server: required, not installable here (PyPI is unreachable): fail loudly
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "installing node modules (npm ci)"
  npm ci --no-audit --no-fund >&2
fi

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${missing[@]}" >&2
  else
    say "missing: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi

if ! command -v moto_server >/dev/null 2>&1; then
  say "moto_server (moto 5.x in server mode) is not on PATH. The sandbox needs it to emulate AWS."
  say "It is preinstalled on Quorum Keeper dev/CI machines; elsewhere: pip install 'moto[server]==5.*'"
  exit 1
fi
etcd35="$(bash scripts/etcd-3.5.sh)"
say "ready: $("$etcd35/etcd" --version | sed -n 1p) (.tmp/etcd-3.5) and $(etcd --version | sed -n 1p) (system), moto_server at $(command -v moto_server)"
