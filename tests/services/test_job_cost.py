"""A job's cost so far: instance-seconds x its instance's hourly price, with the price source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from runctl.aws.ec2 import SpotPrice
from runctl.job.spec import JobSpec, JobStatus, parse_time
from runctl.services.instances.prices import PriceBook
from runctl.services.jobs.cost import (
    RememberedSpotPrices,
    StorageCost,
    estimate_job_cost,
    job_seconds,
    spot_cost_over,
)
from tests.services.fakes import FakeEc2

NOW = datetime(2025, 1, 1, 13, 0, tzinfo=UTC)
SPEC = JobSpec(
    job_id="demo-20250101-120000-a1b2",
    project="demo",
    script="train.py",
    launch_spec={"instance_type": "t3.micro", "lifecycle": "on-demand"},
)


def status(**kw: object) -> JobStatus:
    base: dict[str, object] = {"job_id": SPEC.job_id, "created": "2025-01-01T12:00:00.000Z"}
    base.update(kw)
    return JobStatus(**base)  # type: ignore[arg-type]


def test_time_runs_to_the_end_to_now_or_to_the_last_report_of_a_lost_job() -> None:
    assert job_seconds(status(state="succeeded", ended="2025-01-01T12:30:00.000Z"), NOW) == 1800
    assert job_seconds(status(state="running"), NOW) == 3600
    lost = status(state="running", updated="2025-01-01T12:10:00.000Z")
    assert job_seconds(lost, NOW, lost=True) == 600
    assert job_seconds(None, NOW) is None


def test_on_demand_price_from_the_launch_spec_when_the_instance_is_gone(tmp_path: Path) -> None:
    prices = PriceBook("us-east-1", cache=tmp_path)
    done = status(state="succeeded", ended="2025-01-01T13:00:00.000Z")
    cost = estimate_job_cost(SPEC, done, prices, instance=None, now=NOW)
    hourly = prices.on_demand("t3.micro").usd_per_hour
    assert hourly is not None and cost.usd_per_hour == hourly
    assert cost.usd == round(hourly, 4) and cost.instance_seconds == 3600
    assert "price table" in cost.source


def test_spot_price_of_the_instances_zone_and_an_unknown_type(tmp_path: Path) -> None:
    ec2 = FakeEc2(spot_prices={"us-east-1b": 0.0036})
    prices = PriceBook("us-east-1", cache=tmp_path, spot_source=ec2)
    spot = SPEC.launch_spec | {"lifecycle": "spot", "availability_zone": "us-east-1b"}
    cost = estimate_job_cost(
        JobSpec(job_id=SPEC.job_id, project="demo", script="t.py", launch_spec=spot),
        status(state="running"),
        prices,
        instance=None,
        now=NOW,
    )
    assert cost.usd == 0.0036 and "spot price history us-east-1b" in cost.source
    unknown = estimate_job_cost(
        JobSpec(job_id=SPEC.job_id, project="demo", script="t.py"),
        status(state="running"),
        prices,
        instance=None,
        now=NOW,
    )
    assert unknown.usd is None and unknown.instance_seconds == 3600
    assert "no instance type" in unknown.source


def test_a_live_instance_is_priced_as_ec2_describes_it(tmp_path: Path) -> None:
    ec2 = FakeEc2(spot_prices={"us-east-1a": 0.01})
    instance = ec2.add("running", lifecycle="spot", instance_type="t3.micro")
    prices = PriceBook("us-east-1", cache=tmp_path, spot_source=ec2)
    cost = estimate_job_cost(SPEC, status(state="running"), prices, instance=instance, now=NOW)
    assert cost.usd_per_hour == 0.01 and cost.usd == 0.01


def test_remembered_spot_prices_ask_once_per_type_and_zones() -> None:
    asked: list[tuple[str, tuple[str, ...]]] = []

    class Source:
        def describe_spot_price_history(self, instance_type: str, availability_zones=()):  # type: ignore[no-untyped-def]
            asked.append((instance_type, tuple(availability_zones)))
            return {}

    remembered = RememberedSpotPrices(Source())
    for _ in range(3):
        remembered.describe_spot_price_history("t3.micro", ["us-east-1a"])
    remembered.describe_spot_price_history("g5.xlarge", ["us-east-1a"])
    assert asked == [("t3.micro", ("us-east-1a",)), ("g5.xlarge", ("us-east-1a",))]


def _price(when: datetime, usd: float) -> SpotPrice:
    return SpotPrice("t3.micro", "us-east-1b", usd, when)


def test_spot_time_is_priced_by_every_price_in_effect() -> None:
    start, end = datetime(2025, 1, 1, 12, tzinfo=UTC), datetime(2025, 1, 1, 14, tzinfo=UTC)
    changes = [
        _price(datetime(2025, 1, 1, 11, tzinfo=UTC), 0.01),  # in effect when the job began
        _price(datetime(2025, 1, 1, 13, tzinfo=UTC), 0.03),
    ]
    assert spot_cost_over(changes, start, end) == (0.04, 0.02)
    # A first change after the start prices the time before it too (nothing earlier is known).
    late = [_price(datetime(2025, 1, 1, 13, tzinfo=UTC), 0.03)]
    assert spot_cost_over(late, start, end) == (0.06, 0.03)
    assert spot_cost_over([], start, end) is None


def test_a_spot_job_is_priced_over_its_window_and_storage_is_added(tmp_path: Path) -> None:
    seen: list[tuple[str, str, datetime, datetime]] = []

    class History:
        def spot_price_changes(
            self, instance_type: str, zone: str, start: datetime, end: datetime
        ) -> list[SpotPrice]:
            seen.append((instance_type, zone, start, end))
            return [_price(datetime(2025, 1, 1, 11, tzinfo=UTC), 0.02)]

    ec2 = FakeEc2(spot_prices={"us-east-1b": 0.5})  # today's price: not what the job paid
    prices = PriceBook("us-east-1", cache=tmp_path, spot_source=ec2)
    spot = SPEC.launch_spec | {"lifecycle": "spot", "availability_zone": "us-east-1b"}
    spec = JobSpec(job_id=SPEC.job_id, project="demo", script="t.py", launch_spec=spot)
    done = status(state="succeeded", ended="2025-01-01T12:30:00.000Z")
    storage = StorageCost(0.002, 0.0001, "EBS list prices: 1 volume(s), 8 GiB; S3 ...")
    cost = estimate_job_cost(
        spec, done, prices, instance=None, now=NOW, history=History(), storage=storage
    )
    assert seen == [("t3.micro", "us-east-1b", parse_time(done.created or ""),
                     parse_time(done.ended or ""))]  # fmt: skip
    assert cost.compute_usd == 0.01 and cost.usd == 0.0121
    assert "1 price(s) in effect from 2025-01-01T12:00Z to 2025-01-01T12:30Z" in cost.source
    assert cost.to_dict()["ebs_usd"] == 0.002 and cost.to_dict()["s3_usd"] == 0.0001
