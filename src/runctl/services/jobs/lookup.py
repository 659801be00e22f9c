"""Finding a job from an instance: its id, its S3 prefix, and the reader to follow it with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runctl.config import Settings
from runctl.errors import NotFoundError
from runctl.job.spec import JobLocation
from runctl.paths import Project
from runctl.services.jobs.start import JOB_TAG, JOB_URI_TAG

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance


@dataclass(frozen=True)
class JobRef:
    """What is known of a job before reading it: its id (if known) and its S3 location."""

    job_id: str | None
    location: JobLocation | None


def job_ref(instance: Instance, job_id: str | None, settings: Settings, cwd: Path) -> JobRef:
    """The job to read on ``instance``: ``job_id`` or the last one ``aws train`` started there.

    The S3 location comes from the instance's ``runctl:job-uri`` tag when it names that job, else
    from the configured bucket and project.
    """
    tagged_id = instance.tags.get(JOB_TAG)
    tagged_uri = instance.tags.get(JOB_URI_TAG)
    wanted = job_id or tagged_id
    if tagged_uri and wanted == tagged_id:
        try:
            return JobRef(wanted, JobLocation.from_uri(tagged_uri))
        except ValueError:
            pass
    if wanted and settings.aws.s3_bucket:
        project = Project.find(cwd, settings.aws.project_name)
        return JobRef(wanted, JobLocation(settings.aws.s3_bucket, project.key, wanted))
    return JobRef(wanted, None)


def require_location(ref: JobRef, instance_id: str) -> JobLocation:
    """The job's S3 location, or NotFoundError saying how to name the job."""
    if ref.location is None:
        raise NotFoundError(
            f"no job is known for {instance_id} and it cannot be reached over SSM",
            hint="pass --job JOB_ID (and set aws.s3_bucket) to read the job's S3 copy",
            resource=instance_id,
        )
    return ref.location
