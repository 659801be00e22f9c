"""Resuming a job: attempt N+1 of an existing job on a (new) instance.

The next attempt restores the job's latest committed checkpoint on the instance
(``RUNCTL_RESUMED=1``, ``RUNCTL_ATTEMPT`` incremented); ``checkpoint resume --instance-id``
and ``aws train --auto-resume`` both come through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runctl.config import Settings
from runctl.errors import WrongStateError
from runctl.job.record import JobRecord
from runctl.job.spec import PENDING, JobLocation, JobStatus, utc_now
from runctl.services.instances.lifecycle import validate_instance_id
from runctl.services.jobs.start import (
    JOB_TAG,
    JOB_URI_TAG,
    AwsJobClients,
    StartedJob,
    check_instance_ready,
    send_start,
)

if TYPE_CHECKING:
    pass


def resume_job(
    clients: AwsJobClients,
    location: JobLocation,
    instance_id: str,
    settings: Settings,
    *,
    cache_dir: Path,
    force: bool = False,
) -> StartedJob:
    """Start the next attempt of an existing job on ``instance_id``.

    The runner restores the job's latest committed checkpoint (``RUNCTL_RESUMED=1``) and the
    attempt number goes up by one. Raises NotFoundError when the job does not exist in S3,
    WrongStateError when it is still running or the instance is not ready.
    """
    from runctl.services.bundles.runtime import ensure_runtime_bundle

    validate_instance_id(instance_id)
    record = JobRecord(location, s3=clients.s3)
    spec, status = record.read()
    if status is not None and status.state in ("running", "starting") and not force:
        raise WrongStateError(
            f"job {location.job_id} is still {status.state} on "
            f"{', '.join(status.instance_ids[-1:]) or 'an instance'}",
            hint="stop it first (`runctl aws stop ID`), or pass --force",
            resource=location.job_id,
        )
    check_instance_ready(clients, instance_id)
    runtime = ensure_runtime_bundle(clients.s3, location.bucket, cache_dir / "runtime")
    attempt = (status.attempt + 1) if status is not None else 0
    instance_ids = [*(status.instance_ids if status else []), instance_id]
    pending = JobStatus(
        job_id=location.job_id,
        state=PENDING,
        attempt=attempt,
        instance_ids=instance_ids,
        created=status.created if status else utc_now(),
        checkpoint_id=status.checkpoint_id if status else None,
        updated=utc_now(),
    )
    record.write_status(pending)
    clients.ec2.create_tags([instance_id], {JOB_TAG: location.job_id, JOB_URI_TAG: location.uri})
    send_start(
        clients,
        instance_id=instance_id,
        location=location,
        attempt=attempt,
        force=force,
        remote_root=settings.aws.remote_root,
        runtime_url=runtime.url,
        runtime_sha=runtime.sha256,
    )
    return StartedJob(
        job_id=location.job_id,
        instance_id=instance_id,
        location=location,
        attempt=attempt,
        script=spec.script,
        code_sha256=spec.code_sha256,
        code_uploaded=False,
        runtime_uploaded=runtime.uploaded,
    )
