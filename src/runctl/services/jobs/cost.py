"""What a job has cost so far, in one place.

**Compute** is instance-seconds x the price in effect: the job's wall time (from its creation to
its end, or to now while it runs, or to its last report when it was lost) priced, for a spot
instance, by every change of its zone's spot price history during that time (each price for the
seconds it was in effect), else by the on-demand price (AWS Pricing API cache, else runctl's
price table) that :class:`~runctl.services.instances.prices.PriceBook` gives. The instance comes
from EC2 while it exists, else from job.json's ``launch_spec``.

**Storage** (:mod:`runctl.services.jobs.storage_cost`, when asked for): the EBS volumes of the
job's instance and those made for the job, at EBS list prices per GB-month over the job's time,
and the S3 storage of the job's prefix since the job began. Every figure names its source.

Not counted: attempts on earlier replacement instances of another type or market, S3 requests
and data transfer.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from runctl.errors import RunctlError
from runctl.job.spec import JobSpec, JobStatus, parse_time

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance, SpotPrice
    from runctl.services.instances.prices import PriceBook, PriceQuote, SpotPriceSource


@dataclass(frozen=True)
class StorageCost:
    """What a job's EBS volumes and S3 prefix cost over its time (None: unknown)."""

    ebs_usd: float | None
    s3_usd: float | None
    source: str


@dataclass(frozen=True)
class CostEstimate:
    """A job's estimated cost so far (None when the price or the time is unknown): ``usd`` is
    compute plus storage when storage was counted."""

    usd: float | None
    instance_seconds: float | None
    usd_per_hour: float | None
    source: str
    compute_usd: float | None = None
    storage: StorageCost | None = None

    def to_dict(self) -> dict[str, Any]:
        """The breakdown (``jobs show``, ``aws train --wait``): stable keys."""
        storage = self.storage
        return {
            "usd": self.usd,
            "compute_usd": self.compute_usd,
            "ebs_usd": storage.ebs_usd if storage else None,
            "s3_usd": storage.s3_usd if storage else None,
            "instance_seconds": self.instance_seconds,
            "usd_per_hour": self.usd_per_hour,
            "price_source": self.source,
            "storage_source": storage.source if storage else "not counted",
        }


class SpotHistorySource(Protocol):
    def spot_price_changes(
        self, instance_type: str, availability_zone: str, start: datetime, end: datetime
    ) -> list[SpotPrice]: ...


def job_window(
    status: JobStatus | None, now: datetime, *, lost: bool = False
) -> tuple[datetime, datetime] | None:
    """When the job began and ended (``now`` while it runs, its last status update when it was
    lost); None before it has a status."""
    if status is None:
        return None
    begun = status.created or status.started
    if not begun:
        return None
    end = status.ended or (status.updated if lost else None)
    start = parse_time(begun)
    return start, max(parse_time(end) if end else now, start)


def job_seconds(status: JobStatus | None, now: datetime, *, lost: bool = False) -> float | None:
    """The job's wall time (:func:`job_window`); None before it has a status."""
    window = job_window(status, now, lost=lost)
    return (window[1] - window[0]).total_seconds() if window else None


def spot_cost_over(
    changes: list[SpotPrice], start: datetime, end: datetime
) -> tuple[float, float] | None:
    """USD paid from ``start`` to ``end`` under ``changes`` (oldest first, each in effect until
    the next) and the mean hourly price; None without any price. Time before the first change
    is priced at the first change."""
    if not changes:
        return None
    total = 0.0
    for index, change in enumerate(changes):
        begin = start if index == 0 else max(change.timestamp, start)
        until = min(changes[index + 1].timestamp, end) if index + 1 < len(changes) else end
        if until > begin:
            total += change.usd_per_hour * (until - begin).total_seconds() / 3600.0
    seconds = (end - start).total_seconds()
    mean = total * 3600.0 / seconds if seconds > 0 else changes[-1].usd_per_hour
    return round(total, 6), round(mean, 6)


