#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Takes, verifies, compresses and (optionally) uploads an etcd snapshot from this master.
#
#   etcd-snapshot.sh --work-dir /var/lib/quorum-keeper/snapshots [--endpoint URL]
#                    [--compressor auto|zstd|gzip] [--upload-url-b64 B64URL] [--keep]
#
# 1. `snapshot save` from one endpoint (default: this host's member).
# 2. `snapshot status` (hash, revision, keys), then a TRIAL RESTORE into a scratch dir: a
#    corrupted snapshot passes `status` but not `restore` (etcd-notes.md). The scratch dir is
#    removed whatever happens.
# 3. Compress (zstd when present, else gzip) and compute SHA-256 of the compressed file.
# 4. With --upload-url-b64: HTTP PUT the file to that presigned S3 URL (base64url-encoded so it
#    crosses the shell as plain safe characters), sending x-amz-checksum-sha256 so S3 checks
#    the content. The master needs no S3 credentials: the Lambda signs one PUT for one key.
# Prints one JSON line with everything the Lambda records as object metadata.
set -euo pipefail
export QK_SCRIPT=etcd-snapshot
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

work_dir="" endpoint="" compressor=auto upload_b64="" keep=0
while (($#)); do
  case "$1" in
    --work-dir) qk_need "$@"; work_dir="$2"; shift 2 ;;
    --endpoint) qk_need "$@"; endpoint="$2"; shift 2 ;;
    --compressor) qk_need "$@"; compressor="$2"; shift 2 ;;
    --upload-url-b64) qk_need "$@"; upload_b64="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) qk_die "$QK_EXIT_USAGE" "unknown argument $(printf '%q' "${1:0:80}")" ;;
  esac
done
qk_check absPath "$work_dir" "work dir"
qk_check compressor "$compressor" "compressor"
qk_load_host_env
endpoint="${endpoint:-$QK_CLIENT_URL}"
qk_check url "$endpoint" "endpoint"
upload_url=""
if [[ -n "$upload_b64" ]]; then
  qk_check b64url "$upload_b64" "upload URL (base64url)"
  b64="${upload_b64//-/+}"; b64="${b64//_//}"
  while (( ${#b64} % 4 )); do b64+="="; done
  upload_url="$(printf '%s' "$b64" | base64 -d 2>/dev/null)" || qk_die "$QK_EXIT_USAGE" "invalid upload URL: not valid base64url"
  [[ "$upload_url" != *$'\n'* && "$upload_url" =~ ^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9._~%/!\$\&\'\(\)*+,\;=:@?-]*$ ]] ||
    qk_die "$QK_EXIT_USAGE" "invalid upload URL: the decoded value has an unexpected shape"
fi
if [[ "$compressor" == auto ]]; then
  if command -v zstd >/dev/null 2>&1; then compressor=zstd; else compressor=gzip; fi
fi

dir="${QK_ROOT}${work_dir}"
mkdir -p "$dir"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
snap="${dir}/snapshot-${stamp}.db"
scratch="$(mktemp -d "${dir}/verify-XXXXXX")"
cleanup() { rm -rf "$scratch" "${snap}.part"; [[ $keep -eq 1 ]] || rm -f "$snap"; }
trap cleanup EXIT

qk_tls_args
for v in $(compgen -e); do [[ "$v" == ETCD* ]] && unset "$v"; done
export ETCDCTL_API=3
etcdctl="$(qk_bin etcdctl)"
tool="$etcdctl"
if command -v "$(qk_bin etcdutl)" >/dev/null 2>&1; then tool="$(qk_bin etcdutl)"; fi

t0=$(date +%s%N)
"$etcdctl" --endpoints="$endpoint" "${QK_TLS_ARGS[@]}" snapshot save "$snap" >/dev/null 2>"${scratch}.save.err" ||
  { cat "${scratch}.save.err" >&2; rm -f "${scratch}.save.err"; qk_die "$QK_EXIT_FAILED" "snapshot save from $endpoint failed"; }
rm -f "${scratch}.save.err"
t1=$(date +%s%N)
status="$("$tool" snapshot status "$snap" -w json)" || qk_die "$QK_EXIT_FAILED" "snapshot status failed: the file is not a valid snapshot"
"$tool" snapshot restore "$snap" --name qk-verify --data-dir "${scratch}/data" \
  --initial-cluster qk-verify=http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 >/dev/null 2>"${scratch}/restore.err" ||
  { tail -n 5 "${scratch}/restore.err" >&2; qk_die "$QK_EXIT_FAILED" "trial restore failed: the snapshot is corrupt and must not be counted as a backup"; }
t2=$(date +%s%N)
raw_size=$(stat -c %s "$snap")
case "$compressor" in
  zstd) out="${snap}.zst"; zstd -q -3 -T0 -f "$snap" -o "$out" ;;
  gzip) out="${snap}.gz"; gzip -6 -c "$snap" >"$out" ;;
esac
trap 'cleanup; [[ $keep -eq 1 ]] || rm -f "$out"' EXIT
t3=$(date +%s%N)
size=$(stat -c %s "$out")
sha_hex="$(sha256sum "$out" | cut -d' ' -f1)"
# S3 wants the base64 of the binary digest; convert hex -> bytes with printf (no xxd needed).
# shellcheck disable=SC2001
sha_b64="$(printf '%b' "$(sed 's/../\\x&/g' <<<"$sha_hex")" | base64 -w0)"
uploaded=false
if [[ -n "$upload_url" ]]; then
  curl -sS --fail-with-body --max-time 3600 -X PUT --upload-file "$out" \
    -H "x-amz-checksum-sha256: ${sha_b64}" -H "Content-Type: application/octet-stream" "$upload_url" >/dev/null ||
    qk_die "$QK_EXIT_FAILED" "upload of the snapshot failed"
  uploaded=true
fi
t4=$(date +%s%N)
version="$("$etcdctl" version | sed -n 's/^etcdctl version: //p')"
printf '{"result":"ok","file":%s,"compressor":"%s","rawSize":%s,"size":%s,"sha256":"%s","sha256Base64":"%s","status":%s,"etcdVersion":%s,"uploaded":%s,"ms":{"save":%s,"verify":%s,"compress":%s,"upload":%s}}\n' \
  "$(qk_json_str "${out#"$QK_ROOT"}")" "$compressor" "$raw_size" "$size" "$sha_hex" "$sha_b64" "$status" "$(qk_json_str "$version")" "$uploaded" \
  $(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 )) $(( (t3 - t2) / 1000000 )) $(( (t4 - t3) / 1000000 ))
