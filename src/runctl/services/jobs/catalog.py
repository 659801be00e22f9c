"""Jobs as first-class objects: finding, listing and describing them from their records in S3.

A job lives under its job URI (docs/reference.md, "The job model") whatever instance ran it and
whether that instance still exists. ``jobs list`` reads every ``runctl/<project>/jobs/<id>/`` of
the configured bucket, newest first (a job id carries its UTC start), each job's job.json
(script, user, launch spec) and status.json (state, attempts, instances, times), and asks EC2
for the instances that run them: status.json's last instance, and any instance whose
``runctl:job`` tag names the job (a replacement carries it before its attempt reports). A job
that never reported an end while none of its instances is pending or running is shown ``lost``;
listing writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runctl.config import Settings
from runctl.errors import NotFoundError, UsageError
from runctl.job.attempts import AttemptEntry, AttemptLog
from runctl.job.record import JobRecord
from runctl.job.spec import JOB_ID_RE, LOST, ROOT_PREFIX, STATES, JobLocation, JobSpec, JobStatus
from runctl.job.spec import project_key as make_project_key
from runctl.services import tags
from runctl.services.jobs.cost import (
    CostEstimate,
    RememberedSpotPrices,
    SpotHistorySource,
    estimate_job_cost,
    job_window,
)
from runctl.services.jobs.outcome import VERDICTS, verdict_of
from runctl.services.jobs.request import require_bucket
from runctl.services.jobs.storage_cost import job_storage_cost

if TYPE_CHECKING:
    from runctl.aws.ec2 import Ec2, Instance
    from runctl.services.instances.prices import PriceBook
    from runctl.services.jobs.follow import JobWatch
    from runctl.services.jobs.session import JobSession

LIVE = ("pending", "running")
#: Records read at a time while a filtered listing fills its page.
READ_BATCH = 64
#: Values one EC2 describe filter takes.
FILTER_VALUES = 195


def job_location(ref: str, settings: Settings) -> JobLocation:
    """The S3 location of a job named by its id (in the configured bucket; the id carries the
    project key) or by its job URI. UsageError (exit 2) for anything else, ConfigError (3)
    without a bucket."""
    if ref.startswith("s3://"):
        try:
            return JobLocation.from_uri(ref)
        except ValueError as exc:
            raise UsageError(str(exc), resource=ref) from None
    match = JOB_ID_RE.match(ref)
    if match is None:
        raise UsageError(
            f"{ref!r} is not a job id",
            hint="job ids look like demo-20250101-120000-a1b2 (see `runctl jobs list`)",
            resource=ref,
        )
    return JobLocation(require_bucket(settings), match["project"], ref)


@dataclass(frozen=True)
class JobQuery:
    """Which jobs ``jobs list`` shows: one project and one state (None: all), one user's
    (None: everyone's), at most ``limit`` (0: no limit)."""

    project: str | None = None
    state: str | None = None
    user: str | None = None
    limit: int = 50

    def checked(self) -> JobQuery:
        """This query with the project as its key; UsageError (exit 2) for a bad value."""
        if self.state is not None and self.state not in (*STATES, *VERDICTS):
            raise UsageError(
                f"--state {self.state!r} is not a job state",
                hint=f"use one of: {', '.join(dict.fromkeys((*STATES, *VERDICTS)))}",
            )
        if self.limit < 0:
            raise UsageError(f"--limit {self.limit}: must be 0 (no limit) or more")
        if self.project is None:
            return self
        try:
            key = make_project_key(self.project)
        except ValueError as exc:
            raise UsageError(f"--project {self.project!r}: {exc}") from None
        return JobQuery(key, self.state, self.user, self.limit)

    def describe(self) -> str:
        """In words, as ``resources list`` says its scope (``all users`` said out loud)."""
        from runctl.services.account.resources import Scope

        said = Scope(self.project, self.user).describe()
        return said + (f", state {self.state}" if self.state else "")


@dataclass
class JobRow:
    """One job as ``jobs list`` shows it."""

    location: JobLocation
    spec: JobSpec
    status: JobStatus | None
    state: str
    verdict: str | None
    instance: Instance | None
    instance_id: str | None
    cost: CostEstimate

    @property
    def job_id(self) -> str:
        return self.location.job_id

    @property
    def attempts(self) -> int:
        return self.status.attempt + 1 if self.status else 0

    def to_dict(self) -> dict[str, Any]:
        """One job in ``jobs list --output json`` (stable keys)."""
        status = self.status
        return {
            "job_id": self.job_id,
            "job_uri": self.location.uri,
            "project": self.spec.project,
            "script": self.spec.script,
            "args": list(self.spec.args),
            "user": self.spec.user,
            "state": self.state,
            "verdict": self.verdict,
            "exit_code": status.exit_code if status else None,
            "attempts": self.attempts,
            "instance_id": self.instance_id,
            "instance_state": self.instance.state if self.instance else None,
            "created": (status.created if status else None) or self.spec.created,
            "ended": status.ended if status else None,
            "duration_seconds": self.cost.instance_seconds,
            "cost_usd": self.cost.usd,
            "price_source": self.cost.source,
        }


@dataclass
class JobListing:
    """``jobs list``: the jobs shown, newest first, and whether more matched."""

    jobs: list[JobRow]
    bucket: str
    scope: str
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobs": [row.to_dict() for row in self.jobs],
            "bucket": self.bucket,
            "scope": self.scope,
            "truncated": self.truncated,
        }


