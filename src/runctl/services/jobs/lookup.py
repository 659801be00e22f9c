"""Finding a job from an instance: its id and its S3 location.

``aws train`` tags the instance with the job it started (``runctl:job``, ``runctl:job-uri``)
once the runner is running there; a job named by id alone lives under the configured bucket and
the project's key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runctl.config import Settings
from runctl.job.spec import JobLocation
from runctl.paths import Project
from runctl.services import tags

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance


def job_on(instance: Instance) -> str | None:
    """The id of the last job ``aws train`` started on ``instance`` (from its tag)."""
    return instance.tags.get(tags.JOB) or None


def job_location(
    instance: Instance, job_id: str | None, settings: Settings, cwd: Path
) -> JobLocation | None:
    """Where ``job_id`` (default: the instance's job) lives in S3, or None when it cannot be
    known: the instance's ``runctl:job-uri`` tag when it names that job, else the configured
    bucket and the project's key."""
    tagged_id = job_on(instance)
    wanted = job_id or tagged_id
    tagged_uri = instance.tags.get(tags.JOB_URI)
    if tagged_uri and wanted == tagged_id:
        try:
            return JobLocation.from_uri(tagged_uri)
        except ValueError:
            pass
    if wanted and settings.aws.s3_bucket:
        project = Project.find(cwd, settings.aws.project_name)
        return JobLocation(settings.aws.s3_bucket, project.key, wanted)
    return None
