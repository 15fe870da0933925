#!/usr/bin/env bash
# Fetches etcd 3.5.16 (what Kubernetes 1.29–1.33 ships) from Debian trixie's packages into
# .tmp/etcd-3.5/usr/bin (etcd, etcdctl, etcdutl), without touching the system's apt state or its
# etcd 3.4: apt reads a trixie source list, lists and cache kept inside .tmp/apt-trixie, and
# `apt-get download` fetches the two .deb files, which `dpkg-deb -x` unpacks. The binaries need
# only libc6 >= 2.34, which bookworm has (../shared/TOOLING.md). Idempotent: does nothing when
# the binaries are there and report 3.5.16. Prints the bin directory on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

want=3.5.16
root="$PWD/.tmp"
dest="$root/etcd-3.5"
bin="$dest/usr/bin"
say() { printf 'etcd-3.5: %s\n' "$*" >&2; }

have() {
  [[ -x "$bin/etcd" && -x "$bin/etcdctl" && -x "$bin/etcdutl" ]] &&
    [[ "$("$bin/etcd" --version 2>/dev/null | sed -n 's/^etcd Version: //p')" == "$want" ]]
}

if have; then
  printf '%s\n' "$bin"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || { say "apt-get is needed to fetch etcd $want from Debian trixie"; exit 1; }
command -v dpkg-deb >/dev/null 2>&1 || { say "dpkg-deb is needed to unpack etcd $want"; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f "$keyring" ]] || { say "$keyring is missing (package debian-archive-keyring)"; exit 1; }

# The mirror this machine's bookworm sources already use (deb822 or one-line format).
uri="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
if [[ -z "$uri" ]]; then
  uri="$(awk '$1 == "deb" && $0 ~ /debian/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null || true)"
fi
uri="${uri:-http://deb.debian.org/debian}"
[[ "$uri" =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._/-]*)?$ ]] || { say "unexpected apt mirror URI: $uri"; exit 1; }

apt_dir="$root/apt-trixie"
rm -rf "$apt_dir" "$dest"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dest"
printf 'deb [signed-by=%s] %s trixie main\n' "$keyring" "$uri" >"$apt_dir/sources.list"
opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
say "fetching etcd-server and etcd-client $want from Debian trixie ($uri)"
apt-get "${opts[@]}" -qq update >&2
(cd "$apt_dir" && apt-get "${opts[@]}" -qq download "etcd-server=$want*" "etcd-client=$want*" >&2 2>/dev/null) ||
  (cd "$apt_dir" && apt-get "${opts[@]}" -qq download etcd-server etcd-client >&2)
for deb in "$apt_dir"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
have || { say "unpacked, but $bin/etcd is not $want: $("$bin/etcd" --version 2>&1 | sed -n 1p)"; exit 1; }
rm -rf "$apt_dir"
say "ready: $("$bin/etcd" --version | sed -n 1p) in $bin"
printf '%s\n' "$bin"
