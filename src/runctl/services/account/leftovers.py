"""What runctl left in its buckets: unfinished multipart uploads and the prefixes of old jobs.

Both live under ``runctl/`` of a runctl bucket: the configured job bucket and, for a sweep of
every region, every bucket tagged ``runctl:managed=true`` (``aws setup`` tags the buckets it
creates). Ownership follows the job: an upload or prefix under ``runctl/<project>/jobs/<id>/``
belongs to the user its job.json names; an upload elsewhere under ``runctl/`` (a code bundle)
belongs to the project, and is the caller's to clean up as much as anyone's. Uploads younger
than an hour are spared (a commit may be using them). An upload whose uploader was killed (a
``runctl s3 upload`` SIGKILLed, a spot instance gone in the middle of a commit) is invisible to
object listings but stored and billed; the next commit of the same job aborts its own, and
``aws setup``'s lifecycle rule aborts any after a week.

A job's prefix (its records, log, checkpoints and outputs) is stale when the job ended more than
``older_than`` ago; nothing is stale unless ``older_than`` is given, since deleting a prefix
deletes the job's outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from runctl.aws.s3 import S3Uri, delete_objects, iter_objects
from runctl.aws.s3_uploads import IncompleteUpload, abort_uploads, iter_incomplete_uploads
from runctl.errors import NotFoundError, RunctlError
from runctl.job.record import JobRecord
from runctl.job.spec import ROOT_PREFIX, JobLocation, JobSpec, JobStatus, parse_time

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from runctl.services.account.resources import Scope

#: Uploads younger than this are spared: a checkpoint commit may be using them.
DEFAULT_MIN_AGE = timedelta(hours=1)
#: S3 Standard, USD per GiB-month (us-east-1): what stored parts and prefixes cost.
S3_GB_MONTH = 0.023
GIB = 1024**3


@dataclass
class UploadRow:
    """An unfinished multipart upload under ``runctl/``, with its project, job and owner."""

    bucket: str
    key: str
    upload_id: str
    initiated: datetime
    project: str | None
    job: str | None
    user: str | None


@dataclass
class StalePrefix:
    """The prefix of a job that ended more than ``older_than`` ago."""

    bucket: str
    project: str
    job_id: str
    user: str | None
    state: str
    ended: str | None
    size_bytes: int
    objects: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{ROOT_PREFIX}/{self.project}/jobs/{self.job_id}/"

    @property
    def month_usd(self) -> float:
        return round(self.size_bytes / GIB * S3_GB_MONTH, 4)


@dataclass
class Leftovers:
    """What :func:`find_leftovers` found in ``buckets`` (and, in ``notes``, what it could not
    read)."""

    buckets: list[str]
    uploads: list[UploadRow] = field(default_factory=list)
    stale: list[StalePrefix] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class LeftoverCleanup:
    """What :func:`clean_leftovers` did (with ``dry_run``: would do)."""

    dry_run: bool
    aborted: list[UploadRow] = field(default_factory=list)
    spared: list[UploadRow] = field(default_factory=list)
    deleted_prefixes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def runctl_buckets(s3: S3Client, configured: str | None, *, every: bool) -> list[str]:
    """The configured bucket, and with ``every`` each bucket tagged ``runctl:managed=true``."""
    from runctl.aws.buckets import list_buckets_tagged
    from runctl.services import tags

    found = [configured] if configured else []
    if every:
        found += [b for b in list_buckets_tagged(s3, tags.MANAGED, "true") if b not in found]
    return found


class _Owners:
    """job.json and status.json of each job, read once."""

    def __init__(self, s3: S3Client):
        self.s3 = s3
        self.seen: dict[tuple[str, str, str], tuple[JobSpec, JobStatus | None] | None] = {}

    def record(
        self, bucket: str, project: str, job: str
    ) -> tuple[JobSpec, JobStatus | None] | None:
        key = (bucket, project, job)
        if key not in self.seen:
            try:
                self.seen[key] = JobRecord(JobLocation(bucket, project, job), s3=self.s3).read()
            except (NotFoundError, ValueError):
                self.seen[key] = None
        return self.seen[key]


def _place(key: str) -> tuple[str | None, str | None]:
    """(project, job id) of a key under ``runctl/<project>/[jobs/<id>/]``."""
    parts = key.split("/")
    project = parts[1] if len(parts) > 2 and parts[0] == ROOT_PREFIX else None
    job = parts[3] if project and len(parts) > 4 and parts[2] == "jobs" else None
    return project, job


def _in_scope(scope: Scope, project: str | None, user: str | None) -> bool:
    if scope.project and project != scope.project:
        return False
    return scope.user is None or user in (None, scope.user)


def find_leftovers(
    s3: S3Client,
    buckets: Iterable[str],
    scope: Scope,
    *,
    older_than: timedelta | None,
    now: datetime | None = None,
) -> Leftovers:
    """The scope's unfinished uploads and (given ``older_than``) stale job prefixes."""
    moment = now or datetime.now(UTC)
    names = list(buckets)
    found = Leftovers(names)
    owners = _Owners(s3)
    for bucket in names:
        try:
            found.uploads += _uploads(s3, bucket, scope, owners)
            if older_than is not None:
                found.stale += _stale(s3, bucket, scope, owners, moment - older_than)
        except RunctlError as exc:
            found.notes.append(f"s3://{bucket}/: {exc.message}")
    return found


