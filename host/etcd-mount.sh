#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Mounts a master's etcd EBS volume and checks that it belongs to this cluster and member.
#
#   etcd-mount.sh --volume-id vol-0123456789abcdef0 --cluster prod --member etcd-a
#                 [--device /dev/xvdf] [--mount-point /var/lib/etcd] [--allow-format] [--adopt]
#   etcd-mount.sh --unmount --volume-id vol-… --cluster prod --member etcd-a [--mount-point …]
#   etcd-mount.sh --record-member-id 8e9e05c52164694d --volume-id vol-… --cluster prod --member etcd-a
#   etcd-mount.sh --inspect --volume-id vol-… --cluster prod --member etcd-a [--device …] [--mount-point …]
#
# --inspect changes nothing: it reports whether the volume's device is here, whether it is what
# is mounted at the mount point (so etcd's data dir, <mount point>/data, lives on it), whether
# etcd data is there, whether a running etcd holds that data open ("dbOpenByEtcd": the data dir
# the member really uses; null when there is no data or no /proc), and the marker as written
# (doctor and adopt read it before acting).
#
# The marker also records the etcd member ID the data on the volume belongs to (`memberId=`),
# written by --record-member-id once the member has joined and caught up; a mount reports it
# ("memberId", null before one is recorded), so the slot's identity survives a lost state table.
#
# Safety: a filesystem is created ONLY when the device carries no signature at all (blank)
# AND --allow-format is given. A device holding any filesystem or data is never formatted.
# The marker file .quorum-keeper-volume at the volume root names the cluster and member; a
# volume whose marker names another cluster or member is unmounted again and refused, and so is
# a volume whose marker names another VOLUME: a copy (an EBS snapshot restored elsewhere with the
# same tags) holds an older log of the same etcd member ID, and two incarnations of one member
# break raft's durability (acknowledged writes can be lost). A copy is never mounted as the member.
# A volume with data but no marker is refused unless --adopt (first adoption of an existing
# cluster). Idempotent: running it again on a mounted, matching volume changes nothing.
#
# stdout: one JSON line {"result":"mounted",...}. Exit codes: see host/lib.sh.
set -euo pipefail
export QK_SCRIPT=etcd-mount
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

volume_id="" cluster="" member="" device_hint="" mount_point="" allow_format=0 adopt=0 unmount=0 record_id="" inspect=0
while (($#)); do
  case "$1" in
    --volume-id) qk_need "$@"; volume_id="$2"; shift 2 ;;
    --cluster) qk_need "$@"; cluster="$2"; shift 2 ;;
    --member) qk_need "$@"; member="$2"; shift 2 ;;
    --device) qk_need "$@"; device_hint="$2"; shift 2 ;;
    --mount-point) qk_need "$@"; mount_point="$2"; shift 2 ;;
    --allow-format) allow_format=1; shift ;;
    --adopt) adopt=1; shift ;;
    --unmount) unmount=1; shift ;;
    --inspect) inspect=1; shift ;;
    --record-member-id) qk_need "$@"; record_id="$2"; shift 2 ;;
    *) qk_die "$QK_EXIT_USAGE" "unknown argument $(printf '%q' "${1:0:80}")" ;;
  esac
done
qk_check volumeId "$volume_id" "volume ID"
qk_check clusterName "$cluster" "cluster"
qk_check memberName "$member" "member"
[[ -z "$device_hint" ]] || qk_check device "$device_hint" "device"
[[ -z "$record_id" ]] || qk_check memberIdHex "$record_id" "member ID"
qk_load_host_env
mount_point="${mount_point:-$QK_MOUNT_POINT}"
qk_check absPath "$mount_point" "mount point"

target="${QK_ROOT}${mount_point}"

