"""Price lookups: shipped table, refreshed cache with a TTL, spot history; each with its source."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from runctl.services.instances.prices import CACHE_TTL, PriceBook, shipped_table
from tests.services.fakes import NOW, FakeEc2


class FakePricing:
    def __init__(self) -> None:
        self.calls = 0

    def get_products_ec2_on_demand(self, region: str) -> dict[str, float]:
        self.calls += 1
        return {"t3.micro": 0.0111, "x9.huge": 9.0}


def test_shipped_table_covers_the_common_families_in_three_regions() -> None:
    table = shipped_table()
    for region in ("us-east-1", "us-west-2", "eu-west-1"):
        families = {name.split(".")[0] for name in table["regions"][region]}
        assert {"t3", "m5", "c5", "g4dn", "g5", "p3", "p4d"} <= families
    assert table["regions"]["us-east-1"]["t3.micro"] == 0.0104
    assert table["regions"]["eu-west-1"]["t3.micro"] > 0.0104


def test_on_demand_from_the_table_names_its_source(tmp_path: Path) -> None:
    quote = PriceBook("us-east-1", cache=tmp_path).on_demand("g5.xlarge")
    assert quote.usd_per_hour == 1.006 and "price table" in quote.source
    unknown = PriceBook("ap-south-2", cache=tmp_path).on_demand("t3.micro")
    assert unknown.usd_per_hour is None and "unknown" in unknown.source
    assert quote.cost_for(1800) == 0.503


def test_refresh_writes_a_cache_that_wins_until_it_expires(tmp_path: Path) -> None:
    now = [NOW]
    book = PriceBook("us-east-1", cache=tmp_path, now=lambda: now[0])
    result = book.refresh(FakePricing())
    assert result.count == 2 and result.path == tmp_path / "us-east-1.json"
    assert json.loads(result.path.read_text())["prices"]["x9.huge"] == 9.0
    assert not list(tmp_path.glob(".*"))
    quote = book.on_demand("t3.micro")
    assert quote.usd_per_hour == 0.0111 and "Pricing API" in quote.source
    assert book.on_demand("m5.large").usd_per_hour == 0.096
    now[0] = NOW + CACHE_TTL + timedelta(seconds=1)
    stale = PriceBook("us-east-1", cache=tmp_path, now=lambda: now[0])
    assert stale.on_demand("t3.micro").usd_per_hour == 0.0104


def test_spot_price_comes_from_the_instances_zone(tmp_path: Path) -> None:
    ec2 = FakeEc2(spot_prices={"us-east-1a": 0.004, "us-east-1b": 0.003})
    instance = ec2.add("running", lifecycle="spot", availability_zone="us-east-1a")
    quote = PriceBook("us-east-1", cache=tmp_path, spot_source=ec2).for_instance(instance)
    assert quote.usd_per_hour == 0.004 and quote.market == "spot"
    assert "us-east-1a" in quote.source
