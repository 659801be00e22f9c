"""Data that follows capacity: a job's data volume on whatever instance runs the job.

- ``aws create --volume VOL``: the launch is restricted to the volume's zone, the volume is
  attached as soon as the instance runs, and (with ``--wait``) mounted at ``/mnt/data``.
- ``aws train --data-volume VOL``: the volume is attached to the job's instance (same zone) and
  mounted; ``RUNCTL_DATA_DIR`` is its mount point (job.json ``data_volume``/``data_dir``).
- A later attempt (``--auto-resume``, ``checkpoint resume``) on an instance in another zone gets
  a copy: the newest completed snapshot taken after the volume's last pre-warm, else a new
  snapshot, restored in that zone. The copy is tagged with the job (``runctl:job``) and the
  volume it copies (``runctl:source-volume``), reused by later attempts in the same zone, and
  deleted by ``resources cleanup`` once the job has ended. Each step is said on the way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from runctl.errors import WrongStateError
from runctl.job.spec import parse_time
from runctl.services import tags as tagging
from runctl.services.instances.lifecycle import GONE
from runctl.services.volumes.manage import (
    PREWARMED,
    SOURCE_VOLUME,
    NewVolume,
    create_volume,
    snapshot_volume,
)
from runctl.services.volumes.mounts import AttachResult, MountInfo, ensure_attached, mount_volume
from runctl.services.volumes.specs import DEFAULT_MOUNT, VolumeShape

if TYPE_CHECKING:
    from runctl.aws.ebs import Snapshot, Volume
    from runctl.aws.ec2 import Instance
    from runctl.job.spec import JobLocation
    from runctl.services.instances.launch_request import LaunchRequest
    from runctl.services.jobs.session import JobSession, Launched


@dataclass
class JobVolume:
    """The volume a job attempt reads its data from, and how it got there."""

    volume_id: str
    mount: MountInfo
    source_volume: str
    snapshot_id: str | None = None
    restored: bool = False


def launch_with_volume(
    session: JobSession,
    request: LaunchRequest,
    volume_id: str,
    *,
    wait: bool,
    dry_run: bool = False,
    timeout: float = 600.0,
) -> tuple[Launched, AttachResult | None]:
    """``aws create --volume``: launch in the volume's zone, attach it once the instance runs,
    and with ``wait`` mount it at ``/mnt/data``. The volume must be available (checked before
    anything is launched)."""
    from runctl.services.instances.lifecycle import wait_for_state

    volume = session.ebs.describe_volume(volume_id)
    if volume.attached_to or volume.state != "available":
        where = f"attached to {volume.attached_to}" if volume.attached_to else volume.state
        raise WrongStateError(
            f"volume {volume_id} is {where}; --volume needs an available volume",
            hint=f"detach it first: `runctl aws ebs detach {volume_id}`",
            resource=volume_id,
        )
    placed = replace(request, availability_zone=volume.availability_zone)
    launched = session.launch_ready(placed, wait=wait, dry_run=dry_run, timeout=timeout)
    if launched.instance is None:
        return launched, None
    instance_id = launched.instance.instance_id
    instance = wait_for_state(session.ec2, instance_id, "running", timeout=timeout,
                              timing=session.timing)  # fmt: skip
    attached, _ = ensure_attached(session, volume, instance)
    info = mount_volume(session, instance, attached, DEFAULT_MOUNT) if wait else None
    result = AttachResult(volume_id, instance_id, attached.device or "",
                          attached.availability_zone, True, info)  # fmt: skip
    return launched, result


def attach_for_job(session: JobSession, volume_id: str, instance: Instance) -> JobVolume:
    """A new job's data volume: attached to the job's instance (same zone) and mounted where
    it is mounted already, else at ``/mnt/data``."""
    volume = session.ebs.describe_volume(volume_id)
    volume = _released(session, volume, instance, detach_stopped=False)
    attached, _ = ensure_attached(session, volume, instance)
    info = mount_volume(session, instance, attached, DEFAULT_MOUNT)
    return JobVolume(volume_id, info, volume_id)


def follow_to(
    session: JobSession, source_id: str, instance: Instance, *, job: JobLocation, mount: str
) -> JobVolume:
    """A later attempt's data volume on ``instance``: the job's volume when it is in the
    instance's zone, else a copy restored there (see the module docstring)."""
    zone = instance.availability_zone or ""
    source = session.ebs.describe_volume(source_id)
    if source.availability_zone == zone:
        volume = _released(session, source, instance, detach_stopped=True)
        snapshot_id, restored = None, False
    else:
        volume, snapshot_id, restored = _copy_in_zone(session, source, zone, job)
        volume = _released(session, volume, instance, detach_stopped=True)
    attached, _ = ensure_attached(session, volume, instance)
    info = mount_volume(session, instance, attached, mount)
    return JobVolume(attached.volume_id, info, source_id, snapshot_id, restored)


