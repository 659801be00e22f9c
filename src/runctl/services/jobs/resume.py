"""Resuming a job: attempt N+1 of an existing job on a (new) instance.

The next attempt restores the job's latest committed checkpoint on the instance
(``RUNCTL_RESUMED=1``, ``RUNCTL_ATTEMPT`` incremented). ``aws train --auto-resume`` and
``checkpoint resume --instance-id`` both come through here, and through the same tail as a new
job (:func:`runctl.services.jobs.start.start_attempt`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from runctl.job.record import JobRecord
from runctl.job.spec import PENDING, JobLocation, JobSpec, JobStatus, utc_now
from runctl.services.instances.lifecycle import validate_instance_id
from runctl.services.jobs.request import instance_spec
from runctl.services.jobs.start import (
    StartedJob,
    check_instance_ready,
    check_job_fits,
    check_probe,
    ensure_not_running,
    probe_instance,
    start_attempt,
)

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance
    from runctl.services.jobs.session import JobSession


def _follow_data_volume(
    session: JobSession, spec: JobSpec, instance: Instance, location: JobLocation
) -> str:
    """The job's data volume (or its copy in the instance's zone) mounted there; the mount."""
    from runctl.services.volumes.capacity import follow_to
    from runctl.services.volumes.specs import DEFAULT_MOUNT

    assert spec.data_volume is not None
    data = follow_to(
        session, spec.data_volume, instance, job=location, mount=spec.data_dir or DEFAULT_MOUNT
    )
    session.report.info(
        f"data volume {data.volume_id} mounted at {data.mount.mount} on {instance.instance_id}"
    )
    return data.mount.mount


def resume_job(
    session: JobSession,
    location: JobLocation,
    instance_id: str,
    *,
    args: Sequence[str] | None = None,
    force: bool = False,
) -> StartedJob:
    """Start the next attempt of the job at ``location`` on ``instance_id``.

    ``args`` replace the script's arguments in job.json (later attempts keep them), and its
    ``launch_spec`` records the new instance (both put back if the start fails). Raises
    NotFoundError when the job does not exist in S3, WrongStateError when it is still running
    (unless ``force``) or the instance cannot take it.
    """
    validate_instance_id(instance_id)
    record = JobRecord(location, s3=session.s3)
    spec, status = record.read()
    ensure_not_running(status, location.job_id, force=force)
    instance = check_instance_ready(session, instance_id)
    check_job_fits(session, instance, spec)
    with ThreadPoolExecutor(max_workers=1) as pool:
        probe = pool.submit(probe_instance, session, instance_id)
        runtime = session.runtime_bundle(location.bucket)
        check_probe(probe, instance_id, force=force, docker=spec.docker_image is not None)
    original = spec
    changes: dict[str, Any] = {}
    if args is not None and list(args) != spec.args:
        changes["args"] = list(args)
    if spec.data_volume:
        mount = _follow_data_volume(session, spec, instance, location)
        if mount != spec.data_dir:
            changes["data_dir"] = mount
    launch_spec = {**spec.launch_spec, **instance_spec(instance)}
    if launch_spec != spec.launch_spec:
        changes["launch_spec"] = launch_spec
    if changes:
        spec = replace(spec, **changes)
        record.write_spec(spec)
    now = utc_now()
    pending = JobStatus(
        job_id=location.job_id,
        state=PENDING,
        attempt=(status.attempt + 1) if status is not None else 0,
        instance_ids=[*(status.instance_ids if status else []), instance_id],
        created=status.created if status else now,
        checkpoint_id=status.checkpoint_id if status else None,
        fallbacks=list(status.fallbacks) if status else [],  # counted over the whole job
        updated=now,
    )
    try:
        return start_attempt(
            session, record, spec, pending, instance_id, force=force, runtime=runtime,
            previous=status,
        )  # fmt: skip
    except BaseException:
        if spec is not original:
            record.write_spec(original)
        raise