# --- device primitives: real block devices, or directories in the sandbox -----------------
find_device() {
  local nvme="${QK_ROOT}/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volume_id/-/}"
  if [[ -e "$nvme" ]]; then readlink -f "$nvme"; return 0; fi
  if [[ -n "$device_hint" ]]; then
    local alt="${device_hint/\/dev\/sd//dev/xvd}"
    for d in "${QK_ROOT}${device_hint}" "${QK_ROOT}${alt}"; do
      if [[ -e "$d" ]]; then readlink -f "$d"; return 0; fi
    done
  fi
  return 1
}

device_is_blank() {
  local dev="$1"
  if [[ "$QK_DEVICE_MODE" == directory ]]; then
    [[ ! -e "$dev/.qk-fs" ]] && [[ -z "$(ls -A "$dev")" ]]
    return
  fi
  # blkid -p exits 2 when it finds no signature of any kind; anything else is "not blank".
  local rc=0
  blkid -p "$dev" >/dev/null 2>&1 || rc=$?
  [[ $rc -eq 2 ]] || return 1
  # Belt and braces: the first MiB must be all zeroes too.
  cmp -s -n 1048576 "$dev" /dev/zero
}

make_fs() {
  local dev="$1"
  if [[ "$QK_DEVICE_MODE" == directory ]]; then printf 'ext4\n' >"$dev/.qk-fs"; return; fi
  mkfs.ext4 -q -L etcd-data "$dev"
}

mounted_device() { # prints what is mounted at the target, if anything
  if [[ "$QK_DEVICE_MODE" == directory ]]; then
    [[ -L "$target" ]] && readlink -f "$target"
    return 0
  fi
  findmnt -n -o SOURCE --mountpoint "$target" 2>/dev/null | xargs -r readlink -f || true
}

device_mounted_elsewhere() {
  local dev="$1"
  if [[ "$QK_DEVICE_MODE" == directory ]]; then return 1; fi
  local where
  where="$(findmnt -n -o TARGET --source "$dev" 2>/dev/null | sed -n 1p || true)"
  [[ -n "$where" && "$where" != "$target" ]]
}

do_mount() {
  local dev="$1"
  if [[ "$QK_DEVICE_MODE" == directory ]]; then
    mkdir -p "$(dirname "$target")"
    if [[ -d "$target" && ! -L "$target" ]]; then rmdir "$target" 2>/dev/null || qk_die "$QK_EXIT_FAILED" "mount point $mount_point is a non-empty directory"; fi
    ln -sfn "$dev" "$target"
    return
  fi
  mkdir -p "$target"
  mount -o noatime "$dev" "$target"
}

do_umount() {
  if [[ "$QK_DEVICE_MODE" == directory ]]; then rm -f "$target"; return; fi
  umount "$target"
}

