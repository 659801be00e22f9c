"""What a volume may be, checked before any AWS call: ids, types and their limits, the gp3
presets, device names and mount points.

Limits are EBS's (https://docs.aws.amazon.com/ebs/latest/userguide/ebs-volume-types.html):
gp3 1-16,384 GiB with 3,000-16,000 IOPS (at most 500 per GiB above the 3,000 baseline) and
125-1,000 MiB/s (at most 0.25 MiB/s per IOPS); gp2 1-16,384 GiB; io2 4-16,384 GiB with
100-64,000 IOPS (at most 500 per GiB); st1 125-16,384 GiB. IOPS and throughput are given only
where the type takes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runctl.errors import UsageError

VOLUME_ID_RE = re.compile(r"^vol-([0-9a-f]{8}|[0-9a-f]{17})$")
SNAPSHOT_ID_RE = re.compile(r"^snap-([0-9a-f]{8}|[0-9a-f]{17})$")
ZONE_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")
DEVICE_RE = re.compile(r"^/dev/(sd[f-p]|xvd[f-p])$")
MOUNT_RE = re.compile(r"^(/[A-Za-z0-9._-]+)+$")
#: Mount points that would hide the system, or runctl's own root.
RESERVED_MOUNTS = (
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/opt/runctl", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
)  # fmt: skip
#: Device names runctl attaches volumes as (AWS's recommended range for EBS data volumes).
DEVICE_NAMES = tuple(f"/dev/sd{letter}" for letter in "fghijklmnop")
DEFAULT_MOUNT = "/mnt/data"
VOLUME_TYPES = ("gp3", "gp2", "io2", "st1")


@dataclass(frozen=True)
class TypeLimits:
    min_gb: int
    max_gb: int
    min_iops: int | None = None
    max_iops: int | None = None
    iops_per_gb: int | None = None
    min_throughput: int | None = None
    max_throughput: int | None = None


LIMITS = {
    "gp3": TypeLimits(1, 16384, 3000, 16000, 500, 125, 1000),
    "gp2": TypeLimits(1, 16384),
    "io2": TypeLimits(4, 16384, 100, 64000, 500),
    "st1": TypeLimits(125, 16384),
}
GP3_BASELINE_IOPS = 3000
GP3_BASELINE_THROUGHPUT = 125
#: MiB/s of throughput each provisioned gp3 IOPS allows.
GP3_THROUGHPUT_PER_IOPS = 0.25


@dataclass(frozen=True)
class Preset:
    """gp3 sizing for one use: IOPS and MiB/s asked for (clamped to what the size allows)."""

    name: str
    iops: int
    throughput: int
    why: str


PRESETS = {
    # Datasets are read sequentially in large chunks by data loaders: throughput matters most.
    "dataset": Preset("dataset", 4000, 500, "sequential reads by data loaders"),
    # Checkpoints are written in bursts of large files, and read back on resume.
    "checkpoints": Preset("checkpoints", 3000, 250, "bursts of large sequential writes"),
}


@dataclass(frozen=True)
class VolumeShape:
    """A checked volume shape: type, size (None: the snapshot's), IOPS and throughput."""

    volume_type: str
    size_gb: int | None
    iops: int | None
    throughput: int | None


def check_volume_id(value: str, option: str = "VOLUME") -> str:
    if not VOLUME_ID_RE.match(value):
        raise UsageError(f"{option} {value!r} is not a volume id (vol-...)", resource=value)
    return value


def check_snapshot_id(value: str, option: str = "SNAPSHOT") -> str:
    if not SNAPSHOT_ID_RE.match(value):
        raise UsageError(f"{option} {value!r} is not a snapshot id (snap-...)", resource=value)
    return value


def check_zone(value: str) -> str:
    if not ZONE_RE.match(value):
        raise UsageError(
            f"--availability-zone {value!r} is not a zone name",
            hint="e.g. us-east-1a; `aws ec2 describe-availability-zones` lists them",
            resource=value,
        )
    return value


def check_device(value: str) -> str:
    if not DEVICE_RE.match(value):
        raise UsageError(
            f"--device {value!r}: use /dev/sdf ... /dev/sdp",
            hint="the name EC2 records; runctl finds the real device by the volume's id",
            resource=value,
        )
    return value


def check_mount(value: str) -> str:
    """An absolute mount point of plain path characters, not a system directory."""
    cleaned = value.rstrip("/") or "/"
    if not MOUNT_RE.match(cleaned) or any(part in (".", "..") for part in cleaned.split("/")):
        raise UsageError(
            f"--mount {value!r}: give an absolute path of letters, digits and ._-",
            hint=f"e.g. {DEFAULT_MOUNT}",
            resource=value,
        )
    if cleaned in RESERVED_MOUNTS:
        raise UsageError(
            f"--mount {value!r} would hide a system directory",
            hint=f"use a directory under /mnt, e.g. {DEFAULT_MOUNT}",
            resource=value,
        )
    return cleaned


def volume_shape(
    volume_type: str,
    size_gb: int | None,
    *,
    iops: int | None = None,
    throughput: int | None = None,
    preset: str | None = None,
    from_snapshot: bool = False,
) -> VolumeShape:
    """The checked shape of a new volume (UsageError, exit 2, on the first problem).

    ``preset`` (gp3 only) fills IOPS and throughput for its use, within what the size allows;
    explicit ``iops``/``throughput`` win over it. Without ``size_gb`` the volume takes its
    snapshot's size (``from_snapshot``).
    """
    if volume_type not in LIMITS:
        raise UsageError(f"--type {volume_type!r}: use one of {', '.join(VOLUME_TYPES)}")
    limits = LIMITS[volume_type]
    if size_gb is None and not from_snapshot:
        raise UsageError("--size is required (GiB), unless the volume comes from a snapshot")
    if size_gb is not None and not limits.min_gb <= size_gb <= limits.max_gb:
        raise UsageError(
            f"--size {size_gb}: {volume_type} volumes are {limits.min_gb}-{limits.max_gb} GiB"
        )
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"--preset {preset!r}: use one of {', '.join(PRESETS)}")
        if volume_type != "gp3":
            raise UsageError(f"--preset sizes gp3 volumes; --type is {volume_type}")
        chosen = PRESETS[preset]
        iops = iops if iops is not None else chosen.iops
        throughput = throughput if throughput is not None else chosen.throughput
        iops, throughput = _clamp_gp3(size_gb, iops, throughput)
    _check_iops(volume_type, limits, size_gb, iops)
    _check_throughput(volume_type, limits, iops, throughput)
    return VolumeShape(volume_type, size_gb, iops, throughput)


