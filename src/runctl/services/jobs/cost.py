"""What a job has cost so far, in one place.

The estimate is **instance-seconds x the hourly price of the job's instance**: the job's wall time
(from its creation to its end, or to now while it runs, or to its last report when it was lost)
times the price :class:`~runctl.services.instances.prices.PriceBook` gives for the instance's
type and market -- the spot price history of its zone for a spot instance, else the on-demand
price (AWS Pricing API cache, else runctl's price table). The instance comes from EC2 while it
exists, else from job.json's ``launch_spec``. Every estimate names its price source.

Not counted yet: how the spot price moved during the job, attempts on replacements of another
market, EBS volumes, S3 storage and requests. :func:`estimate_job_cost` is the one function
that will grow to count them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runctl.job.spec import JobSpec, JobStatus, parse_time

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance, SpotPrice
    from runctl.services.instances.prices import PriceBook, PriceQuote, SpotPriceSource


@dataclass(frozen=True)
class CostEstimate:
    """A job's estimated cost so far (None when the price or the time is unknown)."""

    usd: float | None
    instance_seconds: float | None
    usd_per_hour: float | None
    source: str


def job_seconds(status: JobStatus | None, now: datetime, *, lost: bool = False) -> float | None:
    """The job's wall time: creation to end (to ``now`` while it runs, to its last status
    update when it was lost); None before it has a status."""
    if status is None:
        return None
    begun = status.created or status.started
    if not begun:
        return None
    end = status.ended or (status.updated if lost else None)
    finished = parse_time(end) if end else now
    return max((finished - parse_time(begun)).total_seconds(), 0.0)


def estimate_job_cost(
    spec: JobSpec,
    status: JobStatus | None,
    prices: PriceBook,
    *,
    instance: Instance | None,
    now: datetime,
    lost: bool = False,
) -> CostEstimate:
    """The job's cost so far: :func:`job_seconds` x the hourly price of ``instance`` (or of the
    instance job.json's launch spec records)."""
    seconds = job_seconds(status, now, lost=lost)
    quote = _quote(spec.launch_spec, prices, instance)
    if quote is None:
        return CostEstimate(None, seconds, None, "unknown: job.json records no instance type")
    usd = quote.cost_for(seconds) if seconds is not None else None
    return CostEstimate(usd, seconds, quote.usd_per_hour, quote.source)


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
