#!/bin/bash
# runctl instance bootstrap. Kept minimal on purpose: no OS upgrade, nothing fetched from the
# network. It prepares runctl's root and, when a data volume was requested, formats it if blank
# and mounts it at /mnt/data. In a test sandbox RUNCTL_REMOTE_ROOT is set and devices are skipped.
set -u
# runctl fills in the root as one shell-quoted word and the data volume size as an integer.
ROOT="${RUNCTL_REMOTE_ROOT:-}"
[ -n "$ROOT" ] || ROOT=__REMOTE_ROOT__
DATA_GB=__DATA_VOLUME_GB__
mkdir -p "$ROOT" && chmod 755 "$ROOT"
log() { echo "runctl-bootstrap: $*"; }

data_device() {
  # Xen names it /dev/sdf or /dev/xvdf; Nitro exposes EBS as NVMe, found by model and size.
  for dev in /dev/sdf /dev/xvdf; do
    if [ -b "$dev" ]; then readlink -f "$dev"; return 0; fi
  done
  root_disk=$(lsblk -no PKNAME "$(findmnt -no SOURCE /)" 2>/dev/null)
  want=$((DATA_GB * 1024 * 1024 * 1024 / 512))
  for sys in /sys/block/nvme*n1; do
    [ -e "$sys" ] || continue
    name=$(basename "$sys")
    [ "$name" = "$root_disk" ] && continue
    grep -q "Elastic Block Store" "$sys/device/model" 2>/dev/null || continue
    [ "$(cat "$sys/size")" = "$want" ] || continue
    echo "/dev/$name"; return 0
  done
  return 1
}

if [ "$DATA_GB" -gt 0 ] && [ -z "${RUNCTL_REMOTE_ROOT:-}" ]; then
  dev=""
  for _ in $(seq 1 60); do
    dev=$(data_device) && break
    sleep 2
  done
  if [ -z "$dev" ]; then
    log "data volume (${DATA_GB} GB) not found; /mnt/data not mounted"
  else
    if ! blkid "$dev" >/dev/null 2>&1; then
      log "formatting blank data volume $dev"
      mkfs.ext4 -q -L runctl-data "$dev"
    fi
    mkdir -p /mnt/data
    uuid=$(blkid -s UUID -o value "$dev")
    grep -q "$uuid" /etc/fstab || echo "UUID=$uuid /mnt/data ext4 defaults,nofail 0 2" >> /etc/fstab
    mount /mnt/data && log "data volume $dev mounted at /mnt/data"
  fi
fi
log "ready"
