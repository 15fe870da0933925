#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Disaster-recovery restore of this master's etcd member from a snapshot in S3. etcd must be
# stopped first (etcd-member.sh stop); the member is started afterwards by etcd-member.sh start
# with --initial-cluster-state new and the same token.
#
#   etcd-restore.sh inspect  [--data-dir /var/lib/etcd/data]
#   etcd-restore.sh restore  --work-dir DIR --url-b64 B64URL --sha256 HEX --compressor zstd|gzip
#                            --name etcd-a --initial-cluster etcd-a=URL,... --token T [--data-dir D]
#                            [--bump-revision N]
#   etcd-restore.sh rollback --token T [--data-dir D]
#   etcd-restore.sh verify   --revision R
#   etcd-restore.sh preflight --work-dir DIR --size BYTES --raw-size BYTES --compressor zstd|gzip
#
# inspect: whether etcd runs, and the revision of the member's current data (snapshot status on
#   its bolt DB), so the operator learns how much newer data a restore will set aside.
# restore: downloads the snapshot from a presigned GET URL, checks its SHA-256, decompresses,
#   `snapshot restore`s it into <data>.restoring-<T>, then moves the current data dir ASIDE to
#   <data>.pre-restore-<T> (never deleted) and the restored one into place. Idempotent per token:
#   a member already restored with <T> answers "already-restored". Downloads are removed.
#   --bump-revision N (etcd's disaster-recovery guide): the restored revision is raised by N and
#   marked compacted, so watchers (kube-apiserver's caches, controllers) never see revisions go
#   backwards — they get "compacted" and list again. Only where the tool has the flags (etcdutl
#   3.5.10+); the answer's `bumped` says by how much (0: not bumped).
# rollback: puts <data>.pre-restore-<T> back (the restored dir goes to <data>.failed-restore-<T>).
# verify: after the restored cluster started: the current revision and the number of keys at
#   revision R (linearizable read through this host's member).
# preflight: read-only, before anything is stopped anywhere: is this master ready to restore a
#   snapshot of SIZE bytes (RAW-SIZE uncompressed)? A verified volume mounted, an offline tool
#   (etcdutl, or etcdctl 3.4), the decompressor, room in the work dir for the download and the
#   raw file, room on the volume for the restored data dir beside the current one. One JSON line,
#   {"ready":bool,"problems":[...]}; exit 0 either way (the flow refuses with every master's list).
set -euo pipefail
export QK_SCRIPT=etcd-restore
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cmd="${1-}"
[[ $# -gt 0 ]] && shift
work_dir="" url_b64="" sha="" compressor="" name="" initial_cluster="" token="" data_dir="" revision="" bump=0 size="" raw_size=""
while (($#)); do
  case "$1" in
    --size) qk_need "$@"; size="$2"; shift 2 ;;
    --raw-size) qk_need "$@"; raw_size="$2"; shift 2 ;;
    --bump-revision) qk_need "$@"; bump="$2"; shift 2 ;;
    --work-dir) qk_need "$@"; work_dir="$2"; shift 2 ;;
    --url-b64) qk_need "$@"; url_b64="$2"; shift 2 ;;
    --sha256) qk_need "$@"; sha="$2"; shift 2 ;;
    --compressor) qk_need "$@"; compressor="$2"; shift 2 ;;
    --name) qk_need "$@"; name="$2"; shift 2 ;;
    --initial-cluster) qk_need "$@"; initial_cluster="$2"; shift 2 ;;
    --token) qk_need "$@"; token="$2"; shift 2 ;;
    --data-dir) qk_need "$@"; data_dir="$2"; shift 2 ;;
    --revision) qk_need "$@"; revision="$2"; shift 2 ;;
    *) qk_die "$QK_EXIT_USAGE" "unknown argument $(printf '%q' "${1:0:80}")" ;;
  esac
