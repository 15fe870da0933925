#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# etcd snapshots on a master, in two phases so the master never needs S3 credentials:
#
#   etcd-snapshot.sh prepare --work-dir /var/lib/quorum-keeper/snapshots [--endpoint URL]
#                            [--compressor auto|zstd|gzip]
#   etcd-snapshot.sh upload  --work-dir DIR --file NAME --upload-url-b64 B64URL [--headers-b64 B64URL]
#                            [--verify-timeout-sec N]
#   etcd-snapshot.sh discard --work-dir DIR --file NAME
#
# prepare: `snapshot save` from one endpoint (default: this host's member); then `snapshot
#   status` and compression (zstd when present, else gzip; SHA-256 computed on the way out)
#   side by side, and the number of keys at the snapshot's revision. The TRIAL RESTORE (a
#   corrupted snapshot passes `status`, only `restore` catches it — etcd-notes.md) is started
#   detached and keeps running after prepare returns, so it overlaps the round trip to the
#   Lambda that signs the upload; its verdict lands in <name>.verify. Prints one JSON line ("verify":"pending").
# upload: waits for the trial restore's verdict (it ran while the Lambda signed the URL), then
#   — only if the snapshot restored — HTTP PUT of the compressed file to a presigned S3 URL
#   that the Lambda signed for this file AFTER prepare, with the checksum, encryption and
#   metadata headers inside the signature (S3 rejects x-amz-* headers a presigned URL did not
#   sign). The URL and headers arrive base64url-encoded so they cross the shell as plain safe
#   characters; every header is checked against an allow-list. A corrupt snapshot is removed
#   and never sent.
# discard: removes a prepared snapshot and stops its trial restore (a failed or abandoned backup).
# (verify: internal, the detached trial restore that prepare starts.)
set -euo pipefail
export QK_SCRIPT=etcd-snapshot
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cmd="${1-}"
[[ $# -gt 0 ]] && shift
work_dir="" endpoint="" compressor=auto upload_b64="" headers_b64="" file="" verify_timeout=1800
while (($#)); do
  case "$1" in
    --work-dir) qk_need "$@"; work_dir="$2"; shift 2 ;;
    --endpoint) qk_need "$@"; endpoint="$2"; shift 2 ;;
    --compressor) qk_need "$@"; compressor="$2"; shift 2 ;;
    --upload-url-b64) qk_need "$@"; upload_b64="$2"; shift 2 ;;
    --headers-b64) qk_need "$@"; headers_b64="$2"; shift 2 ;;
    --file) qk_need "$@"; file="$2"; shift 2 ;;
    --verify-timeout-sec) qk_need "$@"; verify_timeout="$2"; shift 2 ;;
    *) qk_die "$QK_EXIT_USAGE" "unknown argument $(printf '%q' "${1:0:80}")" ;;
  esac
done
[[ "$cmd" =~ ^(prepare|upload|discard|verify)$ ]] || qk_die "$QK_EXIT_USAGE" "usage: etcd-snapshot.sh prepare|upload|discard [options]"
qk_check absPath "$work_dir" "work dir"
qk_check compressor "$compressor" "compressor"
[[ "$verify_timeout" =~ ^[0-9]{1,5}$ ]] || qk_die "$QK_EXIT_USAGE" "invalid --verify-timeout-sec $(printf '%q' "${verify_timeout:0:80}")"
if [[ "$cmd" != prepare ]]; then
  [[ "$file" =~ ^snapshot-[0-9]{8}T[0-9]{6}Z\.db\.(zst|gz)$ ]] || qk_die "$QK_EXIT_USAGE" "invalid file name $(printf '%q' "${file:0:80}")"
fi
qk_load_host_env
dir="${QK_ROOT}${work_dir}"
# Files of one snapshot: <base>.db (raw, prepare's until it has read it), <base>.verify.db (a
# hard link to it, the trial restore's until its verdict), <base>.db.zst|gz (compressed),
# <base>.verifying (pid of the trial restore), <base>.verify (its verdict, one JSON line). Each
# of the two readers removes only its own name: a fast trial restore once removed the raw file
# before prepare's `snapshot status` had opened it ("not a valid snapshot", 2 of 10 clusters
# backed up at once).
base="${file%.db.*}"

