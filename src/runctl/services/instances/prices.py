"""Hourly price estimates, each with the source it came from.

On-demand prices come from a cache refreshed from the AWS Pricing API (``runctl aws prices
--refresh``, kept under ``~/.cache/runctl/prices`` for :data:`CACHE_TTL`) or else from the table
shipped with runctl (``runctl/data/prices.json``). Spot prices come from EC2's spot price history
for the instance's own availability zone.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runctl.paths import cache_dir as user_cache_dir

if TYPE_CHECKING:
    from runctl.aws.ec2 import Ec2, Instance, SpotPrice

CACHE_TTL = timedelta(days=7)


class SpotPriceSource(Protocol):
    def describe_spot_price_history(
        self, instance_type: str, availability_zones: Any = ()
    ) -> Mapping[str, SpotPrice]: ...


class OnDemandSource(Protocol):
    def get_products_ec2_on_demand(self, region: str) -> dict[str, float]: ...


@dataclass(frozen=True)
class PriceQuote:
    """An hourly price estimate (None when unknown) and where it came from."""

    usd_per_hour: float | None
    source: str
    market: str = "on-demand"

    def cost_for(self, seconds: float) -> float | None:
        """The estimated cost of running for ``seconds``."""
        if self.usd_per_hour is None:
            return None
        return round(self.usd_per_hour * max(seconds, 0.0) / 3600.0, 4)


@dataclass(frozen=True)
class RefreshResult:
    region: str
    count: int
    path: Path
    fetched_at: datetime


@cache
def shipped_table() -> dict[str, Any]:
    """The price table shipped with runctl."""
    text = resources.files("runctl").joinpath("data/prices.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class PriceBook:
    """Looks up hourly prices for one region, saying where each figure came from."""

    def __init__(
        self,
        region: str,
        *,
        cache: Path | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        spot_source: SpotPriceSource | None = None,
    ):
        self.region = region
        self.cache = cache or user_cache_dir("prices")
        self.now = now
        self.spot_source = spot_source
        self._cached: dict[str, float] | None = None
        self._cached_at: str | None = None

    def on_demand(self, instance_type: str) -> PriceQuote:
        """The on-demand price: fresh cache first, then the shipped table, else unknown."""
        cached = self._load_cache()
        if cached is not None and instance_type in cached:
            return PriceQuote(cached[instance_type], f"AWS Pricing API ({self._cached_at})")
        table = shipped_table()
        price = table["regions"].get(self.region, {}).get(instance_type)
        if price is not None:
            return PriceQuote(float(price), f"runctl price table (as of {table['as_of']})")
        return PriceQuote(
            None, f"unknown: not in the price table for {self.region}; try `aws prices --refresh`"
        )

    def spot(self, instance_type: str, availability_zone: str | None) -> PriceQuote:
        """The latest spot price in the zone, from EC2's spot price history."""
        if self.spot_source is None or not availability_zone:
            return PriceQuote(None, "unknown: no availability zone", "spot")
        history = self.spot_source.describe_spot_price_history(instance_type, [availability_zone])
        latest = history.get(availability_zone)
        if latest is None:
            return PriceQuote(
                None, f"unknown: no spot price history in {availability_zone}", "spot"
            )
        stamp = latest.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
        return PriceQuote(
            latest.usd_per_hour, f"spot price history {availability_zone} ({stamp})", "spot"
        )

    def for_instance(self, instance: Instance) -> PriceQuote:
        """The price that applies to a running instance, by its lifecycle."""
        if instance.lifecycle == "spot":
            return self.spot(instance.instance_type, instance.availability_zone)
        return self.on_demand(instance.instance_type)

    def _cache_file(self) -> Path:
        return self.cache / f"{self.region}.json"

    def _load_cache(self) -> dict[str, float] | None:
        if self._cached is not None:
            return self._cached
        try:
            data = json.loads(self._cache_file().read_text("utf-8"))
            fetched = datetime.fromisoformat(data["fetched_at"])
            prices = {str(k): float(v) for k, v in data["prices"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if self.now() - fetched > CACHE_TTL:
            return None
        self._cached, self._cached_at = prices, data["fetched_at"][:10]
        return prices

    def refresh(self, source: OnDemandSource) -> RefreshResult:
        """Fetch this region's prices from the Pricing API into the cache (atomically)."""
        prices = source.get_products_ec2_on_demand(self.region)
        fetched = self.now()
        path = self._cache_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"region": self.region, "fetched_at": fetched.isoformat(), "prices": prices}
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._cached = None
        return RefreshResult(self.region, len(prices), path, fetched)


def price_rows(
    book: PriceBook, ec2: Ec2, instance_types: list[str] | None, *, spot: bool
) -> list[dict[str, Any]]:
    """``aws prices``: each type's on-demand price with its source (default: every type in the
    shipped table for the region) and, with ``spot``, the cheapest zone's current spot price."""
    names = instance_types or sorted(shipped_table()["regions"].get(book.region, {}))
    rows: list[dict[str, Any]] = []
    for name in names:
        quote = book.on_demand(name)
        row: dict[str, Any] = {
            "instance_type": name,
            "on_demand_usd": quote.usd_per_hour,
            "on_demand_source": quote.source,
        }
        if spot:
            history = ec2.describe_spot_price_history(name)
            cheapest = min(history.values(), key=lambda p: p.usd_per_hour, default=None)
            row["spot_usd"] = cheapest.usd_per_hour if cheapest else None
            row["spot_zone"] = cheapest.availability_zone if cheapest else None
        rows.append(row)
    return rows