done
[[ "$cmd" =~ ^(inspect|restore|rollback|verify|preflight)$ ]] || qk_die "$QK_EXIT_USAGE" "usage: etcd-restore.sh inspect|restore|rollback|verify|preflight [options]"
qk_load_host_env
data_dir="${data_dir:-${QK_MOUNT_POINT%/}/data}"
qk_check absPath "$data_dir" "data dir"
data="${QK_ROOT}${data_dir}"
etcdctl="$(qk_bin etcdctl)"
tool="$(qk_offline_tool)"
qk_etcd_env

db_revision() { # DATA-DIR → revision of its bolt DB, or null
  local st
  if [[ -f "$1/member/snap/db" ]] && st="$("$tool" snapshot status "$1/member/snap/db" -w json 2>/dev/null)"; then
    sed -n 's/.*"revision":\([0-9]*\).*/\1/p' <<<"$st"
  else
    printf null
  fi
}

running_json() { if qk_etcd_running; then printf true; else printf false; fi; }

# free_bytes PATH: bytes available to root on PATH's filesystem (its nearest existing ancestor).
free_bytes() {
  local p="$1"
  while [[ ! -e "$p" && "$p" != / ]]; do p="$(dirname "$p")"; done
  df -P -B1 "$p" 2>/dev/null | awk 'NR == 2 { print $4 }' || true
}

# can_bump: does the offline tool have --bump-revision (etcdutl 3.5.10+)? Help read whole: a
# `| grep -q` would end the pipe early and pipefail turn the tool's SIGPIPE into "no".
can_bump() {
  local help
  help="$("$tool" snapshot restore --help 2>&1 || true)"
  [[ "$help" == *--bump-revision* ]]
}