# stop_verifier: stops this snapshot's trial restore, if it still runs.
stop_verifier() {
  local pid
  pid="$(cat "${dir}/${base}.verifying" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "${dir}/${base}.verifying" "${dir}/${base}.verify-scratch" "${dir}/${base}.verify.db"
}

case "$cmd" in
  discard)
    stop_verifier
    rm -f "${dir}/${file}" "${dir}/${base}.db" "${dir}/${base}.verify" "${dir}/${base}.verify.tmp"
    printf '{"result":"discarded","file":%s}\n' "$(qk_json_str "$file")"
    exit 0
    ;;
  verify)
    # Detached by prepare (own session, no stdio): trial restore of <base>.verify.db into a
    # scratch dir, verdict to <base>.verify; its link and the scratch dir are always removed.
    raw="${dir}/${base}.verify.db" scratch="${dir}/${base}.verify-scratch"
    printf '%s\n' "$$" >"${dir}/${base}.verifying"
    tool="$(qk_offline_tool)"
    qk_etcd_env
    t0=$(date +%s%N)
    rm -rf "$scratch"
    mkdir -p "$scratch"
    if "$tool" snapshot restore "$raw" --name qk-verify --data-dir "${scratch}/data" \
      --initial-cluster qk-verify=http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 >/dev/null 2>"${scratch}/restore.err"; then
      verdict="$(printf '{"ok":true,"ms":%s}' $(( ($(date +%s%N) - t0) / 1000000 )))"
    else
      verdict="$(printf '{"ok":false,"error":%s}' "$(qk_json_str "$(tail -n 3 "${scratch}/restore.err" | tr -d '\r' | cut -c1-400)")")"
    fi
    rm -rf "$scratch" "$raw"
    # Last step: the verdict appears (atomically) once everything else of the verifier is gone.
    printf '%s\n' "$verdict" >"${dir}/${base}.verify.tmp"
    rm -f "${dir}/${base}.verifying"
    mv "${dir}/${base}.verify.tmp" "${dir}/${base}.verify"
    exit 0
    ;;
  upload)
    [[ -n "$upload_b64" ]] || qk_die "$QK_EXIT_USAGE" "missing --upload-url-b64"
    upload_url="$(qk_b64url_url "$upload_b64" "upload URL")"
    curl_headers=()
    if [[ -n "$headers_b64" ]]; then
      # Decode first (a failed decode must stop the script, not just a pipeline subshell).
      headers_text="$(qk_b64url_decode "$headers_b64" "headers")"
      while IFS= read -r line; do
        [[ -z "$line" ]] && continue
        name="${line%%:*}" value="${line#*: }"
        [[ "$name" =~ ^(content-type|content-length|x-amz-checksum-sha256|x-amz-sdk-checksum-algorithm|x-amz-server-side-encryption|x-amz-server-side-encryption-aws-kms-key-id|x-amz-meta-[a-z0-9-]{1,64})$ ]] ||
          qk_die "$QK_EXIT_USAGE" "invalid header name $(printf '%q' "${name:0:80}")"
        [[ ${#value} -le 512 && "$value" =~ ^[A-Za-z0-9._:/=+@,-]+$ ]] || qk_die "$QK_EXIT_USAGE" "invalid header value for $name"
        curl_headers+=(-H "${name}: ${value}")
      done <<<"$headers_text"
    fi
    # Arguments are all valid: only now look at the file system.
    [[ -f "${dir}/${file}" ]] || qk_die "$QK_EXIT_FAILED" "no prepared snapshot ${work_dir}/${file}"
    corrupt() { # VERDICT-JSON
      stop_verifier
      rm -f "${dir}/${file}" "${dir}/${base}.db" "${dir}/${base}.verify" "${dir}/${base}.verify.tmp"
      qk_die "$QK_EXIT_CORRUPT" "trial restore failed: the snapshot is corrupt and must not be counted as a backup: $(sed -n 's/.*"error":"\(.*\)"}$/\1/p' <<<"$1")"
    }
    # First the verdict of the trial restore (it ran while the Lambda signed this URL): an
    # unverified snapshot never reaches S3.
    for ((i = 0; i < verify_timeout * 10; i++)); do
      [[ -f "${dir}/${base}.verify" ]] && break
      pid="$(cat "${dir}/${base}.verifying" 2>/dev/null || true)"
      # Gone (it removes that file just before the verdict appears), or died without a verdict.
      if [[ -z "$pid" || ( "$pid" =~ ^[0-9]+$ && ! -d "/proc/$pid" ) ]]; then
        sleep 0.5
        [[ -f "${dir}/${base}.verify" ]] && break
        qk_die "$QK_EXIT_UNVERIFIED" "the trial restore of ${file} is not running and left no verdict"
      fi
      sleep 0.1
    done
    verdict="$(cat "${dir}/${base}.verify" 2>/dev/null)" || { stop_verifier; qk_die "$QK_EXIT_UNVERIFIED" "the trial restore of ${file} did not finish within ${verify_timeout} s"; }
    [[ "$verdict" == *'"ok":true'* ]] || corrupt "$verdict"
    verify_ms="$(sed -n 's/.*"ms":\([0-9]*\).*/\1/p' <<<"$verdict")"
    # --retry: S3 answers 500/503 (SlowDown) now and then; a PUT of the same key is safe to repeat.
    res="$(curl -sS --retry 3 --retry-delay 2 --max-time 3600 -o "${dir}/.upload-response" -w '%{http_code} %{time_total}' -X PUT --upload-file "${dir}/${file}" "${curl_headers[@]}" "$upload_url")" ||
      qk_die "$QK_EXIT_FAILED" "upload of ${file} failed (network)"
    status="${res%% *}" took="${res#* }"
    [[ "$took" =~ ^[0-9]+(\.[0-9]+)?$ ]] || took=0
    if [[ "$status" != 200 ]]; then
      body="$(tr -d '\n' <"${dir}/.upload-response" | cut -c1-300)"
      rm -f "${dir}/.upload-response"
      qk_die "$QK_EXIT_FAILED" "upload of ${file} was refused: HTTP ${status}: ${body}"
    fi
    rm -f "${dir}/.upload-response" "${dir}/${file}" "${dir}/${base}.verify"
    printf '{"result":"uploaded","file":%s,"httpStatus":%s,"seconds":%s,"verified":true,"verifyMs":%s}\n' \
      "$(qk_json_str "$file")" "$status" "$took" "${verify_ms:-0}"
    exit 0
    ;;
esac

# --- prepare ---------------------------------------------------------------------------------
endpoint="${endpoint:-$QK_CLIENT_URL}"
qk_check url "$endpoint" "endpoint"
if [[ "$compressor" == auto ]]; then
  if command -v zstd >/dev/null 2>&1; then compressor=zstd; else compressor=gzip; fi
fi
mkdir -p "$dir"
# Leftovers of runs that died between prepare and upload (e.g. a Lambda timeout): after 2 h.
find "$dir" -maxdepth 1 \( -name 'snapshot-*' -o -name 'prepare-*' \) -mmin +120 -exec rm -rf {} + 2>/dev/null || true
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
base="snapshot-${stamp}"
snap="${dir}/${base}.db"
scratch="$(mktemp -d "${dir}/prepare-XXXXXX")"
out=""
ok=0
cleanup() {
  local p
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$scratch"
  if [[ $ok -ne 1 ]]; then
    stop_verifier
    rm -f "$snap" "${dir}/${base}.verify" "${out:-/nonexistent}"
  fi
}
trap cleanup EXIT

qk_tls_args
qk_etcd_env
etcdctl="$(qk_bin etcdctl)"
tool="$(qk_offline_tool)"

t0=$(date +%s%N)
"$etcdctl" --endpoints="$endpoint" "${QK_TLS_ARGS[@]}" snapshot save "$snap" >/dev/null 2>"${scratch}/save.err" ||
  { tail -n 5 "${scratch}/save.err" >&2; qk_die "$QK_EXIT_FAILED" "snapshot save from $endpoint failed"; }
t1=$(date +%s%N)
raw_size=$(stat -c %s "$snap")
case "$compressor" in
  zstd) out="${snap}.zst" ;;
  gzip) out="${snap}.gz" ;;
esac
# The TRIAL RESTORE runs detached (own session, no stdio): it outlives this command and
# overlaps the upload; `upload` waits for its verdict before the object may appear in S3.
printf 'starting\n' >"${dir}/${base}.verifying"
ln -f "$snap" "${dir}/${base}.verify.db"
setsid bash "${BASH_SOURCE[0]}" verify --work-dir "$work_dir" --file "${out##*/}" </dev/null >/dev/null 2>&1 &
disown # not one of this command's jobs: cleanup must not stop it
# Meanwhile, side by side: `snapshot status`, and compression hashed on the fly (tee).
"$tool" snapshot status "$snap" -w json >"${scratch}/status.json" 2>"${scratch}/status.err" &
pid_status=$!
(
  set -o pipefail
  case "$compressor" in
    zstd) zstd -q -3 -T0 -c "$snap" ;;
    gzip) gzip -6 -c "$snap" ;;
  esac | tee "$out" | sha256sum | cut -d' ' -f1 >"${scratch}/sha256"
) &
pid_compress=$!
compress_ok=1
wait "$pid_compress" || compress_ok=0
wait "$pid_status" || qk_die "$QK_EXIT_CORRUPT" "snapshot status failed: the file is not a valid snapshot: $(tail -n 2 "${scratch}/status.err" | tr -d '\r' | tr '\n' ' ' | cut -c1-300)"
status="$(cat "${scratch}/status.json")"
# Read by both: the raw file is the trial restore's alone now (its own link).
rm -f "$snap"
((compress_ok)) || qk_die "$QK_EXIT_FAILED" "compression with $compressor failed"
t2=$(date +%s%N)
size=$(stat -c %s "$out")
sha_hex="$(cat "${scratch}/sha256")"
# S3 wants the base64 of the binary digest; convert hex -> bytes with printf (no xxd needed).
# shellcheck disable=SC2001
sha_b64="$(printf '%b' "$(sed 's/../\\x&/g' <<<"$sha_hex")" | base64 -w0)"
# Live key count at the snapshot's revision (an MVCC read of the past: exact, unless that
# revision was compacted in the meantime, then null). etcdctl 3.4 has no --count-only, but a
# range answer's `count` is the whole range's size even with --limit=1. A restore compares it.
revision="$(sed -n 's/.*"revision":\([0-9]*\).*/\1/p' <<<"$status")"
keys=null
if [[ "$revision" =~ ^[0-9]+$ ]] && range="$("$etcdctl" --endpoints="$endpoint" "${QK_TLS_ARGS[@]}" get "" --prefix --keys-only --limit=1 --rev="$revision" -w json 2>/dev/null)"; then
  count="$(sed -n 's/.*"count":\([0-9]*\).*/\1/p' <<<"$range")"
  keys="${count:-0}"
fi
version="$("$etcdctl" version | sed -n 's/^etcdctl version: //p')"
ok=1
printf '{"result":"prepared","file":%s,"compressor":"%s","rawSize":%s,"size":%s,"sha256":"%s","sha256Base64":"%s","status":%s,"keys":%s,"etcdVersion":%s,"verify":"pending","ms":{"save":%s,"compress":%s}}\n' \
  "$(qk_json_str "${out##*/}")" "$compressor" "$raw_size" "$size" "$sha_hex" "$sha_b64" "$status" "$keys" "$(qk_json_str "$version")" \
  $(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 ))