def _released(
    session: JobSession, volume: Volume, instance: Instance, *, detach_stopped: bool
) -> Volume:
    """The volume once the instance that held it lets go: a terminated one detaches it by
    itself (wait); with ``detach_stopped`` (a later attempt, whose earlier instance a spot
    interruption may have stopped) a stopped one is asked to, its filesystems being unmounted
    already."""
    holder = volume.attached_to
    if holder is None or holder == instance.instance_id:
        return volume
    state = session.ec2.describe_instance(holder).state
    if state == "stopped" and detach_stopped:
        session.report.info(f"detaching {volume.volume_id} from stopped instance {holder}")
        session.ebs.detach_volume(volume.volume_id, holder)
    elif state not in GONE:
        return volume  # ensure_attached says it is attached elsewhere
    return session.ebs.wait_volume(volume.volume_id, "available")


def _copy_in_zone(
    session: JobSession, source: Volume, zone: str, job: JobLocation
) -> tuple[Volume, str | None, bool]:
    """(volume in ``zone`` holding ``source``'s data, the snapshot restored, restored now)."""
    ebs, job_id = session.ebs, job.job_id
    copies = ebs.describe_volumes(
        filters={
            f"tag:{tagging.JOB}": [job_id],
            f"tag:{SOURCE_VOLUME}": [source.volume_id],
            "availability-zone": [zone],
        }
    )
    for copy in copies:
        if copy.state in ("available", "in-use"):
            session.report.info(
                f"data volume {source.volume_id} is in {source.availability_zone}; reusing "
                f"this job's copy {copy.volume_id} in {zone}"
            )
            return copy, copy.snapshot_id, False
    snapshot, why = _current_snapshot(session, source, job)
    session.report.info(
        f"data volume {source.volume_id} is in {source.availability_zone}, the instance in "
        f"{zone}: restoring snapshot {snapshot.snapshot_id} ({why}) there"
    )
    shape = VolumeShape(source.volume_type, source.size_gb, source.iops, source.throughput)
    request = NewVolume(
        shape=shape,
        project=source.tags.get(tagging.PROJECT) or "runctl",
        user=tagging.current_user(),
        availability_zone=zone,
        snapshot_id=snapshot.snapshot_id,
        name=f"{job_id} data ({zone})"[:128],
        extra_tags={SOURCE_VOLUME: source.volume_id, tagging.JOB_URI: job.uri},
        job_id=job_id,
    )
    copy, _ = create_volume(session, request)
    session.report.info(f"restored {copy.volume_id} in {zone} for job {job_id}")
    return copy, snapshot.snapshot_id, True


def _current_snapshot(
    session: JobSession, source: Volume, job: JobLocation
) -> tuple[Snapshot, str]:
    """The newest completed snapshot taken after the volume's last pre-warm, else a new one."""
    prewarmed = source.tags.get(PREWARMED)
    if prewarmed:
        since = parse_time(prewarmed)
        for snapshot in session.ebs.describe_snapshots(filters={"volume-id": [source.volume_id]}):
            started = snapshot.start_time
            if snapshot.state == "completed" and started is not None and started >= since:
                return snapshot, f"taken after the pre-warm of {prewarmed}"
    session.report.info(f"snapshotting {source.volume_id} for job {job.job_id}")
    taken = snapshot_volume(
        session, source.volume_id, wait=True, job_id=job.job_id, job_uri=job.uri,
        description=f"runctl: data of job {job.job_id}",
    )  # fmt: skip
    return taken, "taken now"
