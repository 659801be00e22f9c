"""The bash scripts runctl sends to an instance for its EBS volumes, built here and nowhere else
(the volume counterpart of :mod:`runctl.services.jobs.commands`; the same rules hold: every value
goes through ``shlex.quote``, inline code travels in quoted heredocs).

Every system path (``/dev``, ``/etc/fstab``, the mount point) is read under
``$RUNCTL_SYSTEM_ROOT`` (unset on an instance; a test sandbox sets it), so the same text runs on
an instance and in a sandbox.

- :func:`mount_command`: find the volume's device by its id under ``/dev/disk/by-id`` (Nitro
  instances expose EBS as NVMe, whose names have nothing to do with the requested ``/dev/sdf``;
  Xen instances use the requested name or its ``xvd`` twin), waiting for it to appear; make a
  filesystem only when the device is blank (no filesystem and no partition table); mount it
  (unless it is mounted already); keep one ``UUID=... <mount> <fs> defaults,nofail 0 2`` line in
  ``/etc/fstab`` (``nofail``: a boot without the volume still comes up).
- :func:`unmount_command`: unmount every mount of the volume's device and drop its fstab line;
  a busy mount names the processes holding it (``--force``: lazy unmount instead).
- :func:`fill_command`: fetch runctl's runtime bundle and copy an S3 URI into a directory with
  :mod:`runctl.remote.fill` (used by ``aws ebs pre-warm``).

Results come back as one ``RUNCTL-VOLUME key=value ...`` line (:func:`parse_volume_line`) or,
on a refusal, ``RUNCTL-ERROR <code> <message>`` with exit status 3.
"""

from __future__ import annotations

import shlex

from runctl.job.layout import DEFAULT_REMOTE_ROOT, SYSTEM_ROOT_ENV
from runctl.services.jobs.commands import root_lines, runtime_lines

#: How long the mount script waits for an attached volume's device to appear.
DEVICE_WAIT_SECONDS = 60
LABEL = "runctl-data"

_FIND_DEVICE = """\
find_device() {
  id="vol${vol#vol-}"
  for link in "$sys"/dev/disk/by-id/*"$id" "$sys"/dev/disk/by-id/*"$id"_1; do
    [ -e "$link" ] && { readlink -f "$link"; return 0; }
  done
  for dev in "$sys$want" "$sys/dev/xvd${want#/dev/sd}"; do
    [ -e "$dev" ] && { readlink -f "$dev"; return 0; }
  done
  return 1
}
fail() { echo "RUNCTL-ERROR $1 $2"; exit 3; }
drop_fstab() {
  [ -f "$sys/etc/fstab" ] || return 0
  awk -v m="$1" -v u="UUID=$2" '$2 != m && ($1 != u || u == "UUID=")' "$sys/etc/fstab" \\
    > "$sys/etc/fstab.runctl" && cat "$sys/etc/fstab.runctl" > "$sys/etc/fstab"
  rm -f "$sys/etc/fstab.runctl"
}"""

_HOLDERS = """\
import os, sys
target = os.path.realpath(sys.argv[1])
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        links = ["cwd"] + ["fd/" + fd for fd in os.listdir("/proc/%s/fd" % pid)]
    except OSError:
        continue
    paths = []
    for link in links:
        try:
            paths.append(os.readlink("/proc/%s/%s" % (pid, link)))
        except OSError:
            pass
    if any(p == target or p.startswith(target + "/") for p in paths):
        try:
            cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\\0", b" ").decode()
        except OSError:
            cmd = "?"
        print("%s:%s" % (pid, cmd.strip()[:60]))
"""


def _head(volume_id: str, device: str) -> list[str]:
    return [
        "set -u",
        f"sys=${{{SYSTEM_ROOT_ENV}:-}}",
        f"vol={shlex.quote(volume_id)}",
        f"want={shlex.quote(device)}",
        _FIND_DEVICE,
    ]