case "$cmd" in
  preflight)
    qk_check absPath "$work_dir" "work dir"
    [[ "$size" =~ ^[0-9]{1,15}$ && "$raw_size" =~ ^[0-9]{1,15}$ ]] || qk_die "$QK_EXIT_USAGE" "invalid --size/--raw-size: expected numbers"
    problems=()
    mp="${QK_MOUNT_POINT%/}"
    [[ -f "${QK_ROOT}${mp}/${QK_VOLUME_MARKER}" ]] || problems+=("no verified etcd volume is mounted at ${mp}")
    command -v "$tool" >/dev/null 2>&1 || problems+=("no offline etcd tool (etcdutl) on this master")
    [[ "$compressor" != zstd ]] || command -v zstd >/dev/null 2>&1 || problems+=("zstd is not installed (the snapshot is zstd-compressed)")
    need_work=$(( size + raw_size + raw_size / 10 ))
    have_work="$(free_bytes "${QK_ROOT}${work_dir}" || true)"
    [[ "$have_work" =~ ^[0-9]+$ ]] && (( have_work >= need_work )) ||
      problems+=("work dir ${work_dir}: $(( ${have_work:-0} / 1048576 )) MiB free, $(( need_work / 1048576 + 1 )) MiB needed (download + raw snapshot)")
    need_vol=$(( raw_size + raw_size / 10 ))
    have_vol="$(free_bytes "${data}" || true)"
    [[ "$have_vol" =~ ^[0-9]+$ ]] && (( have_vol >= need_vol )) ||
      problems+=("volume at ${mp}: $(( ${have_vol:-0} / 1048576 )) MiB free, $(( need_vol / 1048576 + 1 )) MiB needed (the restored data dir beside the current one, which is kept)")
    json="["
    for p in "${problems[@]}"; do json+="$(qk_json_str "$p"),"; done
    json="${json%,}]"
    printf '{"ready":%s,"problems":%s,"canBump":%s}\n' "$([[ ${#problems[@]} -eq 0 ]] && printf true || printf false)" "$json" "$(can_bump && printf true || printf false)"
    exit 0
    ;;
  verify)
    [[ "$revision" =~ ^[0-9]{1,18}$ ]] || qk_die "$QK_EXIT_USAGE" "invalid --revision: expected a number"
    qk_tls_args
    # etcdctl 3.4 has no --count-only; a range answer's count covers the whole range anyway.
    now="$("$etcdctl" --endpoints="$QK_CLIENT_URL" "${QK_TLS_ARGS[@]}" get "" --prefix --keys-only --limit=1 -w json)" || qk_die "$QK_EXIT_FAILED" "read of the current revision failed"
    then_="$("$etcdctl" --endpoints="$QK_CLIENT_URL" "${QK_TLS_ARGS[@]}" get "" --prefix --keys-only --limit=1 --rev="$revision" -w json)" || qk_die "$QK_EXIT_FAILED" "read at revision $revision failed"
    cur="$(sed -n 's/.*"revision":\([0-9]*\).*/\1/p' <<<"$now")"
    count="$(sed -n 's/.*"count":\([0-9]*\).*/\1/p' <<<"$then_")"
    printf '{"revision":%s,"keysAtRevision":%s}\n' "${cur:-null}" "${count:-0}"
    exit 0
    ;;
  inspect)
    rev="$(db_revision "$data")"
    # The data in place is a restore's own output (its marker: "<token> <bump>"), not the member's.
    restored=null
    if [[ -f "${data}.qk-restored" && -d "${data}/member" ]]; then
      read -r r_token r_bump <"${data}.qk-restored" || true
      if [[ "${r_token:-}" =~ ^[A-Za-z0-9._-]{1,128}$ && "${r_bump:-0}" =~ ^[0-9]{1,15}$ ]]; then
        restored="$(printf '{"token":%s,"bump":%s}' "$(qk_json_str "$r_token")" "${r_bump:-0}")"
      fi
    fi
    printf '{"running":%s,"hasData":%s,"revision":%s,"dataDir":%s,"restored":%s}\n' "$(running_json)" \
      "$([[ -d "${data}/member" ]] && printf true || printf false)" "${rev:-null}" "$(qk_json_str "$data_dir")" "$restored"
    exit 0
    ;;
  rollback)
    qk_check token "$token" "token"
    qk_lock
    qk_etcd_running && qk_die "$QK_EXIT_FAILED" "etcd is running: stop it (etcd-member.sh stop) before rolling back"
    aside="${data}.pre-restore-${token}"
    if [[ ! -d "$aside" ]]; then
      # Not restored by this token (interrupted before its turn), or it had no data to set
      # aside: its data dir stays as it is; the other members roll back.
      qk_log "nothing set aside with token ${token} here: ${data_dir} left as it is"
      printf '{"result":"nothing-to-roll-back","dataDir":%s}\n' "$(qk_json_str "$data_dir")"
      exit 0
    fi
    if [[ -e "$data" ]]; then mv "$data" "${data}.failed-restore-${token}"; fi
    mv "$aside" "$data"
    rm -f "${data}.qk-restored"
    printf '{"result":"rolled-back","dataDir":%s}\n' "$(qk_json_str "$data_dir")"
    exit 0
    ;;
esac

# --- restore ---------------------------------------------------------------------------------
qk_check absPath "$work_dir" "work dir"
qk_check etcdName "$name" "member name"
qk_check_initial_cluster "$initial_cluster"
qk_check token "$token" "token"
[[ "$sha" =~ ^[0-9a-f]{64}$ ]] || qk_die "$QK_EXIT_USAGE" "invalid --sha256: expected 64 lowercase hex digits"
[[ "$compressor" =~ ^(zstd|gzip)$ ]] || qk_die "$QK_EXIT_USAGE" "invalid --compressor: expected zstd or gzip"
[[ "$bump" =~ ^[0-9]{1,15}$ ]] || qk_die "$QK_EXIT_USAGE" "invalid --bump-revision: expected a number"
url="$(qk_b64url_url "$url_b64" "download URL")"
[[ ",${initial_cluster}," == *",${name}=${QK_PEER_URL},"* ]] ||
  qk_die "$QK_EXIT_USAGE" "initial cluster does not list this host as ${name}=${QK_PEER_URL}"
qk_lock