@dataclass
class JobDetail:
    """``jobs show``: the listing's row and everything job.json and status.json say."""

    row: JobRow
    notes: list[str] = field(default_factory=list)
    #: Every attempt from the job's attempt log (``attempts/<N>.json``), oldest first.
    attempts: list[AttemptEntry] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``jobs show --output json`` (stable keys): the row's keys and the job's detail."""
        spec, status = self.row.spec, self.row.status
        attempt = status.attempt if status else 0
        return {
            **self.row.to_dict(),
            "attempt": attempt,
            "instance_ids": list(status.instance_ids) if status else [],
            "started": status.started if status else None,
            "hourly_price_usd": self.row.cost.usd_per_hour,
            "checkpoint_id": status.checkpoint_id if status else None,
            "checkpoint_committed": status.checkpoint_committed if status else None,
            "notice": status.notice if status else None,
            "reason": status.reason if status else None,
            "message": status.message if status else None,
            "env_keys": sorted(spec.env),
            "data_s3": spec.data_s3,
            "output_uri": spec.output_uri,
            "checkpoint_uri": spec.checkpoint_uri,
            "log_uri": f"s3://{self.row.location.bucket}/{self.row.location.log_key(attempt)}",
            "launch_spec": dict(spec.launch_spec),
            "recovery": "instance" if spec.recovery else None,
            "attempt_log": [entry.to_dict() for entry in self.attempts],
            "cost": self.row.cost.to_dict(),
        }


def list_jobs(session: JobSession, query: JobQuery, *, now: datetime | None = None) -> JobListing:
    """The jobs of ``query`` in the configured bucket, newest first.

    Raises UsageError for a bad query, ConfigError without a bucket, NotFoundError when the
    bucket does not exist.
    """
    query = query.checked()
    bucket = require_bucket(session.settings)
    moment = now or datetime.now(UTC)
    prices = _price_book(session)
    rows: list[JobRow] = []
    truncated = False
    for batch in _batches(_job_locations(session, bucket, query.project), READ_BATCH):
        records = _read_records(session, batch)
        if query.user is not None:
            records = [(loc, spec, st) for loc, spec, st in records if spec.user == query.user]
        for row in _rows(session, records, prices, moment):
            if query.state is None or query.state in (row.state, row.verdict):
                rows.append(row)
        if query.limit and len(rows) >= query.limit:
            truncated = len(rows) > query.limit or len(batch) == READ_BATCH
            rows = rows[: query.limit]
            break
    return JobListing(rows, bucket, query.describe(), truncated)


def jobs_since(
    session: JobSession,
    since: datetime,
    *,
    user: str | None,
    also: Sequence[str] = (),
    now: datetime | None = None,
) -> list[JobRow]:
    """The jobs of ``user`` (None: everyone's) started at or after ``since`` (the UTC start
    their id carries), plus the jobs named in ``also`` (ids, e.g. of the jobs live instances
    run, whenever they started), newest first. ConfigError without a bucket."""
    bucket = require_bucket(session.settings)
    stamp = since.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    chosen: list[JobLocation] = []
    for location in _job_locations(session, bucket, None):
        match = JOB_ID_RE.match(location.job_id)
        if match is None or match["stamp"] < stamp:
            break  # newest first: every later one started earlier
        chosen.append(location)
    known = {location.job_id for location in chosen}
    for job_id in dict.fromkeys(also):
        if job_id not in known and JOB_ID_RE.match(job_id):
            chosen.append(job_location(job_id, session.settings))
    records = _read_records(session, chosen)
    if user is not None:
        records = [r for r in records if r[1].user == user or r[1].job_id in also]
    moment = now or datetime.now(UTC)
    return _rows(session, records, _price_book(session), moment, storage=True)


def show_job(
    session: JobSession, location: JobLocation, *, now: datetime | None = None
) -> JobDetail:
    """Everything about one job; NotFoundError when its job.json does not exist."""
    spec, status = read_job(session, location)
    moment = now or datetime.now(UTC)
    [row] = _rows(session, [(location, spec, status)], session.prices, moment, storage=True)
    detail = JobDetail(row, attempts=AttemptLog(location, session.s3).entries())
    if row.state == LOST:
        detail.notes.append(
            f"none of the job's instances runs any more; continue it with `runctl checkpoint "
            f"resume {location.uri} --instance-id NEW_ID`"
        )
    return detail


def read_job(session: JobSession, location: JobLocation) -> tuple[JobSpec, JobStatus | None]:
    """job.json and status.json; NotFoundError naming the job when job.json is missing."""
    try:
        return JobRecord(location, s3=session.s3).read()
    except NotFoundError:
        raise NotFoundError(
            f"job {location.job_id} does not exist in s3://{location.bucket}/",
            hint="`runctl jobs list --all-users` lists the jobs in the bucket",
            resource=location.job_id,
        ) from None


def watch_job(session: JobSession, location: JobLocation) -> JobWatch:
    """A watch on the job (``jobs logs``): its log and state from the instance that runs it
    while it runs, from the S3 copy otherwise."""
    from runctl.services.jobs.follow import JobWatch

    spec, status = read_job(session, location)
    return JobWatch(session, job_instance(session, spec, status), location.job_id, location)


def job_instance(session: JobSession, spec: JobSpec, status: JobStatus | None) -> Instance | None:
    """The instance that runs (or last ran) the job, as EC2 sees it now; None when none exists."""
    by_id, by_job = _instances(session.ec2, [(spec, status)])
    return _instance_of(spec, status, by_id, by_job)


# -- reading ------------------------------------------------------------------------------------


def _job_locations(session: JobSession, bucket: str, project: str | None) -> Iterator[JobLocation]:
    """Every job location in the bucket (of one project), newest first."""
    from runctl.aws.s3 import S3Uri, list_objects

    root = S3Uri(bucket, f"{ROOT_PREFIX}/")
    projects = [project] if project else [
        prefix[len(root.key) :].strip("/") for prefix in list_objects(session.s3, root).prefixes
    ]  # fmt: skip
    found: list[JobLocation] = []
    for key in projects:
        jobs = S3Uri(bucket, f"{ROOT_PREFIX}/{key}/jobs/")
        for prefix in list_objects(session.s3, jobs).prefixes:
            found.append(JobLocation(bucket, key, prefix[len(jobs.key) :].strip("/")))
    found.sort(key=_started, reverse=True)
    yield from found


def _started(location: JobLocation) -> tuple[bool, str, str]:
    """Sort key: the UTC start a job id carries (ids of another shape sort last)."""
    match = JOB_ID_RE.match(location.job_id)
    return (match is not None, match["stamp"] if match else "", location.job_id)


def _batches(items: Iterator[JobLocation], size: int) -> Iterator[list[JobLocation]]:
    batch: list[JobLocation] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _read_records(
    session: JobSession, locations: Sequence[JobLocation]
) -> list[tuple[JobLocation, JobSpec, JobStatus | None]]:
    """job.json and status.json of each location, read in parallel; a job whose job.json is
    missing or unreadable is left out."""

    def read(location: JobLocation) -> tuple[JobLocation, JobSpec, JobStatus | None] | None:
        try:
            spec, status = JobRecord(location, s3=session.s3).read()
        except (NotFoundError, ValueError):
            return None
        return location, spec, status

    with ThreadPoolExecutor(max_workers=16) as pool:
        return [found for found in pool.map(read, locations) if found is not None]


def _price_book(session: JobSession) -> PriceBook:
    """The session's prices, asking EC2 for each spot price history once per listing."""
    from runctl.services.instances.prices import PriceBook

    return PriceBook(session.region, spot_source=RememberedSpotPrices(session.ec2))


