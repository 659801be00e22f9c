"""Attaching a volume and mounting it over SSM; unmounting it and detaching it.

Attach refuses what EC2 would refuse, before asking it, in words a person can act on: a volume
attached elsewhere, one in another zone (with the snapshot-and-restore that moves it), an
instance that is neither running nor stopped. The mount itself runs on the instance
(:func:`runctl.services.jobs.volume_commands.mount_command`). Detach unmounts first and refuses
while a job runs there with its data on the volume, unless ``force``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runctl.errors import RunctlError, WrongStateError
from runctl.services.volumes.manage import SOURCE_VOLUME
from runctl.services.volumes.specs import DEFAULT_MOUNT, free_device

if TYPE_CHECKING:
    from runctl.aws.ebs import Volume
    from runctl.aws.ec2 import Instance
    from runctl.services.jobs.session import JobSession

MOUNT_TIMEOUT_SECONDS = 300
LIVE_JOB_STATES = ("pending", "starting", "running")


@dataclass(frozen=True)
class MountInfo:
    """What the mount script found or did on the instance."""

    device: str
    mount: str
    filesystem: str
    uuid: str
    formatted: bool
    already_mounted: bool


@dataclass
class AttachResult:
    """``aws ebs attach``: where the volume is now, and its mount (None with ``--no-mount``)."""

    volume_id: str
    instance_id: str
    device: str
    availability_zone: str
    attached_now: bool
    mount: MountInfo | None


@dataclass
class DetachResult:
    """``aws ebs detach``: what was unmounted and whether a detach happened."""

    volume_id: str
    instance_id: str | None
    unmounted: list[str]
    detached: bool
    forced: bool
    note: str | None = None


def attach_volume(
    session: JobSession,
    volume_id: str,
    instance_id: str,
    *,
    device: str | None = None,
    mount: str | None = DEFAULT_MOUNT,
    timeout: float = MOUNT_TIMEOUT_SECONDS,
) -> AttachResult:
    """Attach the volume to the instance (unless it already is) and, with ``mount``, mount it
    there over SSM (a blank volume gets a filesystem first)."""
    volume = session.ebs.describe_volume(volume_id)
    instance = session.ec2.describe_instance(instance_id)
    if mount is not None and instance.state != "running":
        raise WrongStateError(
            f"instance {instance_id} is {instance.state}: a volume is mounted on a running "
            "instance",
            hint=f"start it (`runctl aws start {instance_id} --wait`), or attach only with "
            "--no-mount",
            resource=instance_id,
        )
    volume, attached_now = ensure_attached(session, volume, instance, device, timeout=timeout)
    info = None
    if mount is not None:
        info = mount_volume(session, instance, volume, mount)
    return AttachResult(
        volume_id, instance_id, volume.device or "", volume.availability_zone, attached_now, info
    )


def ensure_attached(
    session: JobSession,
    volume: Volume,
    instance: Instance,
    device: str | None = None,
    *,
    timeout: float = MOUNT_TIMEOUT_SECONDS,
) -> tuple[Volume, bool]:
    """The volume attached to ``instance`` (attaching it when it is not); True when attached
    now. WrongStateError (exit 8) for another instance, another zone, or a wrong state."""
    volume_id, instance_id = volume.volume_id, instance.instance_id
    if volume.attached_to == instance_id:
        return volume, False
    if volume.attached_to:
        raise WrongStateError(
            f"volume {volume_id} is attached to {volume.attached_to}",
            hint=f"detach it first: `runctl aws ebs detach {volume_id}`",
            resource=volume_id,
        )
    if volume.availability_zone != instance.availability_zone:
        raise WrongStateError(
            f"volume {volume_id} is in {volume.availability_zone}, instance {instance_id} in "
            f"{instance.availability_zone}: EBS volumes attach only within their zone",
            hint=f"copy it over: `runctl aws ebs snapshot {volume_id} --wait`, then "
            f"`runctl aws ebs restore SNAPSHOT --instance-id {instance_id}`",
            resource=volume_id,
        )
    if volume.state != "available":
        raise WrongStateError(f"volume {volume_id} is {volume.state}", resource=volume_id)
    if instance.state not in ("running", "stopped"):
        raise WrongStateError(
            f"instance {instance_id} is {instance.state}; volumes attach to running or stopped "
            "instances",
            hint=f"wait for it: `runctl aws wait {instance_id}`",
            resource=instance_id,
        )
    chosen = device or free_device(_devices_in_use(session, instance_id))
    session.report.detail(f"attaching {volume_id} to {instance_id} as {chosen}")
    session.ebs.attach_volume(volume_id, instance_id, chosen)
    attached = session.ebs.wait_volume(volume_id, "in-use", attached_to=instance_id,
                                       timeout=timeout)  # fmt: skip
    return attached, True


def _devices_in_use(session: JobSession, instance_id: str) -> set[str]:
    found = session.ebs.describe_volumes(filters={"attachment.instance-id": [instance_id]})
    return {a.device for v in found for a in v.attachments if a.instance_id == instance_id}


def mount_volume(session: JobSession, instance: Instance, volume: Volume, mount: str) -> MountInfo:
    """Mount the (attached) volume at ``mount`` on the instance over SSM; the mount found or
    made. WrongStateError when SSM cannot reach the instance or the mount was refused."""
    from runctl.aws.ssm_commands import run_shell
    from runctl.services.jobs.start import check_instance_ready
    from runctl.services.jobs.volume_commands import mount_command, parse_volume_line

    check_instance_ready(session, instance.instance_id)
    result = run_shell(
        session.ssm_client,
        instance.instance_id,
        mount_command(volume.volume_id, volume.device or "/dev/sdf", mount),
        timeout_seconds=MOUNT_TIMEOUT_SECONDS,
        comment=f"runctl mount {volume.volume_id}",
    )
    _raise_refusal(result.stdout, result.stderr, volume.volume_id, instance.instance_id)
    values = parse_volume_line(result.stdout)
    info = MountInfo(
        device=values.get("device", ""),
        mount=values.get("mount", mount),
        filesystem=values.get("fstype", ""),
        uuid=values.get("uuid", ""),
        formatted=values.get("formatted") == "1",
        already_mounted=values.get("already") == "1",
    )
    if info.formatted:
        session.report.info(f"{volume.volume_id} was blank: made an {info.filesystem} filesystem")
    return info


def _raise_refusal(stdout: str, stderr: str, volume_id: str, instance_id: str) -> None:
    from runctl.services.jobs.volume_commands import parse_error_line

    refused = parse_error_line(stdout)
    if refused is not None:
        code, message = refused
        raise WrongStateError(
            f"{volume_id} on {instance_id}: {message} ({code})",
            hint="see `runctl aws ebs list`; `runctl aws ebs detach --force` when a process "
            "holds the mount"
            if code == "busy"
            else None,
            resource=volume_id,
        )
    if "RUNCTL-VOLUME" not in stdout:
        raise RunctlError(
            f"the volume script for {volume_id} on {instance_id} failed: "
            f"{(stderr or stdout).strip()[-300:] or 'no output'}",
            hint="re-run with --debug",
            resource=volume_id,
        )


def detach_volume(
    session: JobSession, volume_id: str, *, force: bool = False, timeout: float = 300
) -> DetachResult:
    """Unmount the volume over SSM and detach it; a volume that is not attached is left alone.

    Refuses (WrongStateError) while a job runs on the instance with its data on this volume,
    while a process holds the mount, or when the instance cannot be reached to unmount, unless
    ``force`` (lazy unmount; EC2's forced detach when the instance is unreachable).
    """
    volume = session.ebs.describe_volume(volume_id)
    instance_id = volume.attached_to
    if instance_id is None:
        return DetachResult(volume_id, None, [], False, False, note="not attached")
    instance = session.ec2.describe_instance(instance_id)
    if not force:
        job = job_using(session, instance, volume)
        if job is not None:
            raise WrongStateError(
                f"job {job} is running on {instance_id} with its data on {volume_id}",
                hint=f"stop it first (`runctl aws stop {instance_id}`), or pass --force",
                resource=volume_id,
            )
    unmounted: list[str] = []
    unreachable = False
    if instance.state == "running":
        try:
            unmounted = unmount_volume(session, instance, volume, force=force)
        except WrongStateError:
            if not force:
                raise
            unreachable = True
    session.ebs.detach_volume(volume_id, instance_id, force=force and unreachable)
    session.ebs.wait_volume(volume_id, "available", timeout=timeout)
    return DetachResult(volume_id, instance_id, unmounted, True, force and unreachable)


def unmount_volume(
    session: JobSession, instance: Instance, volume: Volume, *, force: bool = False
) -> list[str]:
    """Unmount every mount of the volume on the instance; the mount points."""
    from runctl.aws.ssm_commands import run_shell
    from runctl.services.jobs.start import check_instance_ready
    from runctl.services.jobs.volume_commands import parse_volume_line, unmount_command

    check_instance_ready(session, instance.instance_id)
    result = run_shell(
        session.ssm_client,
        instance.instance_id,
        unmount_command(volume.volume_id, volume.device or "/dev/sdf", force=force),
        timeout_seconds=MOUNT_TIMEOUT_SECONDS,
        comment=f"runctl unmount {volume.volume_id}",
    )
    _raise_refusal(result.stdout, result.stderr, volume.volume_id, instance.instance_id)
    listed = parse_volume_line(result.stdout).get("unmounted", "")
    return [m for m in listed.split(",") if m]


def job_using(session: JobSession, instance: Instance, volume: Volume) -> str | None:
    """The job that runs on ``instance`` with its data on ``volume`` (or on the volume it is a
    copy of), or None."""
    from runctl.job.record import JobRecord
    from runctl.services.jobs.lookup import job_location

    location = job_location(instance, None, session.settings, session.cwd)
    if location is None:
        return None
    try:
        spec, status = JobRecord(location, s3=session.s3).read()
    except RunctlError:
        return None
    ids = {volume.volume_id, volume.tags.get(SOURCE_VOLUME)}
    live = status is not None and status.state in LIVE_JOB_STATES
    return location.job_id if live and spec.data_volume in ids else None