def _uploads(s3: S3Client, bucket: str, scope: Scope, owners: _Owners) -> list[UploadRow]:
    rows = []
    for upload in iter_incomplete_uploads(s3, S3Uri(bucket, f"{ROOT_PREFIX}/")):
        project, job = _place(upload.key)
        record = owners.record(bucket, project, job) if project and job else None
        user = record[0].user if record else None
        if _in_scope(scope, project, user):
            rows.append(UploadRow(bucket, upload.key, upload.upload_id, upload.initiated,
                                  project, job, user))  # fmt: skip
    return rows


def _stale(
    s3: S3Client, bucket: str, scope: Scope, owners: _Owners, before: datetime
) -> list[StalePrefix]:
    from runctl.aws.s3 import list_objects

    root = S3Uri(bucket, f"{ROOT_PREFIX}/")
    projects = [scope.project] if scope.project else [
        p[len(root.key):].strip("/") for p in list_objects(s3, root).prefixes
    ]  # fmt: skip
    candidates = []
    for project in projects:
        jobs = S3Uri(bucket, f"{ROOT_PREFIX}/{project}/jobs/")
        for prefix in list_objects(s3, jobs).prefixes:
            candidates.append((project, prefix[len(jobs.key) :].strip("/")))

    def judge(candidate: tuple[str, str]) -> StalePrefix | None:
        project, job = candidate
        record = owners.record(bucket, project, job)
        if record is None:
            return None
        spec, status = record
        if status is None or not status.is_terminal or not status.ended:
            return None
        if parse_time(status.ended) > before or not _in_scope(scope, project, spec.user):
            return None
        location = JobLocation(bucket, project, job)
        objects = list(iter_objects(s3, S3Uri(bucket, location.prefix)))
        return StalePrefix(bucket, project, job, spec.user, status.state, status.ended,
                           sum(o.size for o in objects), len(objects))  # fmt: skip

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [s for s in pool.map(judge, candidates) if s is not None]


def clean_leftovers(
    s3: S3Client,
    leftovers: Leftovers,
    *,
    dry_run: bool,
    min_age: timedelta = DEFAULT_MIN_AGE,
    now: datetime | None = None,
) -> LeftoverCleanup:
    """Abort the uploads older than ``min_age`` and delete the stale prefixes (with
    ``dry_run``: only say so)."""
    moment = now or datetime.now(UTC)
    done = LeftoverCleanup(dry_run)
    old = [u for u in leftovers.uploads if moment - u.initiated >= min_age]
    done.spared = [u for u in leftovers.uploads if moment - u.initiated < min_age]
    if dry_run:
        done.aborted = old
        done.deleted_prefixes = [p.uri for p in leftovers.stale]
        return done
    by_id = {u.upload_id: u for u in old}
    aborted, failed = abort_uploads(
        s3, [IncompleteUpload(u.bucket, u.key, u.upload_id, u.initiated) for u in old]
    )
    done.aborted = [by_id[u.upload_id] for u in aborted]
    done.failed.update({f"s3://{u.bucket}/{u.key}": message for u, message in failed})
    for prefix in leftovers.stale:
        location = JobLocation(prefix.bucket, prefix.project, prefix.job_id)
        keys = [o.key for o in iter_objects(s3, S3Uri(prefix.bucket, location.prefix))]
        try:
            delete_objects(s3, prefix.bucket, keys)
        except RunctlError as exc:
            done.failed[prefix.uri] = exc.message
        else:
            done.deleted_prefixes.append(prefix.uri)
    return done