def _clamp_gp3(size_gb: int | None, iops: int, throughput: int) -> tuple[int, int]:
    """What gp3 allows of a preset for this size (a small volume gets less than asked)."""
    limits = LIMITS["gp3"]
    assert limits.max_iops is not None and limits.max_throughput is not None
    most_iops = limits.max_iops
    if size_gb is not None:
        most_iops = max(GP3_BASELINE_IOPS, min(most_iops, 500 * size_gb))
    iops = min(iops, most_iops)
    throughput = min(throughput, limits.max_throughput, int(iops * GP3_THROUGHPUT_PER_IOPS))
    return iops, max(throughput, GP3_BASELINE_THROUGHPUT)


def _check_iops(
    volume_type: str, limits: TypeLimits, size_gb: int | None, iops: int | None
) -> None:
    if iops is None:
        if volume_type == "io2":
            raise UsageError("--iops is required for io2 volumes (100-64000)")
        return
    if limits.min_iops is None or limits.max_iops is None:
        raise UsageError(f"--iops: {volume_type} volumes take no IOPS setting (use gp3 or io2)")
    if not limits.min_iops <= iops <= limits.max_iops:
        raise UsageError(
            f"--iops {iops}: {volume_type} takes {limits.min_iops}-{limits.max_iops} IOPS"
        )
    per_gb = limits.iops_per_gb
    floor = GP3_BASELINE_IOPS if volume_type == "gp3" else 0
    if per_gb and size_gb is not None and iops > max(per_gb * size_gb, floor):
        raise UsageError(
            f"--iops {iops}: a {size_gb} GiB {volume_type} volume takes at most "
            f"{per_gb} IOPS per GiB",
            hint=f"raise --size to at least {-(-iops // per_gb)} GiB",
        )


