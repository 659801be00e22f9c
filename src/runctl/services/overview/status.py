"""``status``: one screen of what runs and what it costs.

The caller's runctl instances in the region (type, market, zone, uptime, price, cost since their
last start, the job each runs and its state), the jobs running now, volumes and snapshots, and
the month's runctl spend so far. Instances and volumes come from EC2, jobs from their records in
the job bucket; the two are asked at the same time, since either may be the slow one.

The month's spend is an estimate built from what runctl can see: the cost of every job started
this month (:mod:`runctl.services.jobs.cost`: instance time at the price in effect, the job's
volumes and its S3 storage) plus what the volumes and snapshots listed now have cost since the
month began (or since they were created). Instances that ran no job, and resources already
deleted, are not in it; the report says so.
"""

from __future__ import annotations

import calendar
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runctl.errors import ConfigError
from runctl.job.spec import TERMINAL_STATES
from runctl.services.account.resources import ResourceListing, ResourceRow, Scope, list_instances

if TYPE_CHECKING:
    from runctl.services.jobs.catalog import JobRow
    from runctl.services.jobs.session import JobSession
    from runctl.services.volumes.manage import SnapshotRow, VolumeRow


@dataclass
class InstanceLine:
    """One instance in ``status``: the listing's row and the state of the job on it."""

    row: ResourceRow
    job_state: str | None

    def to_dict(self) -> dict[str, Any]:
        r = self.row
        return {
            "instance_id": r.instance_id,
            "name": r.name,
            "project": r.project,
            "state": r.state,
            "instance_type": r.instance_type,
            "lifecycle": r.lifecycle,
            "availability_zone": r.availability_zone,
            "uptime_seconds": r.age_seconds,
            "hourly_usd": r.hourly_usd,
            "cost_usd": r.accumulated_usd,
            "price_source": r.price_source,
            "job_id": r.job,
            "job_state": self.job_state,
            "protected": r.protected,
        }


@dataclass
class MonthSpend:
    """The month's runctl spend so far (estimates), and what it leaves out."""

    since: datetime
    jobs_usd: float
    storage_usd: float
    jobs_counted: int

    @property
    def usd(self) -> float:
        return round(self.jobs_usd + self.storage_usd, 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "usd": self.usd,
            "jobs_usd": self.jobs_usd,
            "storage_usd": self.storage_usd,
            "jobs_counted": self.jobs_counted,
        }


@dataclass
class StatusReport:
    """What ``status`` shows; :meth:`to_dict` is its JSON document (stable keys)."""

    region: str
    scope: str
    instances: list[InstanceLine]
    running_jobs: list[JobRow]
    volumes: list[VolumeRow]
    snapshots: list[SnapshotRow]
    month: MonthSpend | None
    notes: list[str] = field(default_factory=list)

    @property
    def hourly_usd(self) -> float:
        """What the running instances cost an hour together."""
        live = (i.row for i in self.instances if i.row.state in ("pending", "running"))
        return round(sum(r.hourly_usd or 0.0 for r in live), 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "scope": self.scope,
            "instances": [line.to_dict() for line in self.instances],
            "hourly_usd": self.hourly_usd,
            "running_jobs": [row.to_dict() for row in self.running_jobs],
            "volumes": self.volumes,
            "snapshots": self.snapshots,
            "month": self.month.to_dict() if self.month else None,
            "notes": self.notes,
        }


def month_start(now: datetime) -> datetime:
    """Midnight UTC on the first day of ``now``'s month."""
    moment = now.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def storage_cost_since(
    volumes: list[VolumeRow], snapshots: list[SnapshotRow], since: datetime, now: datetime
) -> float:
    """What ``volumes`` and ``snapshots`` cost between ``since`` (or their creation) and
    ``now``, from their monthly prices over the days of the month."""
    days = calendar.monthrange(now.year, now.month)[1]
    month_seconds = days * 86400.0
    total = 0.0
    for monthly, created in [(v.month_usd, v.created) for v in volumes] + [
        (s.month_usd, s.started) for s in snapshots
    ]:
        begun = max(created, since) if created else since
        total += (monthly or 0.0) * max((now - begun).total_seconds(), 0.0) / month_seconds
    return round(total, 4)


def gather_status(
    session: JobSession, scope: Scope, *, now: datetime | None = None
) -> StatusReport:
    """The status of ``scope`` in the session's region (see the module docstring)."""
    from runctl.services.jobs.catalog import jobs_since

    moment = now or datetime.now(UTC)
    since = month_start(moment)
    notes: list[str] = []

    def instances() -> ResourceListing:
        target = (session.ec2, session.prices)
        return list_instances([target], scope, storage=lambda _: session.ebs, now=lambda: moment)

    def month_jobs() -> list[JobRow] | None:
        try:
            return jobs_since(session, since, user=scope.user, now=moment)
        except ConfigError as exc:
            notes.append(f"jobs not shown: {exc.message}")
            return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        listing_future, jobs_future = pool.submit(instances), pool.submit(month_jobs)
        listing, jobs = listing_future.result(), jobs_future.result()
    known = {row.job_id: row for row in jobs or []}
    unseen = [r.job for r in listing.rows if r.job and r.job not in known]
    if unseen and jobs is not None:
        for row in jobs_since(session, moment, user=None, also=unseen, now=moment):
            known[row.job_id] = row
    if scope.project:
        known = {k: v for k, v in known.items() if v.spec.project == scope.project}
    lines = [InstanceLine(r, known[r.job].state if r.job in known else None) for r in listing.rows]
    running = [row for row in known.values() if row.state not in TERMINAL_STATES]
    month = None
    if jobs is not None:
        counted = [row for row in jobs if row.job_id in known]
        jobs_usd = round(sum(row.cost.usd or 0.0 for row in counted), 4)
        storage = storage_cost_since(listing.volumes, listing.snapshots, since, moment)
        month = MonthSpend(since, jobs_usd, storage, len(counted))
        notes.append(
            "month: jobs started this month and the volumes and snapshots listed; "
            "instances that ran no job and deleted resources are not counted"
        )
    notes.append(f"scope: {scope.describe()}")
    return StatusReport(
        session.region,
        scope.describe(),
        lines,
        running,
        listing.volumes,
        listing.snapshots,
        month,
        notes,
    )