# --- the mount at boot -------------------------------------------------------------------
# systemd's name for the mount unit of a path (systemd.unit(5), "systemd-escape --path"): the
# leading / dropped, each "-" written \x2d, each "/" then "-". Mount points are absolute paths of
# [A-Za-z0-9._/-] (qk_check absPath); a component starting with "." is refused here (systemd would
# escape it too) rather than escaped.
mount_unit_name() {
  local p="${1#/}"
  p="${p%/}"
  [[ "/$p" != */.* && "$p" != *//* && -n "$p" ]] || return 1
  p="${p//-/\\x2d}"
  printf '%s.mount' "${p//\//-}"
}

# The verified volume is mounted again at boot, so etcd (its boot guard requires this mount and
# the marker) is back within about a minute of a reboot without anyone acting. The unit names THIS
# volume's device by its NVMe by-id link, which carries the volume ID (Nitro instances), so another
# or a missing volume is never mounted there: the mount fails, and etcd stays down. Not by the
# filesystem's UUID: an EBS snapshot's copy of the volume has the same one, and etcd would start
# on the copy as the member. `nofail` and a 30 s device timeout keep the boot itself from waiting.
# Written (and systemd reloaded) only when it changes; enabled every time (idempotent).
install_boot_mount() {
  local unit what want dir="${QK_ROOT}/etc/systemd/system"
  unit="$(mount_unit_name "$mount_point")" || { qk_log "mount point ${mount_point}: no systemd mount unit name for it; not mounted at boot"; return 0; }
  what="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volume_id/-/}"
  if [[ ! -e "${QK_ROOT}${what}" ]]; then
    qk_log "no by-id link for $volume_id (not a Nitro instance?): not mounted at boot; after a reboot the reconciler brings etcd back"
    return 0
  fi
  want="$(printf '%s\n' "# Written by Quorum Keeper (etcd-mount.sh): the verified etcd volume ${volume_id} (${cluster}/${member}), mounted at boot." \
    '[Unit]' "Description=etcd volume ${volume_id} of ${cluster}/${member} (Quorum Keeper)" \
    '[Mount]' "What=${what}" "Where=${mount_point%/}" 'Options=noatime,nofail,x-systemd.device-timeout=30s' \
    '[Install]' 'WantedBy=multi-user.target')"
  if [[ "$(cat "${dir}/${unit}" 2>/dev/null || true)" != "$want" ]]; then
    mkdir -p "$dir"
    printf '%s\n' "$want" >"${dir}/${unit}.tmp"
    mv "${dir}/${unit}.tmp" "${dir}/${unit}"
    qk_log "installed ${unit}: ${what} is mounted at ${mount_point%/} at boot"
  fi
  # Never fails the mount (it is done and verified): a systemd that does not answer is said.
  [[ "$QK_SERVICE_MODE" == process ]] && return 0
  { systemctl daemon-reload && systemctl enable "$unit"; } >/dev/null 2>&1 ||
    qk_log "could not reload systemd or enable ${unit}: the volume is not mounted at boot until it can (the next mount tries again)"
}

# Unmounted for good (the master retires): the boot mount goes too, so a stopped instance that
# is started again later (a warm pool) does not mount a volume that is now another master's.
remove_boot_mount() {
  local unit dir="${QK_ROOT}/etc/systemd/system"
  unit="$(mount_unit_name "$mount_point")" || return 0
  [[ -e "${dir}/${unit}" ]] || return 0
  if [[ "$QK_SERVICE_MODE" != process ]]; then systemctl disable "$unit" >/dev/null 2>&1 || true; fi
  rm -f "${dir}/${unit}"
  if [[ "$QK_SERVICE_MODE" != process ]]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
  qk_log "removed ${unit}"
}

marker_field() { # FILE KEY: the value of KEY= in the marker (empty when absent)
  sed -n "/^$2=/{s///p;q}" "$1"
}

# true when an etcd process on this host holds the data dir's backend (member/snap/db) open —
# its data dir is this one, not a stale copy beside the one it uses; false when none does; null
# when there is no db or no /proc to look in. (No pipe into grep -q: SIGPIPE under pipefail.)
db_open_by_etcd() {
  local db p comm
  db="$(readlink -f "${QK_ROOT}${1}/member/snap/db" 2>/dev/null || true)"
  [[ -n "$db" && -f "$db" && -d /proc/self/fd ]] || { printf null; return 0; }
  for p in /proc/[0-9]*; do
    comm=""
    read -r comm 2>/dev/null <"$p/comm" || true
    [[ "$comm" == etcd ]] || continue
    if [[ -n "$(find "$p/fd" -maxdepth 1 -lname "$db" -print -quit 2>/dev/null || true)" ]]; then printf true; return 0; fi
  done
  printf false
}

# Read-only: what is on this host for the volume (see the header). No lock: nothing is changed.
inspect() {
  local dev="" current has_data=false marker="${target}/${QK_VOLUME_MARKER}" marker_json=null
  dev="$(find_device)" || dev=""
  current="$(mounted_device)"
  local on_volume=false
  [[ -n "$dev" && "$current" == "$dev" ]] && on_volume=true
  local data_dir="${mount_point%/}/data"
  qk_has_data "$data_dir" && has_data=true
  if [[ -n "$current" && -f "$marker" ]]; then
    marker_json="$(printf '{"cluster":%s,"member":%s,"volume":%s,"memberId":%s}' \
      "$(qk_json_str "$(marker_field "$marker" cluster)")" "$(qk_json_str "$(marker_field "$marker" member)")" \
      "$(qk_json_str "$(marker_field "$marker" volume)")" "$(qk_json_str "$(marker_field "$marker" memberId)")")"
  fi
  local dev_json=null current_json=null
  [[ -z "$dev" ]] || dev_json="$(qk_json_str "${dev#"$QK_ROOT"}")"
  [[ -z "$current" ]] || current_json="$(qk_json_str "${current#"$QK_ROOT"}")"
  printf '{"result":"inspected","volumeId":%s,"device":%s,"mountedDevice":%s,"onVolume":%s,"mountPoint":%s,"dataDir":%s,"hasData":%s,"dbOpenByEtcd":%s,"marker":%s}\n' \
    "$(qk_json_str "$volume_id")" "$dev_json" "$current_json" "$on_volume" "$(qk_json_str "$mount_point")" "$(qk_json_str "$data_dir")" "$has_data" "$(db_open_by_etcd "$data_dir")" "$marker_json"
}

# --- main ----------------------------------------------------------------------------------
if [[ $inspect -eq 1 ]]; then inspect; exit 0; fi
qk_lock
if [[ $unmount -eq 1 ]]; then
  # Unmount only our own volume: the marker must name this cluster and member. Idempotent.
  marker="${target}/${QK_VOLUME_MARKER}"
  if [[ -z "$(mounted_device)" ]]; then
    printf '{"result":"not-mounted","volumeId":%s}\n' "$(qk_json_str "$volume_id")"
    exit 0
  fi
  if [[ -f "$marker" ]] && ! { grep -qx "cluster=${cluster}" "$marker" && grep -qx "member=${member}" "$marker"; }; then
    qk_die "$QK_EXIT_OWNER" "the volume mounted at $mount_point is not $cluster/$member's; refusing to unmount it"
  fi
  sync
  do_umount
  remove_boot_mount
  printf '{"result":"unmounted","volumeId":%s}\n' "$(qk_json_str "$volume_id")"
  exit 0
fi

if [[ -n "$record_id" ]]; then
  # Only on our own mounted volume: the marker must name this cluster, member and volume.
  marker="${target}/${QK_VOLUME_MARKER}"
  [[ -n "$(mounted_device)" && -f "$marker" ]] || qk_die "$QK_EXIT_FAILED" "no verified volume is mounted at $mount_point; mount it first"
  if ! { grep -qx "cluster=${cluster}" "$marker" && grep -qx "member=${member}" "$marker" && grep -qx "volume=${volume_id}" "$marker"; }; then
    qk_die "$QK_EXIT_OWNER" "the volume mounted at $mount_point is not $cluster/$member's $volume_id; refusing to record a member ID on it"
  fi
  # The data decides the ID (a blank volume that joined anew has a new one): replace, atomically.
  grep -v '^memberId=' "$marker" >"${marker}.tmp" || true
  printf 'memberId=%s\n' "$record_id" >>"${marker}.tmp"
  sync "${marker}.tmp" 2>/dev/null || true
  mv "${marker}.tmp" "$marker"
  printf '{"result":"recorded","volumeId":%s,"memberId":%s}\n' "$(qk_json_str "$volume_id")" "$(qk_json_str "$record_id")"
  exit 0
fi

# The NVMe by-id link is made by udev once the kernel has probed the device, which can be a few
# seconds after EC2 reports the attachment `attached`: wait for it, bounded.
[[ "$QK_DEVICE_WAIT_SEC" =~ ^[0-9]{1,3}$ ]] || qk_die "$QK_EXIT_USAGE" "QK_DEVICE_WAIT_SEC must be 0-999 seconds"
dev=""
for ((waited = 0; waited <= QK_DEVICE_WAIT_SEC * 2; waited++)); do
  if dev="$(find_device)"; then break; fi
  dev=""
  sleep 0.5
done
[[ -n "$dev" ]] || qk_die "$QK_EXIT_NODEVICE" "no block device for $volume_id after ${QK_DEVICE_WAIT_SEC} s (is it attached to this instance?)"
formatted=false

current="$(mounted_device)"
if [[ -n "$current" && "$current" != "$dev" ]]; then
  qk_die "$QK_EXIT_FAILED" "$mount_point already holds another device ($current); refusing to stack a mount"
fi
if device_mounted_elsewhere "$dev"; then
  qk_die "$QK_EXIT_FAILED" "$dev is mounted somewhere other than $mount_point; refusing"
fi

if [[ -z "$current" ]]; then
  if device_is_blank "$dev"; then
    if [[ $allow_format -ne 1 ]]; then
      qk_die "$QK_EXIT_BLANK" "$volume_id ($dev) is blank; re-run with --allow-format to create a filesystem on it"
    fi
    qk_log "formatting blank device $dev for $cluster/$member"
    make_fs "$dev"
    formatted=true
  fi
  do_mount "$dev"
fi

marker="${target}/${QK_VOLUME_MARKER}"
expected="cluster=${cluster}"$'\n'"member=${member}"
if [[ -f "$marker" ]]; then
  # (No `| head` anywhere: under pipefail a SIGPIPE in the writer would abort the script.)
  got_cluster="$(sed -n '/^cluster=/{s///p;q}' "$marker")"
  got_member="$(sed -n '/^member=/{s///p;q}' "$marker")"
  got_volume="$(sed -n '/^volume=/{s///p;q}' "$marker")"
  if [[ "$got_cluster" != "$cluster" || "$got_member" != "$member" ]]; then
    do_umount || true
    qk_die "$QK_EXIT_OWNER" "$volume_id belongs to cluster=$(printf '%q' "$got_cluster") member=$(printf '%q' "$got_member"), not $cluster/$member; unmounted and refused"
  fi
  if [[ -n "$got_volume" && "$got_volume" != "$volume_id" ]]; then
    do_umount || true
    qk_die "$QK_EXIT_COPY" "$volume_id is a copy of $(printf '%q' "$got_volume") (its marker names that volume): a copy of $cluster/$member's data must never run as that member; unmounted and refused"
  fi
else
  contents="$(find "$target/" -mindepth 1 -maxdepth 1 ! -name lost+found ! -name .qk-fs -print -quit)"
  if [[ -n "$contents" && $adopt -ne 1 && "$formatted" != true ]]; then
    do_umount || true
    qk_die "$QK_EXIT_OWNER" "$volume_id holds data but no Quorum Keeper marker; re-run with --adopt if this is $cluster/$member's etcd volume"
  fi
  printf '%s\nvolume=%s\n' "$expected" "$volume_id" >"${marker}.tmp"
  mv "${marker}.tmp" "$marker"
  qk_log "wrote marker for $cluster/$member on $volume_id"
fi

install_boot_mount

data_dir="${mount_point%/}/data"
has_data=false
qk_has_data "$data_dir" && has_data=true
member_id_json=null
recorded_id="$(sed -n '/^memberId=/{s///p;q}' "$marker")"
if [[ "$recorded_id" =~ ^[0-9a-f]{1,16}$ ]]; then member_id_json="$(qk_json_str "$recorded_id")"; fi
printf '{"result":"mounted","volumeId":%s,"device":%s,"mountPoint":%s,"dataDir":%s,"formatted":%s,"hasData":%s,"memberId":%s}\n' \
  "$(qk_json_str "$volume_id")" "$(qk_json_str "${dev#"$QK_ROOT"}")" "$(qk_json_str "$mount_point")" "$(qk_json_str "$data_dir")" "$formatted" "$has_data" "$member_id_json"