def _check_throughput(
    volume_type: str, limits: TypeLimits, iops: int | None, throughput: int | None
) -> None:
    if throughput is None:
        return
    if limits.min_throughput is None or limits.max_throughput is None:
        raise UsageError(f"--throughput: only gp3 volumes take a throughput ({volume_type})")
    if not limits.min_throughput <= throughput <= limits.max_throughput:
        raise UsageError(
            f"--throughput {throughput}: gp3 takes {limits.min_throughput}-"
            f"{limits.max_throughput} MiB/s"
        )
    allowed_by = iops if iops is not None else GP3_BASELINE_IOPS
    if throughput > allowed_by * GP3_THROUGHPUT_PER_IOPS:
        raise UsageError(
            f"--throughput {throughput}: {allowed_by} IOPS allow at most "
            f"{int(allowed_by * GP3_THROUGHPUT_PER_IOPS)} MiB/s",
            hint=f"add --iops {int(throughput / GP3_THROUGHPUT_PER_IOPS)}",
        )


def free_device(used: set[str]) -> str:
    """The first of /dev/sdf ... /dev/sdp that the instance does not use (``xvdX`` counts as
    ``sdX``); UsageError when all are taken."""
    taken = {name.replace("/dev/xvd", "/dev/sd") for name in used}
    for name in DEVICE_NAMES:
        if name not in taken:
            return name
    raise UsageError("every device name /dev/sdf ... /dev/sdp is taken on this instance")


def check_placement(zone: str | None, instance_id: str | None, snapshot_id: str | None) -> None:
    """``--availability-zone`` and ``--instance-id`` exclude each other; each is checked."""
    from runctl.services.instances.lifecycle import validate_instance_id

    if zone and instance_id:
        raise UsageError("give --availability-zone or --instance-id, not both")
    if zone:
        check_zone(zone)
    if instance_id:
        validate_instance_id(instance_id)
    if snapshot_id:
        check_snapshot_id(snapshot_id, "--snapshot-id")


def check_prewarm(
    volume_id: str,
    s3_uri: str | None,
    s3_source: str | None,
    instance_id: str | None,
    mount: str,
) -> str:
    """The S3 source of ``aws ebs pre-warm`` (``S3_URI`` or ``--s3-source``, one of them),
    every argument checked before any AWS call."""
    from runctl.services.instances.lifecycle import validate_instance_id
    from runctl.services.jobs.local import check_s3_option

    check_volume_id(volume_id)
    if s3_uri and s3_source and s3_uri != s3_source:
        raise UsageError("give the S3 source once: S3_URI or --s3-source")
    source = s3_uri or s3_source
    if not source:
        raise UsageError(
            "pre-warm needs an S3 source", hint="e.g. runctl aws ebs pre-warm VOL s3://b/data/"
        )
    check_s3_option("S3_URI", source)
    if instance_id:
        validate_instance_id(instance_id)
    check_mount(mount)
    return source


def check_volume_option(volume_id: str, data_volume_gb: int | None, count: int = 1) -> None:
    """``aws create --volume``: a volume id, for one instance (a volume attaches to one), and not
    with ``--data-volume-size`` (both would be ``/mnt/data``)."""
    check_volume_id(volume_id, "--volume")
    if count != 1:
        raise UsageError(
            f"--volume attaches one volume to one instance; --count is {count}",
            hint="launch the others without --volume, or give each its own volume later with "
            "`runctl aws ebs attach`",
        )
    if data_volume_gb:
        raise UsageError(
            "--volume and --data-volume-size both give /mnt/data; pass one of them",
            hint="attach more volumes later with `runctl aws ebs attach VOL ID --mount PATH`",
        )
