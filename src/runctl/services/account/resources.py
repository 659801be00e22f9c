"""``resources``: what runctl is running, what it costs, and bulk stop/cleanup.

Everything here works within a :class:`Scope`: runctl-managed instances of the calling user
(``runctl:user``) by default, of one project when asked, of every user only when asked
(``--all-users``). Listing may include instances runctl did not create (``--all``); bulk actions
never touch one, nor one tagged ``runctl:protected=true``, and stop and terminate each instance
through the same graceful job step as ``aws stop|terminate``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from runctl.services import tags as tagging
from runctl.services.account.images import ImageRow
from runctl.services.account.leftovers import LeftoverCleanup, StalePrefix, UploadRow
from runctl.services.instances.lifecycle import (
    GracefulJobStop,
    stop_instance,
    terminate_instance,
    uptime_seconds,
)
from runctl.services.volumes.inventory import (
    JobState,
    StorageCleanup,
    cleanup_storage,
    list_storage,
)
from runctl.services.volumes.manage import SnapshotRow, VolumeRow

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from runctl.aws.ebs import Ebs
    from runctl.aws.ec2 import Ec2, Instance
    from runctl.services.instances.prices import PriceBook
    from runctl.services.jobs.session import JobSession

LISTED_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")


@dataclass
class ResourceRow:
    """One instance in ``resources list``."""

    platform: str
    region: str
    instance_id: str
    name: str | None
    project: str | None
    state: str
    instance_type: str
    lifecycle: str
    availability_zone: str | None
    launch_time: datetime | None
    age_seconds: float | None
    hourly_usd: float | None
    accumulated_usd: float | None
    price_source: str
    managed: bool
    protected: bool
    #: The job the instance runs or last ran (its ``runctl:job`` tag).
    job: str | None = None


RegionListing = tuple[list["ResourceRow"], list[VolumeRow], list[SnapshotRow]]


@dataclass
class ResourceListing:
    rows: list[ResourceRow]
    regions: list[str]
    total_hourly_usd: float
    total_accumulated_usd: float
    notes: list[str] = field(default_factory=list)
    volumes: list[VolumeRow] = field(default_factory=list)
    snapshots: list[SnapshotRow] = field(default_factory=list)
    #: What the listed volumes and snapshots cost a month (estimate).
    storage_month_usd: float = 0.0
    #: Unfinished multipart uploads under ``runctl/`` of the runctl buckets.
    uploads: list[UploadRow] = field(default_factory=list)
    #: Prefixes of jobs that ended more than ``--older-than`` ago.
    stale_prefixes: list[StalePrefix] = field(default_factory=list)
    #: Container images in runctl's ECR repositories.
    images: list[ImageRow] = field(default_factory=list)


@dataclass(frozen=True)
class Scope:
    """Which resources a command looks at: one project (None: all), one user (None: all)."""

    project: str | None = None
    user: str | None = None
    include_foreign: bool = False

    def filters(self) -> dict[str, list[str]]:
        """EC2 describe filters for this scope."""
        if not self.include_foreign:
            return tagging.managed_filters(self.project, self.user)
        return {f"tag:{tagging.PROJECT}": [self.project]} if self.project else {}

    @classmethod
    def of(cls, project: str | None, *, all_users: bool, include_foreign: bool = False) -> Scope:
        """The scope of a command: the caller's (``runctl:user``) unless ``all_users``;
        ``project`` as given on the command line (UsageError when it cannot be a key)."""
        from runctl.errors import UsageError
        from runctl.job.spec import project_key

        try:
            key = project_key(project) if project is not None else None
        except ValueError as exc:
            raise UsageError(f"--project {project!r}: {exc}") from None
        return cls(key, None if all_users else tagging.current_user(), include_foreign)

    def describe(self) -> str:
        """In words, for the end of a listing (``all users`` said out loud)."""
        who = f"user {self.user}" if self.user else "all users"
        return f"{who}, " + (f"project {self.project}" if self.project else "all projects")


@dataclass
class BulkResult:
    """What ``cleanup``/``stop-all`` did (or, with ``dry_run``, would do)."""

    action: str
    dry_run: bool
    acted_on: list[str]
    skipped: dict[str, str]
    #: What the graceful step did on each instance that ran a job (the checkpoint it committed).
    job_stops: dict[str, str] = field(default_factory=dict)
    #: Volumes and snapshots cleanup deleted (``cleanup`` with a ``job_state`` reader only).
    storage: StorageCleanup | None = None
    #: ``cleanup``: the scope's unfinished uploads aborted and stale job prefixes deleted.
    leftovers: LeftoverCleanup | None = None
    #: The regions acted in.
    regions: list[str] = field(default_factory=list)


def list_instances(
    regions: Iterable[tuple[Ec2, PriceBook]],
    scope: Scope,
    *,
    storage: Callable[[Ec2], Ebs] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ResourceListing:
    """Instances of ``scope`` in each region with state, age and cost estimates (since their
    last start), and, given ``storage`` (the region's EBS wrapper), the scope's volumes and
    snapshots with their monthly cost."""
    moment = now()
    targets = list(regions)

    def one_region(target: tuple[Ec2, PriceBook]) -> RegionListing:
        ec2, prices = target
        filters = {"instance-state-name": list(LISTED_STATES), **scope.filters()}
        rows = [
            _row(ec2.region, i, prices, moment) for i in ec2.describe_instances(filters=filters)
        ]
        volumes, snapshots = list_storage(storage(ec2), scope) if storage else ([], [])
        return rows, volumes, snapshots

    # Regions are independent; asking them one after another is what makes --all-regions slow.
    with ThreadPoolExecutor(max_workers=min(8, max(len(targets), 1))) as pool:
        found = list(pool.map(one_region, targets))
    rows = [row for region_rows, _, _ in found for row in region_rows]
    volumes = [v for _, region_volumes, _ in found for v in region_volumes]
    snapshots = [s for _, _, region_snapshots in found for s in region_snapshots]
    names = [ec2.region for ec2, _ in targets]
    rows.sort(key=lambda r: (r.region, r.launch_time or moment), reverse=False)
    running = [r for r in rows if r.state in ("pending", "running")]
    storage_cost = sum(v.month_usd or 0.0 for v in volumes) + sum(x.month_usd for x in snapshots)
    return ResourceListing(
        rows=rows,
        regions=names,
        total_hourly_usd=round(sum(r.hourly_usd or 0.0 for r in running), 4),
        total_accumulated_usd=round(sum(r.accumulated_usd or 0.0 for r in rows), 4),
        volumes=volumes,
        snapshots=snapshots,
        storage_month_usd=round(storage_cost, 2),
    )


def _row(region: str, instance: Instance, prices: PriceBook, now: datetime) -> ResourceRow:
    uptime = uptime_seconds(instance, now)
    quote = prices.for_instance(instance) if instance.state in ("pending", "running") else None
    age = (now - instance.launch_time).total_seconds() if instance.launch_time else None
    return ResourceRow(
        platform="aws",
        region=region,
        instance_id=instance.instance_id,
        name=instance.name,
        project=instance.tags.get(tagging.PROJECT),
        state=instance.state,
        instance_type=instance.instance_type,
        lifecycle=instance.lifecycle,
        availability_zone=instance.availability_zone,
        launch_time=instance.launch_time,
        age_seconds=age,
        hourly_usd=quote.usd_per_hour if quote else None,
        accumulated_usd=quote.cost_for(uptime) if quote and uptime is not None else None,
        price_source=quote.source if quote else "not running",
        managed=tagging.is_managed(instance.tags),
        protected=tagging.is_protected(instance.tags),
        job=instance.tags.get(tagging.JOB),
    )


def bulk_action(
    ec2: Ec2,
    action: str,
    scope: Scope,
    *,
    graceful: GracefulJobStop,
    dry_run: bool = False,
    force: bool = False,
    ebs: Ebs | None = None,
    job_state: JobState | None = None,
    include_volumes: bool = False,
) -> BulkResult:
    """Stop (``stop-all``) or terminate (``cleanup``) the managed instances of ``scope`` in a
    region.

    Instances that are protected, not runctl-managed, or already in the target state are
    skipped with the reason. Each instance goes through the same stop/terminate as ``aws
    stop|terminate``: the ``graceful`` job step first (the job's checkpoint committed) unless
    ``force``. Cleanup then deletes volumes and snapshots when given ``ebs`` and ``job_state``
    (:func:`runctl.services.volumes.inventory.cleanup_storage`).
    """
    states = ["pending", "running"] if action == "stop" else list(LISTED_STATES)
    managed = replace(scope, include_foreign=False)
    found = ec2.describe_instances(filters={**managed.filters(), "instance-state-name": states})
    targets: list[str] = []
    skipped: dict[str, str] = {}
    for instance in found:
        if not tagging.is_managed(instance.tags):
            skipped[instance.instance_id] = "not runctl-managed"
        elif tagging.is_protected(instance.tags):
            skipped[instance.instance_id] = "tagged runctl:protected=true"
        elif action == "stop" and instance.lifecycle == "spot":
            skipped[instance.instance_id] = "one-time spot instances cannot be stopped"
        else:
            targets.append(instance.instance_id)
    result = BulkResult(action, dry_run, targets, skipped)
    act = stop_instance if action == "stop" else terminate_instance
    for instance_id in [] if dry_run else targets:
        done = act(ec2, instance_id, force=force, graceful=graceful)
        if done.job_stop is not None:
            result.job_stops[instance_id] = done.job_stop.message
    if action == "terminate" and ebs is not None and job_state is not None:
        result.storage = cleanup_storage(
            ebs, scope, job_state=job_state, include_volumes=include_volumes,
            terminating=targets, dry_run=dry_run,
        )  # fmt: skip
    return result


def act_on_scope(
    session: JobSession,
    action: str,
    scope: Scope,
    *,
    dry_run: bool = False,
    force: bool = False,
    include_volumes: bool = False,
    older_than: timedelta | None = None,
    leftovers: bool = True,
) -> BulkResult:
    """``resources stop-all`` (``action`` "stop") or ``cleanup`` ("terminate") in the session's
    region: the scope's instances, each through the session's graceful job step unless
    ``force``. ``cleanup`` also deletes the volumes and snapshots runctl made for jobs that
    ended (with ``include_volumes`` the scope's data volumes and snapshots too; see
    :mod:`runctl.services.volumes.inventory`) and, with ``leftovers``, the scope's unfinished
    uploads and stale job prefixes in the job bucket (:mod:`runctl.services.account.leftovers`;
    uploads younger than an hour are spared: a commit may be using them)."""
    from runctl.services.volumes.inventory import job_state_reader

    terminating = action == "terminate"
    result = bulk_action(
        session.ec2, action, scope, graceful=session.graceful_stop, dry_run=dry_run, force=force,
        ebs=session.ebs if terminating else None,
        job_state=job_state_reader(session.s3) if terminating else None,
        include_volumes=include_volumes,
    )  # fmt: skip
    result.regions = [session.region]
    bucket = session.settings.aws.s3_bucket
    if terminating and leftovers and bucket:
        result.leftovers = sweep_leftovers(
            session.s3, [bucket], scope, older_than=older_than, dry_run=dry_run
        )
    return result


def sweep_leftovers(
    s3: S3Client,
    buckets: list[str],
    scope: Scope,
    *,
    older_than: timedelta | None,
    dry_run: bool,
) -> LeftoverCleanup:
    """Abort the scope's unfinished uploads and delete its stale job prefixes in ``buckets``."""
    from runctl.services.account.leftovers import clean_leftovers, find_leftovers

    found = find_leftovers(s3, buckets, scope, older_than=older_than)
    done = clean_leftovers(s3, found, dry_run=dry_run)
    done.failed.update({note: "could not be read" for note in found.notes})
    return done
