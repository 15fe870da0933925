#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Guarded etcdctl/etcdutl for remote callers (SSM Run Command). The Lambda builds the argv with
# lib/etcd/commands.ts; this script re-checks it before anything runs:
#   - the subcommand must be one Quorum Keeper uses (allow-list below);
#   - every argument must be made of safe characters (no spaces, quotes or shell syntax);
#   - TLS flags from host.env are added; --endpoints defaults to this host's client URL.
#
#   etcdctl.sh [--tool etcdutl] member list -w json
set -euo pipefail
export QK_SCRIPT=etcdctl
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tool=etcdctl
if [[ "${1-}" == --tool ]]; then
  [[ "${2-}" =~ ^(etcdctl|etcdutl)$ ]] || qk_die "$QK_EXIT_USAGE" "--tool must be etcdctl or etcdutl"
  tool="$2"; shift 2
fi
(($# > 0 && $# <= 32)) || qk_die "$QK_EXIT_USAGE" "expected 1 to 32 arguments"
for a in "$@"; do
  [[ "$a" != *$'\n'* && "$a" != *..* && ${#a} -le 2048 && "$a" =~ ^[A-Za-z0-9._:/=,@+-]+$ ]] || qk_die "$QK_EXIT_USAGE" "refused argument $(printf '%q' "${a:0:80}")"
done

# The first two non-flag words make the subcommand.
words=()
for a in "$@"; do [[ "$a" == -* || "$a" == json ]] || words+=("$a"); done
allowed_second() { # WORD SECOND-WORD-PATTERN
  [[ "${words[1]-}" =~ $2 ]] || qk_die "$QK_EXIT_USAGE" "subcommand '$1 ${words[1]-}' is not allowed"
  sub="$1 ${words[1]}"
}
sub="${words[0]-}"
case "${words[0]-}" in
  member) allowed_second member '^(list|add|remove|update|promote)$' ;;
  endpoint) allowed_second endpoint '^(status|health)$' ;;
  alarm) allowed_second alarm '^(list|disarm)$' ;;
  snapshot) allowed_second snapshot '^(save|status|restore)$' ;;
  move-leader|defrag|version) ;;
  *) qk_die "$QK_EXIT_USAGE" "subcommand '${words[0]-}' is not allowed" ;;
esac
if [[ "$tool" == etcdutl && "$sub" != "snapshot "* && "$sub" != version ]]; then
  qk_die "$QK_EXIT_USAGE" "etcdutl is only used for offline snapshot commands"
fi

qk_load_host_env
qk_tls_args
extra=()
if [[ "$tool" == etcdctl && "${words[0]-}" != snapshot || "${words[1]-}" == save ]]; then
  has_endpoints=0
  for a in "$@"; do [[ "$a" == --endpoints=* ]] && has_endpoints=1; done
  ((has_endpoints)) || extra+=(--endpoints="$QK_CLIENT_URL")
  extra+=("${QK_TLS_ARGS[@]}")
fi
qk_etcd_env
exec "$(qk_bin "$tool")" "${extra[@]}" "$@"