def _rows(
    session: JobSession,
    records: Sequence[tuple[JobLocation, JobSpec, JobStatus | None]],
    prices: PriceBook,
    now: datetime,
    *,
    storage: bool = False,
) -> list[JobRow]:
    """The rows of ``records``, costed (with their EBS and S3 storage when ``storage``)."""
    from runctl.aws.spot_history import SpotHistory

    if not records:
        return []
    by_id, by_job = _instances(session.ec2, [(spec, status) for _, spec, status in records])
    history = SpotHistory(session.ec2.client)

    def row(record: tuple[JobLocation, JobSpec, JobStatus | None]) -> JobRow:
        location, spec, status = record
        instance = _instance_of(spec, status, by_id, by_job)
        return _row(session, location, spec, status, instance, prices, now, history, storage)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(row, records))


def _row(
    session: JobSession,
    location: JobLocation,
    spec: JobSpec,
    status: JobStatus | None,
    instance: Instance | None,
    prices: PriceBook,
    now: datetime,
    history: SpotHistorySource,
    storage: bool,
) -> JobRow:
    alive = instance is not None and instance.state in LIVE
    lost = status is not None and not status.is_terminal and not alive
    state = LOST if lost else (status.state if status else "unknown")
    held = None
    if storage:
        ids = [
            *(status.instance_ids if status else []),
            *([instance.instance_id] if instance else []),
        ]
        window = job_window(status, now, lost=lost)
        held = job_storage_cost(session.ebs, session.s3, location, sorted(set(ids)), window)
    cost = estimate_job_cost(
        spec, status, prices, instance=instance, now=now, lost=lost, history=history, storage=held
    )
    instance_id = instance.instance_id if instance else _last_instance_id(spec, status)
    return JobRow(location, spec, status, state, verdict_of(status, lost=lost), instance,
                  instance_id, cost)  # fmt: skip


