"""Volumes and snapshots as AWS objects: create (or restore), list, delete, snapshot.

A new volume's zone comes from what the user named — ``--instance-id`` (the instance's zone),
``--availability-zone`` (checked against the region's zones) — else the configured subnet's zone,
else the region's first available zone as EC2 reports it: never a guessed ``<region>-1a``. Every
volume and snapshot is tagged at creation (docs/reference.md, "Safety"); delete refuses attached,
protected and (without ``force``) foreign volumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runctl.errors import UsageError, WrongStateError
from runctl.services import tags as tagging
from runctl.services.volumes.costs import snapshot_month_usd, volume_month_usd
from runctl.services.volumes.specs import VolumeShape

if TYPE_CHECKING:
    from runctl.aws.ebs import Ebs, Snapshot, Volume
    from runctl.services.account.resources import Scope
    from runctl.services.jobs.session import JobSession

#: On a volume runctl made for a job's attempt: the volume it is a copy of.
SOURCE_VOLUME = "runctl:source-volume"
#: On a volume: when ``aws ebs pre-warm`` last finished filling it (ISO UTC).
PREWARMED = "runctl:prewarmed"


@dataclass(frozen=True)
class NewVolume:
    """What ``aws ebs create`` / ``restore`` asked for (shape already checked)."""

    shape: VolumeShape
    project: str
    user: str
    availability_zone: str | None = None
    instance_id: str | None = None
    snapshot_id: str | None = None
    name: str | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)
    job_id: str | None = None


@dataclass
class VolumeRow:
    """One volume as ``aws ebs list`` and ``resources list`` show it (stable JSON keys)."""

    volume_id: str
    name: str | None
    state: str
    size_gb: int
    volume_type: str
    iops: int | None
    throughput: int | None
    availability_zone: str
    attached_to: str | None
    device: str | None
    month_usd: float | None
    project: str | None
    job: str | None
    source_volume: str | None
    snapshot_id: str | None
    prewarmed: str | None
    managed: bool
    protected: bool
    created: datetime | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class SnapshotRow:
    """One snapshot as ``aws ebs snapshot-list`` and ``resources list`` show it."""

    snapshot_id: str
    volume_id: str | None
    name: str | None
    state: str
    size_gb: int
    description: str
    started: datetime | None
    month_usd: float
    project: str | None
    job: str | None
    managed: bool
    protected: bool
    tags: dict[str, str] = field(default_factory=dict)


def volume_row(volume: Volume) -> VolumeRow:
    tags = volume.tags
    return VolumeRow(
        volume_id=volume.volume_id,
        name=volume.name,
        state=volume.state,
        size_gb=volume.size_gb,
        volume_type=volume.volume_type,
        iops=volume.iops,
        throughput=volume.throughput,
        availability_zone=volume.availability_zone,
        attached_to=volume.attached_to,
        device=volume.device,
        month_usd=volume_month_usd(
            volume.volume_type, volume.size_gb, volume.iops, volume.throughput
        ),
        project=tags.get(tagging.PROJECT),
        job=tags.get(tagging.JOB),
        source_volume=tags.get(SOURCE_VOLUME),
        snapshot_id=volume.snapshot_id,
        prewarmed=tags.get(PREWARMED),
        managed=tagging.is_managed(tags),
        protected=tagging.is_protected(tags),
        created=volume.create_time,
        tags=dict(tags),
    )


def snapshot_row(snapshot: Snapshot) -> SnapshotRow:
    tags = snapshot.tags
    return SnapshotRow(
        snapshot_id=snapshot.snapshot_id,
        volume_id=snapshot.volume_id,
        name=snapshot.name,
        state=snapshot.state,
        size_gb=snapshot.size_gb,
        description=snapshot.description,
        started=snapshot.start_time,
        month_usd=snapshot_month_usd(snapshot.size_gb),
        project=tags.get(tagging.PROJECT),
        job=tags.get(tagging.JOB),
        managed=tagging.is_managed(tags),
        protected=tagging.is_protected(tags),
        tags=dict(tags),
    )


def resolve_zone(session: JobSession, request: NewVolume) -> tuple[str, str]:
    """(zone, where it came from) for a new volume."""
    ec2 = session.ec2
    zones = [zone.name for zone in ec2.describe_availability_zones()]
    if request.instance_id:
        instance = ec2.describe_instance(request.instance_id)
        if not instance.availability_zone:
            raise WrongStateError(
                f"instance {request.instance_id} has no zone ({instance.state})",
                resource=request.instance_id,
            )
        return instance.availability_zone, f"the zone of {request.instance_id}"
    if request.availability_zone:
        if request.availability_zone not in zones:
            raise UsageError(
                f"--availability-zone {request.availability_zone} is not an available zone "
                f"of {ec2.region}",
                hint=f"use one of {', '.join(zones)}",
                resource=request.availability_zone,
            )
        return request.availability_zone, "--availability-zone"
    subnet_id = session.settings.aws.subnet_id
    if subnet_id:
        found = ec2.describe_subnets(subnet_ids=[subnet_id])
        if found:
            return found[0].availability_zone, f"the zone of aws.subnet_id {subnet_id}"
    if not zones:
        raise WrongStateError(f"{ec2.region} reports no available zone", resource=ec2.region)
    return zones[0], f"the first available zone of {ec2.region}"


def create_volume(
    session: JobSession, request: NewVolume, *, timeout: float = 300
) -> tuple[Volume, str]:
    """Create the volume (from a snapshot when asked), tagged at creation, and wait until it is
    available; (volume, where its zone came from)."""
    from runctl.aws.ebs import VolumeSpec

    ebs = session.ebs
    zone, why = resolve_zone(session, request)
    shape = request.shape
    if request.snapshot_id:
        snapshot = ebs.describe_snapshot(request.snapshot_id)
        if shape.size_gb is not None and shape.size_gb < snapshot.size_gb:
            raise UsageError(
                f"--size {shape.size_gb}: snapshot {snapshot.snapshot_id} holds "
                f"{snapshot.size_gb} GiB; a volume from it needs at least that",
                resource=snapshot.snapshot_id,
            )
    name = request.name or f"runctl-{request.project}-data"
    tags = tagging.resource_tags(
        project=request.project, user=request.user, name=name, created=datetime.now(UTC),
        job=request.job_id, extra=request.extra_tags,
    )  # fmt: skip
    spec = VolumeSpec(
        availability_zone=zone, size_gb=shape.size_gb, volume_type=shape.volume_type,
        iops=shape.iops, throughput=shape.throughput, snapshot_id=request.snapshot_id, tags=tags,
    )  # fmt: skip
    created = ebs.create_volume(spec)
    return ebs.wait_volume(created.volume_id, "available", timeout=timeout), why


def list_volumes(ebs: Ebs, scope: Scope) -> list[VolumeRow]:
    """The volumes of ``scope`` (runctl's of the calling user by default), oldest first.

    Volumes an instance launch made (root and ``--data-volume-size`` volumes, tagged with the
    launch's ``runctl:request``) belong to their instance and are left out.
    """
    found = ebs.describe_volumes(filters=scope.filters() or None)
    rows = [volume_row(v) for v in found if tagging.REQUEST not in v.tags]
    return sorted(rows, key=lambda r: r.created or datetime.min.replace(tzinfo=UTC))


def list_snapshots(ebs: Ebs, scope: Scope, volume_id: str | None = None) -> list[SnapshotRow]:
    """This account's snapshots of ``scope`` (of one volume when asked), newest first."""
    filters: dict[str, list[str]] = dict(scope.filters())
    if volume_id:
        filters["volume-id"] = [volume_id]
    return [snapshot_row(s) for s in ebs.describe_snapshots(filters=filters or None)]


def check_may_delete(volume: Volume, *, force: bool) -> None:
    """Refuse to delete an attached, protected or (without ``force``) foreign volume."""
    volume_id = volume.volume_id
    if volume.attached_to:
        raise WrongStateError(
            f"volume {volume_id} is attached to {volume.attached_to}",
            hint=f"detach it first: `runctl aws ebs detach {volume_id}`",
            resource=volume_id,
        )
    if tagging.is_protected(volume.tags):
        raise WrongStateError(
            f"volume {volume_id} is tagged runctl:protected=true; runctl will not delete it",
            hint="remove the tag first if you really mean it",
            resource=volume_id,
        )
    if not force and not tagging.is_managed(volume.tags):
        raise UsageError(
            f"refusing to delete volume {volume_id} ({volume.name or 'no name'}): runctl did "
            "not create it",
            hint="pass --force to delete a volume runctl did not create",
            resource=volume_id,
        )


def delete_volume(
    ebs: Ebs, volume_id: str, *, force: bool = False, dry_run: bool = False
) -> Volume:
    """Delete the volume after :func:`check_may_delete` (a dry run only checks); the volume as
    it was."""
    volume = ebs.describe_volume(volume_id)
    check_may_delete(volume, force=force)
    if not dry_run:
        ebs.delete_volume(volume_id)
    return volume


def snapshot_volume(
    session: JobSession,
    volume_id: str,
    *,
    description: str | None = None,
    wait: bool = False,
    job_id: str | None = None,
    job_uri: str | None = None,
    timeout: float = 3600,
) -> Snapshot:
    """Snapshot the volume, tagged at creation with the volume's project (and ``job_id``);
    with ``wait`` until the snapshot is completed."""
    ebs = session.ebs
    volume = ebs.describe_volume(volume_id)
    project = volume.tags.get(tagging.PROJECT) or session.settings.aws.project_name or "runctl"
    tags = tagging.resource_tags(
        project=project, user=tagging.current_user(),
        name=f"{volume.name or volume_id} snapshot", created=datetime.now(UTC), job=job_id,
        extra={"runctl:volume": volume_id, **({tagging.JOB_URI: job_uri} if job_uri else {})},
    )  # fmt: skip
    text = description or f"runctl snapshot of {volume_id}"
    snapshot = ebs.create_snapshot(volume_id, description=text, tags=tags)
    return ebs.wait_snapshot(snapshot.snapshot_id, timeout=timeout) if wait else snapshot