def mount_command(
    volume_id: str, device: str, mount: str, *, wait_seconds: int = DEVICE_WAIT_SECONDS
) -> str:
    """Bash that mounts the volume at ``mount`` (see the module docstring); prints
    ``RUNCTL-VOLUME device=... mount=... fstype=... uuid=... formatted=0|1 already=0|1``."""
    return "\n".join(
        [
            *_head(volume_id, device),
            f"mnt={shlex.quote(mount)}",
            'dev=""',
            f"for _ in $(seq 1 {int(wait_seconds)}); do",
            "  dev=$(find_device) && break",
            "  sleep 1",
            "done",
            '[ -n "$dev" ] || fail no-device "no device for $vol under /dev/disk/by-id '
            '(attached as $want)"',
            'current=$(findmnt -rn -o TARGET --source "$dev" 2>/dev/null | head -n 1)',
            'fstype=$(blkid -o value -s TYPE "$dev" 2>/dev/null || true)',
            'uuid=$(blkid -o value -s UUID "$dev" 2>/dev/null || true)',
            'if [ -n "$current" ]; then',
            '  echo "RUNCTL-VOLUME device=${dev#"$sys"} mount=${current#"$sys"} '
            'fstype=$fstype uuid=$uuid formatted=0 already=1"',
            "  exit 0",
            "fi",
            'other=$(findmnt -rn -o SOURCE --mountpoint "$sys$mnt" 2>/dev/null || true)',
            '[ -z "$other" ] || fail mount-busy "$mnt already has ${other#"$sys"} mounted"',
            "formatted=0",
            'if [ -z "$fstype" ]; then',
            '  if blkid -p "$dev" >/dev/null 2>&1; then',
            '    fail not-blank "${dev#"$sys"} holds a partition table or an unknown '
            'signature; runctl formats only blank volumes"',
            "  fi",
            "  if command -v mkfs.ext4 >/dev/null 2>&1; then fstype=ext4; "
            f'mkfs.ext4 -q -L {LABEL} "$dev" || fail mkfs "mkfs.ext4 failed";',
            f'  else fstype=xfs; mkfs.xfs -q -L {LABEL} "$dev" || fail mkfs "mkfs.xfs failed"; fi',
            '  uuid=$(blkid -o value -s UUID "$dev" 2>/dev/null || true)',
            "  formatted=1",
            "fi",
            'mkdir -p "$sys$mnt"',
            'mount -t "$fstype" "$dev" "$sys$mnt" || fail mount "mount of ${dev#"$sys"} on $mnt '
            'failed"',
            'mkdir -p "$sys/etc" && touch "$sys/etc/fstab"',
            'drop_fstab "$mnt" "$uuid"',
            'if [ -n "$uuid" ]; then',
            '  printf \'UUID=%s %s %s defaults,nofail 0 2\\n\' "$uuid" "$mnt" "$fstype" '
            '>> "$sys/etc/fstab"',
            "fi",
            'echo "RUNCTL-VOLUME device=${dev#"$sys"} mount=$mnt fstype=$fstype uuid=$uuid '
            'formatted=$formatted already=0"',
        ]
    )


def unmount_command(volume_id: str, device: str, *, force: bool = False) -> str:
    """Bash that unmounts every mount of the volume and drops its fstab lines; prints
    ``RUNCTL-VOLUME device=... unmounted=<mounts, comma-separated> visible=0|1``. A busy mount
    fails with ``RUNCTL-ERROR busy <holders>`` unless ``force`` (lazy unmount)."""
    lazy = "1" if force else "0"
    return "\n".join(
        [
            *_head(volume_id, device),
            'dev=$(find_device) || { echo "RUNCTL-VOLUME device= unmounted= visible=0"; exit 0; }',
            'uuid=$(blkid -o value -s UUID "$dev" 2>/dev/null || true)',
            'done_list=""',
            'for target in $(findmnt -rn -o TARGET --source "$dev" 2>/dev/null); do',
            '  if ! umount "$target" 2>/dev/null; then',
            f'    if [ {lazy} = 1 ]; then umount -l "$target" || fail umount "umount -l failed";',
            "    else",
            "      holders=$(python3 - \"$target\" <<'RUNCTL_HOLDERS' | tr '\\n' ' '",
            _HOLDERS.rstrip("\n"),
            "RUNCTL_HOLDERS",
            ")",
            '      fail busy "${target#"$sys"} is in use by ${holders:-a process}"',
            "    fi",
            "  fi",
            '  drop_fstab "${target#"$sys"}" "$uuid"',
            '  done_list="$done_list${done_list:+,}${target#"$sys"}"',
            "done",
            'drop_fstab "-" "$uuid"',
            "sync",
            'echo "RUNCTL-VOLUME device=${dev#"$sys"} unmounted=$done_list visible=1"',
        ]
    )


def fill_command(
    runtime_url: str,
    runtime_sha: str,
    source: str,
    mount: str,
    *,
    region: str | None = None,
    remote_root_default: str = DEFAULT_REMOTE_ROOT,
) -> str:
    """Bash that copies ``source`` (an S3 prefix or object) into ``mount`` with the runtime
    bundle's S3 engine; prints the JSON of :mod:`runctl.remote.fill`."""
    fill = [
        "exec python3 -m runctl.remote.fill",
        f"--source {shlex.quote(source)}",
        f'--dest "$sys"{shlex.quote(mount)}',
    ]
    if region:
        fill.append(f"--region {shlex.quote(region)}")
    return (
        "\n".join(
            [
                "set -eu",
                f"sys=${{{SYSTEM_ROOT_ENV}:-}}",
                *root_lines(remote_root_default),
                *runtime_lines(runtime_url, runtime_sha),
                " ".join(fill),
            ]
        )
        + "\n"
    )


def parse_volume_line(stdout: str) -> dict[str, str]:
    """The ``key=value`` pairs of the last ``RUNCTL-VOLUME`` line; ValueError when there is
    none."""
    for raw in reversed(stdout.strip().splitlines()):
        if raw.startswith("RUNCTL-VOLUME"):
            pairs = (token.partition("=") for token in raw.split()[1:])
            return {key: value for key, _, value in pairs}
    raise ValueError("the command printed no RUNCTL-VOLUME line")


def parse_error_line(stdout: str) -> tuple[str, str] | None:
    """(code, message) of a ``RUNCTL-ERROR`` line, or None."""
    for raw in reversed(stdout.strip().splitlines()):
        if raw.startswith("RUNCTL-ERROR "):
            _, code, message = [*raw.split(" ", 2), "", ""][:3]
            return code, message
    return None
