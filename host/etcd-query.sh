#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Reads the cluster through this master's etcd member, read-only, in ONE SSM round trip each.
#
#   etcd-query.sh survey [--lease kube-scheduler]... [--certs]
#                                # JSON: everything a flow needs to judge the cluster: this
#                                # member's status, and (run side by side through this member)
#                                # member list (linearizable, and this member's own serializable
#                                # view), endpoint status --cluster, endpoint health --cluster,
#                                # alarm list, and the kube-system Leases named, each as exit code
#                                # + base64 stdout/stderr (the caller parses them with the same
#                                # parsers as single commands); with --certs, the expiry of the
#                                # certificate every member serves on its client and peer URL
#                                # (openssl s_client; null: not read)
#   etcd-query.sh view [--skip-stale NAME=PEER_URL]
#                                # JSON: member list and endpoint status of every member, side by
#                                # side (same encoding as survey). With --skip-stale (then `asked`
#                                # lists the client URLs whose status was asked; else it is null:
#                                # all of them), member NAME is not asked unless it already
#                                # advertises PEER_URL: its old incarnation is dead, and dialling it
#                                # costs the whole timeout.
#
# Split from etcd-member.sh (which controls the member: start, stop, status, urls, apiserver).
set -euo pipefail
export QK_SCRIPT=etcd-query
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cmd="${1-}"
[[ $# -gt 0 ]] && shift
skip_stale="" leases=() read_certs=0
while (($#)); do
  case "$1" in
    --lease) qk_need "$@"; leases+=("$2"); shift 2 ;;
    --certs) read_certs=1; shift ;;
    --skip-stale) qk_need "$@"; skip_stale="$2"; shift 2 ;;
    *) qk_die "$QK_EXIT_USAGE" "unknown argument $(printf '%q' "${1:0:80}")" ;;
  esac
done
qk_load_host_env
qk_tls_args
data_dir="${QK_MOUNT_POINT%/}/data"

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
  local_status="$(qk_status_json "$data_dir")"
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
  survey)
    (( ${#leases[@]} <= 4 )) || qk_die "$QK_EXIT_USAGE" "at most 4 --lease names"
    for l in "${leases[@]}"; do
      [[ "$l" =~ ^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$ ]] || qk_die "$QK_EXIT_USAGE" "invalid lease name $(printf '%q' "${l:0:80}")"
    done
    survey
    ;;
  view) view ;;
  *) qk_die "$QK_EXIT_USAGE" "usage: etcd-query.sh survey|view [options]" ;;
esac
