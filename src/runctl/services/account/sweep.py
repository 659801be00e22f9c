"""``resources list|summary|cleanup`` over every kind runctl leaves behind, in one region or all.

Kinds: instances, volumes and snapshots (per region, by their tags), unfinished multipart
uploads and stale job prefixes (per bucket, by their job's owner; see
:mod:`runctl.services.account.leftovers`). ``--all-regions`` asks every enabled region at the
same time and, for the bucket-level kinds, every bucket tagged ``runctl:managed`` besides the
configured one. The scope (:class:`~runctl.services.account.resources.Scope`) is always the
caller's unless ``--all-users``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from runctl.errors import RunctlError
from runctl.services.account.leftovers import find_leftovers, runctl_buckets
from runctl.services.account.resources import (
    BulkResult,
    ResourceListing,
    Scope,
    act_on_scope,
    list_instances,
    sweep_leftovers,
)
from runctl.services.volumes.inventory import StorageCleanup

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_s3 import S3Client

    from runctl.aws.ebs import Ebs
    from runctl.aws.ec2 import Ec2
    from runctl.services.instances.prices import PriceBook
    from runctl.services.jobs.session import JobSession


def list_resources(
    regions: Sequence[tuple[Ec2, PriceBook]],
    scope: Scope,
    *,
    storage: Callable[[Ec2], Ebs],
    s3: S3Client | None,
    bucket: str | None,
    every_bucket: bool,
    older_than: timedelta | None,
    registry: Callable[[Ec2], ECRClient] | None = None,
) -> ResourceListing:
    """Every kind in ``regions`` and the runctl buckets (the configured one; with
    ``every_bucket`` every one tagged ``runctl:managed``) and, given ``registry`` (a region's
    ECR client), the images of runctl's repositories; regions, buckets and registries read at
    the same time."""
    from runctl.services.account.images import list_images

    def leftovers() -> Any:
        if s3 is None:
            return None
        buckets = runctl_buckets(s3, bucket, every=every_bucket)
        return find_leftovers(s3, buckets, scope, older_than=older_than)

    with ThreadPoolExecutor(max_workers=2 + len(regions)) as pool:
        in_buckets = pool.submit(leftovers)
        images = [pool.submit(list_images, registry(ec2), scope) for ec2, _ in regions
                  if registry is not None]  # fmt: skip
        listing = list_instances(regions, scope, storage=storage)
        found = in_buckets.result()
        for registry_images in images:
            try:
                listing.images += registry_images.result()
            except RunctlError as exc:
                listing.notes.append(f"images: {exc.message}")
    if found is not None:
        listing.uploads, listing.stale_prefixes = found.uploads, found.stale
        listing.notes += found.notes
        if older_than is None:
            listing.notes.append("job prefixes: --older-than 30d lists those of jobs that ended")
    return listing


def act_everywhere(
    sessions: Sequence[JobSession],
    action: str,
    scope: Scope,
    *,
    dry_run: bool = False,
    force: bool = False,
    include_volumes: bool = False,
    older_than: timedelta | None = None,
    every_bucket: bool = False,
) -> BulkResult:
    """:func:`~runctl.services.account.resources.act_on_scope` in each session's region at the
    same time, then (``cleanup``) the leftovers of the runctl buckets once; one merged result."""

    def one(session: JobSession) -> BulkResult:
        return act_on_scope(session, action, scope, dry_run=dry_run, force=force,
                            include_volumes=include_volumes, leftovers=False)  # fmt: skip

    with ThreadPoolExecutor(max_workers=min(8, max(len(sessions), 1))) as pool:
        results = list(pool.map(one, sessions))
    merged = merge_results(action, dry_run, results)
    home = sessions[0]
    bucket = home.settings.aws.s3_bucket
    if action == "terminate":
        buckets = runctl_buckets(home.s3, bucket, every=every_bucket)
        if buckets:
            merged.leftovers = sweep_leftovers(
                home.s3, buckets, scope, older_than=older_than, dry_run=dry_run
            )
    return merged


def merge_results(action: str, dry_run: bool, results: Sequence[BulkResult]) -> BulkResult:
    """One BulkResult of several regions' (their instances, storage and regions together)."""
    merged = BulkResult(action, dry_run, [], {})
    storage: StorageCleanup | None = None
    for result in results:
        merged.acted_on += result.acted_on
        merged.skipped.update(result.skipped)
        merged.job_stops.update(result.job_stops)
        merged.regions += result.regions
        if result.storage is not None:
            storage = storage or StorageCleanup(dry_run)
            storage.volumes += result.storage.volumes
            storage.snapshots += result.storage.snapshots
            storage.skipped.update(result.storage.skipped)
    merged.storage = storage
    return merged


@dataclass
class KindSummary:
    """``resources summary``: one kind of one project: how many, how big, what it costs."""

    kind: str
    project: str | None
    count: int = 0
    size_gb: float = 0.0
    hourly_usd: float = 0.0
    month_usd: float = 0.0
    so_far_usd: float = 0.0


@dataclass
class ResourceSummary:
    """Counts and cost per kind and project, and the totals."""

    rows: list[KindSummary]
    regions: list[str]
    hourly_usd: float
    month_usd: float
    notes: list[str] = field(default_factory=list)


def summarize(listing: ResourceListing) -> ResourceSummary:
    """Group a listing by (kind, project)."""
    from runctl.services.account.leftovers import GIB, S3_GB_MONTH

    groups: dict[tuple[str, str | None], KindSummary] = {}

    def add(kind: str, project: str | None, **amounts: float) -> None:
        row = groups.setdefault((kind, project), KindSummary(kind, project))
        row.count += 1
        for name, value in amounts.items():
            setattr(row, name, round(getattr(row, name) + value, 4))

    for r in listing.rows:
        live = r.state in ("pending", "running")
        add("instance", r.project, hourly_usd=(r.hourly_usd or 0.0) if live else 0.0,
            so_far_usd=r.accumulated_usd or 0.0)  # fmt: skip
    for v in listing.volumes:
        add("volume", v.project, size_gb=v.size_gb, month_usd=v.month_usd or 0.0)
    for s in listing.snapshots:
        add("snapshot", s.project, size_gb=s.size_gb, month_usd=s.month_usd)
    for u in listing.uploads:
        add("upload", u.project)
    for i in listing.images:
        add("image", i.project, size_gb=round(i.size_bytes / GIB, 4), month_usd=i.month_usd)
    for p in listing.stale_prefixes:
        add("job prefix", p.project, size_gb=round(p.size_bytes / GIB, 4),
            month_usd=round(p.size_bytes / GIB * S3_GB_MONTH, 4))  # fmt: skip
    rows = sorted(groups.values(), key=lambda k: (k.kind, k.project or ""))
    return ResourceSummary(
        rows,
        listing.regions,
        round(sum(k.hourly_usd for k in rows), 4),
        round(sum(k.month_usd for k in rows), 2),
        [*listing.notes, "uploads: the size of unfinished parts is not listed by S3"],
    )
