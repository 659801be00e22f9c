"""Typed wrapper around EC2's EBS operations: volumes, attachments and snapshots.

Raw response dicts stop here; every call runs under :func:`~runctl.aws.errors.aws_errors`, so a
failure arrives as a runctl error naming the operation and the volume or snapshot. Waits poll
through :func:`runctl.polling.poll_until` (injected time) rather than botocore's waiters, so tests
never sleep and a timeout says which state was awaited.

AWS quirk kept in mind: DetachVolume always gets the instance id, because without it some
endpoints (moto among them) cannot find the attachment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runctl.aws.errors import aws_errors
from runctl.errors import NotFoundError, WaitTimeoutError
from runctl.polling import Timing, poll_until

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


@dataclass(frozen=True)
class VolumeAttachment:
    """Where a volume is attached: instance, requested device name and attachment state."""

    instance_id: str
    device: str
    state: str
    delete_on_termination: bool = False


@dataclass(frozen=True)
class Volume:
    """One EBS volume as DescribeVolumes reports it."""

    volume_id: str
    size_gb: int
    volume_type: str
    state: str
    availability_zone: str
    iops: int | None = None
    throughput: int | None = None
    snapshot_id: str | None = None
    create_time: datetime | None = None
    attachments: tuple[VolumeAttachment, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        return self.tags.get("Name")

    @property
    def attached_to(self) -> str | None:
        """The instance the volume is attached (or attaching) to, or None."""
        live = [a for a in self.attachments if a.state in ("attaching", "attached", "busy")]
        return live[0].instance_id if live else None

    @property
    def device(self) -> str | None:
        live = [a for a in self.attachments if a.state in ("attaching", "attached", "busy")]
        return live[0].device if live else None


@dataclass(frozen=True)
class Snapshot:
    """One EBS snapshot as DescribeSnapshots reports it."""

    snapshot_id: str
    volume_id: str | None
    size_gb: int
    state: str
    start_time: datetime | None
    description: str = ""
    progress: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        return self.tags.get("Name")


@dataclass(frozen=True)
class VolumeSpec:
    """Everything one CreateVolume call creates."""

    availability_zone: str
    size_gb: int | None
    volume_type: str = "gp3"
    iops: int | None = None
    throughput: int | None = None
    snapshot_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


class Ebs:
    """The EBS operations runctl uses, on one regional EC2 client."""

    def __init__(self, client: EC2Client, timing: Timing | None = None):
        self.client = client
        self.timing = timing or Timing(interval=1.0, max_interval=10.0)

    @property
    def region(self) -> str:
        return str(self.client.meta.region_name)

    # -- volumes ----------------------------------------------------------------------------------

    def create_volume(self, spec: VolumeSpec) -> Volume:
        """CreateVolume, tagged at creation; returns the new volume (usually ``creating``)."""
        kwargs: dict[str, Any] = {
            "AvailabilityZone": spec.availability_zone,
            "VolumeType": spec.volume_type,
        }
        if spec.size_gb is not None:
            kwargs["Size"] = spec.size_gb
        if spec.iops is not None:
            kwargs["Iops"] = spec.iops
        if spec.throughput is not None:
            kwargs["Throughput"] = spec.throughput
        if spec.snapshot_id:
            kwargs["SnapshotId"] = spec.snapshot_id
        if spec.tags:
            kwargs["TagSpecifications"] = [{"ResourceType": "volume", "Tags": _tag_list(spec.tags)}]
        with aws_errors("CreateVolume", spec.snapshot_id or spec.availability_zone):
            raw = self.client.create_volume(**kwargs)
        return _volume(raw)

    def describe_volumes(
        self,
        *,
        volume_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Volume]:
        """Volumes by id and/or filters (``{"tag:runctl:managed": ["true"]}``), all pages."""
        kwargs: dict[str, Any] = {}
        if volume_ids:
            kwargs["VolumeIds"] = list(volume_ids)
        if filters:
            kwargs["Filters"] = [{"Name": k, "Values": list(v)} for k, v in filters.items()]
        found: list[Volume] = []
        with aws_errors("DescribeVolumes", ",".join(volume_ids) or None):
            for page in self.client.get_paginator("describe_volumes").paginate(**kwargs):
                found.extend(_volume(raw) for raw in page.get("Volumes", []))
        return found

    def describe_volume(self, volume_id: str) -> Volume:
        """One volume; NotFoundError (exit 6) when it does not exist in this region."""
        try:
            found = self.describe_volumes(volume_ids=[volume_id])
        except NotFoundError:
            found = []
        if not found:
            raise NotFoundError(
                f"volume {volume_id} does not exist in {self.region}",
                hint="check the id and --region; `runctl aws ebs list` shows runctl's volumes",
                resource=volume_id,
            )
        return found[0]

    def attach_volume(self, volume_id: str, instance_id: str, device: str) -> VolumeAttachment:
        """AttachVolume; the attachment (usually ``attaching``)."""
        with aws_errors("AttachVolume", f"{volume_id} -> {instance_id}"):
            raw = self.client.attach_volume(
                VolumeId=volume_id, InstanceId=instance_id, Device=device
            )
        return _attachment(raw)

    def detach_volume(
        self, volume_id: str, instance_id: str, *, force: bool = False
    ) -> VolumeAttachment:
        """DetachVolume from ``instance_id`` (``force``: without the instance's cooperation)."""
        with aws_errors("DetachVolume", f"{volume_id} from {instance_id}"):
            raw = self.client.detach_volume(VolumeId=volume_id, InstanceId=instance_id, Force=force)
        return _attachment(raw)

    def delete_volume(self, volume_id: str) -> None:
        with aws_errors("DeleteVolume", volume_id):
            self.client.delete_volume(VolumeId=volume_id)

    def wait_volume(
        self, volume_id: str, state: str, *, attached_to: str | None = None, timeout: float = 300
    ) -> Volume:
        """Poll until the volume is ``state`` (with ``attached_to``: attached to that instance);
        WaitTimeoutError (exit 9) after ``timeout`` seconds."""

        def check() -> Volume | None:
            volume = self.describe_volume(volume_id)
            if attached_to is not None:
                done = any(
                    a.instance_id == attached_to and a.state == "attached"
                    for a in volume.attachments
                )
                return volume if done else None
            return volume if volume.state == state else None

        found = poll_until(check, timeout=timeout, timing=self.timing)
        if found is None:
            what = f"attached to {attached_to}" if attached_to else state
            raise WaitTimeoutError(
                f"volume {volume_id} was not {what} within {timeout:.0f}s",
                hint="check it with `runctl aws ebs list`; retry later",
                resource=volume_id,
            )
        return found

    # -- snapshots --------------------------------------------------------------------------------

    def create_snapshot(
        self, volume_id: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> Snapshot:
        """CreateSnapshot, tagged at creation; returns the snapshot (usually ``pending``)."""
        kwargs: dict[str, Any] = {"VolumeId": volume_id, "Description": description}
        if tags:
            kwargs["TagSpecifications"] = [{"ResourceType": "snapshot", "Tags": _tag_list(tags)}]
        with aws_errors("CreateSnapshot", volume_id):
            raw = self.client.create_snapshot(**kwargs)
        return _snapshot(raw)

    def describe_snapshots(
        self,
        *,
        snapshot_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Snapshot]:
        """This account's snapshots by id and/or filters, all pages, newest first."""
        kwargs: dict[str, Any] = {"OwnerIds": ["self"]}
        if snapshot_ids:
            kwargs["SnapshotIds"] = list(snapshot_ids)
        if filters:
            kwargs["Filters"] = [{"Name": k, "Values": list(v)} for k, v in filters.items()]
        found: list[Snapshot] = []
        with aws_errors("DescribeSnapshots", ",".join(snapshot_ids) or None):
            for page in self.client.get_paginator("describe_snapshots").paginate(**kwargs):
                found.extend(_snapshot(raw) for raw in page.get("Snapshots", []))
        return sorted(found, key=lambda s: s.start_time or datetime.min, reverse=True)

    def describe_snapshot(self, snapshot_id: str) -> Snapshot:
        """One snapshot; NotFoundError (exit 6) when this account has none by that id here."""
        try:
            found = self.describe_snapshots(snapshot_ids=[snapshot_id])
        except NotFoundError:
            found = []
        if not found:
            raise NotFoundError(
                f"snapshot {snapshot_id} does not exist in {self.region}",
                hint="check the id and --region; `runctl aws ebs snapshot-list` shows them",
                resource=snapshot_id,
            )
        return found[0]

    def delete_snapshot(self, snapshot_id: str) -> None:
        with aws_errors("DeleteSnapshot", snapshot_id):
            self.client.delete_snapshot(SnapshotId=snapshot_id)

    def wait_snapshot(self, snapshot_id: str, *, timeout: float = 3600) -> Snapshot:
        """Poll until the snapshot is ``completed``; WaitTimeoutError after ``timeout`` or when
        it failed (state ``error``)."""

        def check() -> Snapshot | None:
            snapshot = self.describe_snapshot(snapshot_id)
            if snapshot.state == "error":
                raise WaitTimeoutError(
                    f"snapshot {snapshot_id} failed (state error)",
                    hint="take a new snapshot",
                    resource=snapshot_id,
                )
            return snapshot if snapshot.state == "completed" else None

        found = poll_until(check, timeout=timeout, timing=self.timing)
        if found is None:
            raise WaitTimeoutError(
                f"snapshot {snapshot_id} did not complete within {timeout:.0f}s",
                hint="large first snapshots take a while; check `runctl aws ebs snapshot-list`",
                resource=snapshot_id,
            )
        return found


# -- response shapes ------------------------------------------------------------------------------


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def _tags(raw: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in raw.get("Tags", []) or []}


def _attachment(raw: Mapping[str, Any]) -> VolumeAttachment:
    return VolumeAttachment(
        instance_id=raw.get("InstanceId", ""),
        device=raw.get("Device", ""),
        state=raw.get("State", "unknown"),
        delete_on_termination=bool(raw.get("DeleteOnTermination", False)),
    )


def _volume(raw: Mapping[str, Any]) -> Volume:
    return Volume(
        volume_id=raw["VolumeId"],
        size_gb=int(raw.get("Size", 0)),
        volume_type=raw.get("VolumeType", "gp2"),
        state=raw.get("State", "unknown"),
        availability_zone=raw.get("AvailabilityZone", ""),
        iops=raw.get("Iops"),
        throughput=raw.get("Throughput"),
        snapshot_id=raw.get("SnapshotId") or None,
        create_time=raw.get("CreateTime"),
        attachments=tuple(_attachment(a) for a in raw.get("Attachments", []) or []),
        tags=_tags(raw),
    )


def _snapshot(raw: Mapping[str, Any]) -> Snapshot:
    return Snapshot(
        snapshot_id=raw["SnapshotId"],
        volume_id=raw.get("VolumeId") or None,
        size_gb=int(raw.get("VolumeSize", 0)),
        state=raw.get("State", "unknown"),
        start_time=raw.get("StartTime"),
        description=raw.get("Description", ""),
        progress=raw.get("Progress"),
        tags=_tags(raw),
    )
