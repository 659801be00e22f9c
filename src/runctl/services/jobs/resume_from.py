"""``aws train --resume-from JOB_ID|latest``: the committed checkpoint a new job starts from.

A job id names a job of this project under the job bucket; an ``s3://`` job URI names any job;
``latest`` is the project's newest job (by the time in its id) that committed a checkpoint. The
source job's newest committed checkpoint is found and pinned in the new job's job.json
(``resume_from``) before anything about the new job is written, so a source job that is still
running does not change where the new one starts. The new job's runner restores it when the job
has no checkpoint of its own yet (``RUNCTL_RESUMED=1``), and commits to the new job's own store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runctl.errors import NotFoundError
from runctl.job.manifests import list_manifests
from runctl.job.record import JobRecord
from runctl.job.spec import JOB_ID_RE, ROOT_PREFIX, JobLocation, ResumeSource
from runctl.job.stores import open_store
from runctl.services.jobs.request import LATEST

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def resolve_resume_from(client: S3Client, bucket: str, project: str, value: str) -> ResumeSource:
    """The checkpoint ``value`` (a job id, a job URI, or ``latest``) points at.

    Raises NotFoundError (exit 6) when the job does not exist or has no committed checkpoint.
    """
    if value == LATEST:
        return _latest(client, bucket, project)
    location = (
        JobLocation.from_uri(value)
        if value.startswith("s3://")
        else JobLocation(bucket, project, value)
    )
    source = _checkpoint_of(client, location)
    if source is None:
        raise NotFoundError(
            f"--resume-from {value}: job {location.job_id} has no committed checkpoint",
            hint=f"list what it has: runctl checkpoint list {location.uri}",
            resource=location.uri,
        )
    return source


def _checkpoint_of(client: S3Client, location: JobLocation) -> ResumeSource | None:
    """The newest committed checkpoint of the job at ``location`` (NotFoundError when there is
    no such job), or None when it never committed one."""
    try:
        spec = JobRecord(location, s3=client).read_spec()
    except NotFoundError:
        raise NotFoundError(
            f"--resume-from: no job {location.job_id} in {location.uri}",
            hint="give a job id of this project (see `runctl checkpoint list`), its s3:// job "
            "URI, or latest",
            resource=location.uri,
        ) from None
    uri = spec.checkpoint_uri
    if uri is None:
        return None
    refs = list_manifests(open_store(uri, lambda: client))
    if not refs:
        return None
    return ResumeSource(job_id=location.job_id, checkpoint_uri=uri, checkpoint_id=refs[0].id)


def _latest(client: S3Client, bucket: str, project: str) -> ResumeSource:
    from runctl.aws.s3 import S3Uri, list_objects

    jobs = S3Uri(bucket, f"{ROOT_PREFIX}/{project}/jobs/")
    ids = [p.rstrip("/").rsplit("/", 1)[-1] for p in list_objects(client, jobs).prefixes]
    stamped = [(match.group("stamp"), i) for i in ids if (match := JOB_ID_RE.match(i))]
    for _stamp, job_id in sorted(stamped, reverse=True):
        try:
            source = _checkpoint_of(client, JobLocation(bucket, project, job_id))
        except (NotFoundError, ValueError):
            continue  # a job whose job.json is gone or unreadable
        if source is not None:
            return source
    raise NotFoundError(
        f"--resume-from latest: no job of project {project} has a committed checkpoint",
        hint=f"see the project's jobs with `runctl s3 list {jobs}`",
        resource=str(jobs),
    )