def _last_instance_id(spec: JobSpec, status: JobStatus | None) -> str | None:
    if status is not None and status.instance_ids:
        return status.instance_ids[-1]
    recorded = spec.launch_spec.get("instance_id")
    return recorded if isinstance(recorded, str) else None


def _instances(
    ec2: Ec2, jobs: Sequence[tuple[JobSpec, JobStatus | None]]
) -> tuple[dict[str, Instance], dict[str, Instance]]:
    """EC2's view of the jobs' instances: by instance id (each job's last instance), and by job
    id (live instances tagged ``runctl:job`` for a job that has not ended)."""
    ids = sorted({i for spec, status in jobs if (i := _last_instance_id(spec, status))})
    open_jobs = sorted(
        spec.job_id for spec, status in jobs if status is None or not status.is_terminal
    )
    by_id: dict[str, Instance] = {}
    for chunk in _chunks(ids):
        found = ec2.describe_instances(filters={"instance-id": chunk})
        by_id.update((i.instance_id, i) for i in found)
    by_job: dict[str, Instance] = {}
    for chunk in _chunks(open_jobs):
        filters = {f"tag:{tags.JOB}": chunk, "instance-state-name": list(LIVE)}
        by_job.update((i.tags[tags.JOB], i) for i in ec2.describe_instances(filters=filters))
    return by_id, by_job


def _instance_of(
    spec: JobSpec,
    status: JobStatus | None,
    by_id: dict[str, Instance],
    by_job: dict[str, Instance],
) -> Instance | None:
    last = _last_instance_id(spec, status)
    recorded = by_id.get(last) if last else None
    if recorded is not None and recorded.state in LIVE:
        return recorded
    return by_job.get(spec.job_id) or recorded


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), FILTER_VALUES):
        yield values[start : start + FILTER_VALUES]
