"""Finding a job from an instance: its id, its S3 prefix, and the reader to follow it with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runctl.config import Settings
from runctl.errors import NotFoundError
from runctl.job.spec import JobLayout
from runctl.services.jobs.start import JOB_TAG, JOB_URI_TAG

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance


@dataclass(frozen=True)
class JobRef:
    """What is known of a job before reading it: its id (if known) and its S3 layout."""

    job_id: str | None
    layout: JobLayout | None


def job_ref(instance: Instance, job_id: str | None, settings: Settings, cwd: Path) -> JobRef:
    """The job to read on ``instance``: ``job_id`` or the last one ``aws train`` started there.

    The S3 layout comes from the instance's ``runctl:job-uri`` tag when it names that job, else
    from the configured bucket and project.
    """
    tagged_id = instance.tags.get(JOB_TAG)
    tagged_uri = instance.tags.get(JOB_URI_TAG)
    wanted = job_id or tagged_id
    if tagged_uri and wanted == tagged_id:
        try:
            return JobRef(wanted, JobLayout.from_uri(tagged_uri))
        except ValueError:
            pass
    if wanted and settings.aws.s3_bucket:
        from runctl.services.bundles.code import find_project_root

        project = settings.aws.project_name or find_project_root(cwd).name
        return JobRef(wanted, JobLayout(settings.aws.s3_bucket, project, wanted))
    return JobRef(wanted, None)


def require_layout(ref: JobRef, instance_id: str) -> JobLayout:
    """The job's S3 layout, or NotFoundError saying how to name the job."""
    if ref.layout is None:
        raise NotFoundError(
            f"no job is known for {instance_id} and it cannot be reached over SSM",
            hint="pass --job JOB_ID (and set aws.s3_bucket) to read the job's S3 copy",
            resource=instance_id,
        )
    return ref.layout
