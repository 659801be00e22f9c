"""EBS volumes on the harness's instances: a directory per volume, devices and mounts per sandbox.

A volume is ``<harness root>/volumes/<vol-id>/``: ``data/`` is its filesystem's content and
``fs.json`` (``{"type", "uuid", "label"}``) exists once a filesystem was made; a volume without it
is blank. The directory exists as long as moto knows the volume, so a volume outlives an instance
it was attached to unless moto deletes it with the instance (DeleteOnTermination). CreateSnapshot
copies the volume's directory to ``<harness root>/snapshots/<snap-id>/`` at that moment;
CreateVolume from a snapshot starts as a copy of it.

While a volume is attached to a running instance (not as its root device), the instance's sandbox
shows it as a Nitro instance does: ``dev/nvme<N>n1`` (N in attach order, nothing to do with the
requested ``/dev/sdf``) and ``dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<hex>`` pointing
at it. The device node is a small file naming the volume, which the harness's ``blkid``,
``mkfs.ext4``/``mkfs.xfs``, ``mount``, ``umount`` and ``findmnt`` understand
(:mod:`tests.cloud.ebs_tools`; they refuse anything else). ``mount`` makes the mount point a
symlink to the volume's ``data/`` (a non-empty directory is moved aside and comes back on
``umount``); ``umount`` refuses with "target is busy" while a process holds a file there.

Instance processes get ``RUNCTL_SYSTEM_ROOT`` = their sandbox, under which runctl's scripts read
``/dev``, ``/etc/fstab`` and mount points. Stopping an instance drops its mounts; starting it
mounts again what its ``etc/fstab`` lists by ``UUID=``. Detaching a mounted volume leaves the
mount point empty (a stale mount).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.cloud.harness import Cloud
    from tests.cloud.instances import InstanceRuntime

DEVICE_MARKER = "harness-ebs"
BY_ID = "dev/disk/by-id"
MOUNTS = "var/lib/harness/mounts.json"
HIDDEN = "var/lib/harness/hidden"
ROOT_DEVICES = ("/dev/sda1", "/dev/xvda")


def by_id_name(volume_id: str) -> str:
    """``vol-0abc`` -> ``nvme-Amazon_Elastic_Block_Store_vol0abc`` (the NVMe serial's link)."""
    return "nvme-Amazon_Elastic_Block_Store_" + volume_id.replace("-", "")


def read_device(path: Path) -> tuple[str, Path] | None:
    """(volume id, volume directory) named by a harness device file, or None."""
    try:
        words = path.read_text().split()
    except (OSError, UnicodeDecodeError):
        return None
    if len(words) != 3 or words[0] != DEVICE_MARKER:
        return None
    return words[1], Path(words[2])


def load_mounts(sandbox: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads((sandbox / MOUNTS).read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def save_mounts(sandbox: Path, mounts: list[dict[str, Any]]) -> None:
    path = sandbox / MOUNTS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(mounts))
    os.replace(tmp, path)


def attach_mount(sandbox: Path, device: Path, target: Path, volume_dir: Path) -> None:
    """Mount ``volume_dir``'s data at ``target`` (which must be a directory)."""
    hidden = None
    if any(target.iterdir()):
        store = sandbox / HIDDEN
        store.mkdir(parents=True, exist_ok=True)
        hidden = str(store / f"{len(list(store.iterdir()))}-{target.name}")
        os.rename(target, hidden)
    else:
        target.rmdir()
    target.symlink_to(volume_dir / "data", target_is_directory=True)
    mounts = load_mounts(sandbox)
    mounts.append({"device": str(device), "target": str(target), "hidden": hidden})
    save_mounts(sandbox, mounts)


def detach_mount(sandbox: Path, entry: dict[str, Any]) -> None:
    """Undo one mount: the mount point becomes a directory again (what it hid, if anything)."""
    target = Path(entry["target"])
    if target.is_symlink():
        target.unlink()
    if entry.get("hidden") and Path(entry["hidden"]).exists():
        os.rename(entry["hidden"], target)
    else:
        target.mkdir(parents=True, exist_ok=True)
    save_mounts(sandbox, [m for m in load_mounts(sandbox) if m != entry])


class Volumes:
    """The harness's volume directories and what each sandbox sees of them."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.root = cloud.root / "volumes"
        self.snapshot_root = cloud.root / "snapshots"

    def reset(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.snapshot_root, ignore_errors=True)

    def volume_dir(self, volume_id: str) -> Path:
        """The volume's directory (``data/`` is what a mount shows)."""
        return self.root / volume_id

    def snapshot_dir(self, snapshot_id: str) -> Path:
        return self.snapshot_root / snapshot_id

    # -- moto -> disk ------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring volume and snapshot directories and every sandbox's devices in line with moto."""
        backend = self.cloud.ec2_backend()
        volumes = dict(backend.volumes)
        snapshots = dict(backend.snapshots)
        for snapshot_id, snapshot in snapshots.items():
            target = self.snapshot_dir(snapshot_id)
            if not target.exists():
                self._copy(self.volume_dir(snapshot.volume.id), target)
        for volume_id, volume in volumes.items():
            target = self.volume_dir(volume_id)
            if not target.exists():
                source = self.snapshot_dir(volume.snapshot_id) if volume.snapshot_id else None
                self._copy(source, target)
        self._prune(self.root, volumes)
        self._prune(self.snapshot_root, snapshots)
        for runtime in list(self.cloud.runtimes.values()):
            if runtime.powered and not runtime.terminated:
                self.sync_devices(runtime, volumes)

    @staticmethod
    def _copy(source: Path | None, target: Path) -> None:
        if source is not None and source.exists():
            shutil.copytree(source, target, symlinks=True)
        else:
            (target / "data").mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _prune(root: Path, known: dict[str, Any]) -> None:
        if not root.exists():
            return
        for entry in root.iterdir():
            if entry.name not in known:
                shutil.rmtree(entry, ignore_errors=True)

    def sync_devices(self, runtime: InstanceRuntime, volumes: dict[str, Any] | None = None) -> None:
        """Device files for the instance's attached (non-root) volumes; gone ones removed."""
        volumes = dict(self.cloud.ec2_backend().volumes) if volumes is None else volumes
        instance = runtime.instance()
        # The root volume is the sandbox itself (moto attaches its default one as /dev/sda1).
        roots = {getattr(instance, "root_device_name", None), *ROOT_DEVICES}
        wanted = {
            volume_id
            for volume_id, volume in volumes.items()
            if volume.attachment is not None
            and volume.attachment.instance.id == runtime.instance_id
            and volume.attachment.device not in roots
        }
        sandbox = runtime.sandbox
        dev, by_id = sandbox / "dev", sandbox / BY_ID
        by_id.mkdir(parents=True, exist_ok=True)
        present: dict[str, Path] = {}
        for node in dev.glob("nvme*n1"):
            named = read_device(node)
            if named is not None:
                present[named[0]] = node
        for volume_id, node in present.items():
            if volume_id not in wanted:
                for entry in load_mounts(sandbox):
                    if entry["device"] == str(node):
                        detach_mount(sandbox, entry)
                (by_id / by_id_name(volume_id)).unlink(missing_ok=True)
                node.unlink(missing_ok=True)
        used = {int(n.name[4:-2]) for n in dev.glob("nvme*n1") if n.name[4:-2].isdigit()}
        for volume_id in sorted(wanted - set(present)):
            number = next(i for i in range(1, 64) if i not in used)
            used.add(number)
            node = dev / f"nvme{number}n1"
            node.write_text(f"{DEVICE_MARKER} {volume_id} {self.volume_dir(volume_id)}\n")
            link = by_id / by_id_name(volume_id)
            link.unlink(missing_ok=True)
            link.symlink_to(f"../../{node.name}")

    # -- power ---------------------------------------------------------------------------------

    def power_off(self, runtime: InstanceRuntime) -> None:
        """A stop or reboot: every mount goes."""
        for entry in load_mounts(runtime.sandbox):
            detach_mount(runtime.sandbox, entry)

    def power_on(self, runtime: InstanceRuntime) -> None:
        """A boot: devices appear, and what etc/fstab lists by UUID is mounted (as systemd does,
        ``nofail`` lines whose volume is missing are skipped)."""
        self.sync_devices(runtime)
        sandbox = runtime.sandbox
        try:
            lines = (sandbox / "etc/fstab").read_text().splitlines()
        except OSError:
            return
        devices = {}
        for node in (sandbox / "dev").glob("nvme*n1"):
            named = read_device(node)
            fs = _fs(named[1]) if named else None
            if fs:
                devices[fs.get("uuid")] = (node, named[1])  # type: ignore[index]
        for line in lines:
            fields = line.split()
            if len(fields) < 2 or not fields[0].startswith("UUID="):
                continue
            found = devices.get(fields[0][5:])
            if found is None:
                continue
            target = Path(str(sandbox) + fields[1])
            target.mkdir(parents=True, exist_ok=True)
            if not target.is_symlink():
                attach_mount(sandbox, found[0], target, found[1])


def _fs(volume_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((volume_dir / "fs.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