def estimate_job_cost(
    spec: JobSpec,
    status: JobStatus | None,
    prices: PriceBook,
    *,
    instance: Instance | None,
    now: datetime,
    lost: bool = False,
    history: SpotHistorySource | None = None,
    storage: StorageCost | None = None,
) -> CostEstimate:
    """The job's cost so far: its time x the price in effect for ``instance`` (or the instance
    job.json's launch spec records): for spot, every price of ``history`` over the job's time
    when given, else the current one; plus ``storage`` when counted."""
    window = job_window(status, now, lost=lost)
    seconds = (window[1] - window[0]).total_seconds() if window else None
    quote = _quote(spec.launch_spec, prices, instance)
    if quote is None:
        return _with_storage(
            CostEstimate(None, seconds, None, "unknown: job.json records no instance type"),
            storage,
        )
    usd = quote.cost_for(seconds) if seconds is not None else None
    estimate = CostEstimate(usd, seconds, quote.usd_per_hour, quote.source, compute_usd=usd)
    spot = (
        _spot_over(spec.launch_spec, instance, history, window) if quote.market == "spot" else None
    )
    if spot is not None:
        estimate = spot
    return _with_storage(estimate, storage)


def _spot_over(
    launch: Mapping[str, Any],
    instance: Instance | None,
    history: SpotHistorySource | None,
    window: tuple[datetime, datetime] | None,
) -> CostEstimate | None:
    """Compute priced by every spot price in effect during ``window``."""
    instance_type = instance.instance_type if instance else launch.get("instance_type")
    zone = instance.availability_zone if instance else launch.get("availability_zone")
    if history is None or window is None or not isinstance(instance_type, str):
        return None
    if not isinstance(zone, str) or not zone:
        return None
    start, end = window
    try:
        changes = history.spot_price_changes(instance_type, zone, start, end)
    except RunctlError:
        return None  # the current price (the quote's) still stands, and says so
    paid = spot_cost_over(changes, start, end)
    if paid is None:
        return None
    usd, mean = paid
    source = (
        f"spot price history {zone}: {len(changes)} price(s) in effect from "
        f"{start:%Y-%m-%dT%H:%MZ} to {end:%Y-%m-%dT%H:%MZ}"
    )
    seconds = (end - start).total_seconds()
    return CostEstimate(round(usd, 4), seconds, mean, source, compute_usd=round(usd, 4))


def _with_storage(estimate: CostEstimate, storage: StorageCost | None) -> CostEstimate:
    if storage is None:
        return estimate
    parts = [estimate.compute_usd, storage.ebs_usd, storage.s3_usd]
    known = [p for p in parts if p is not None]
    total = round(sum(known), 4) if estimate.compute_usd is not None else None
    return replace(estimate, usd=total, storage=storage)


def _quote(
    launch: Mapping[str, Any], prices: PriceBook, instance: Instance | None
) -> PriceQuote | None:
    if instance is not None:
        return prices.for_instance(instance)
    instance_type = launch.get("instance_type")
    if not isinstance(instance_type, str) or not instance_type:
        return None
    if launch.get("lifecycle") == "spot":
        zone = launch.get("availability_zone")
        return prices.spot(instance_type, zone if isinstance(zone, str) else None)
    return prices.on_demand(instance_type)


class RememberedSpotPrices:
    """A spot price source that asks EC2 once per (type, zones): a listing of many jobs on the
    same type would otherwise ask for the same history again and again."""

    def __init__(self, source: SpotPriceSource) -> None:
        self.source = source
        self._seen: dict[tuple[str, tuple[str, ...]], Mapping[str, SpotPrice]] = {}
        self._lock = threading.Lock()

    def describe_spot_price_history(
        self, instance_type: str, availability_zones: Any = ()
    ) -> Mapping[str, SpotPrice]:
        key = (instance_type, tuple(sorted(availability_zones)))
        with self._lock:
            if key not in self._seen:
                self._seen[key] = self.source.describe_spot_price_history(
                    instance_type, availability_zones
                )
            return self._seen[key]
