"""A job's cost so far: instance-seconds x its instance's hourly price, with the price source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from runctl.job.spec import JobSpec, JobStatus
from runctl.services.instances.prices import PriceBook
from runctl.services.jobs.cost import RememberedSpotPrices, estimate_job_cost, job_seconds
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