marker="${data}.qk-restored"
# The marker holds "<token> <bump>": the bump a restore with this token applied.
if [[ -f "$marker" && "$(cut -d' ' -f1 "$marker")" == "$token" && -d "${data}/member" ]]; then
  done_bump="$(cut -s -d' ' -f2 "$marker")"
  printf '{"result":"already-restored","revision":%s,"dataDir":%s,"bumped":%s}\n' "$(db_revision "$data")" "$(qk_json_str "$data_dir")" "${done_bump:-0}"
  exit 0
fi
qk_etcd_running && qk_die "$QK_EXIT_FAILED" "etcd is running: stop it (etcd-member.sh stop) before restoring"
qk_need_volume "$data_dir" "restore onto"

dir="${QK_ROOT}${work_dir}"
mkdir -p "$dir"
ext=zst
[[ "$compressor" == gzip ]] && ext=gz
download="${dir}/restore-${token}.db.${ext}"
raw="${dir}/restore-${token}.db"
staging="${data}.restoring-${token}"
cleanup() { rm -f "$download" "$raw"; rm -rf "$staging"; }
trap cleanup EXIT

t0=$(date +%s%N)
code="$(curl -sS --retry 3 --retry-delay 2 --max-time 3600 -o "$download" -w '%{http_code}' "$url")" || qk_die "$QK_EXIT_FAILED" "download failed (network)"
[[ "$code" == 200 ]] || qk_die "$QK_EXIT_FAILED" "download refused: HTTP ${code}$([[ "$code" == 403 ]] && printf ' (the presigned URL lives 60 s: was this command delayed? the restore is safe to re-run)')"
got="$(sha256sum "$download" | cut -d' ' -f1)"
[[ "$got" == "$sha" ]] || qk_die "$QK_EXIT_CORRUPT" "checksum mismatch: the downloaded snapshot has SHA-256 ${got}, the backup's metadata says ${sha}; nothing was changed"
case "$compressor" in
  zstd) zstd -q -d -f "$download" -o "$raw" ;;
  gzip) gzip -d -c "$download" >"$raw" ;;
esac
t1=$(date +%s%N)
rm -rf "$staging"
bump_args=()
if ((bump > 0)); then
  if can_bump; then
    bump_args=(--bump-revision "$bump" --mark-compacted)
  else
    qk_log "$("$tool" version 2>/dev/null | head -n 1): no --bump-revision; restored revisions are not bumped"
    bump=0
  fi
fi
"$tool" snapshot restore "$raw" --name "$name" --data-dir "$staging" --initial-cluster "$initial_cluster" \
  --initial-cluster-token "$token" --initial-advertise-peer-urls "$QK_PEER_URL" "${bump_args[@]}" >/dev/null 2>"${dir}/restore-${token}.err" ||
  { tail -n 5 "${dir}/restore-${token}.err" >&2; qk_die "$QK_EXIT_FAILED" "snapshot restore failed; the member's data dir was not touched"; }
rm -f "${dir}/restore-${token}.err"
rev="$(db_revision "$staging")"

# Swap: the current data goes aside (never deleted), the restored data takes its place.
aside="${data}.pre-restore-${token}"
if [[ -e "$data" ]]; then
  if [[ -e "$aside" ]]; then
    # A previous attempt with this token already set the original data aside: what is in
    # place now is that attempt's own output. Keep it too, under another name.
    mv "$data" "${data}.superseded-${token}-$(date +%s)"
  else
    mv "$data" "$aside"
  fi
fi
mv "$staging" "$data"
chmod 700 "$data"
printf '%s %s' "$token" "$bump" >"$marker"
t2=$(date +%s%N)
printf '{"result":"restored","revision":%s,"dataDir":%s,"asideDir":%s,"bumped":%s,"ms":{"download":%s,"restore":%s}}\n' "${rev:-null}" \
  "$(qk_json_str "$data_dir")" "$([[ -e "$aside" ]] && qk_json_str "${data_dir}.pre-restore-${token}" || printf null)" "$bump" \
  $(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 ))
