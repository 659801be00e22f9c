"""resources list and the bulk actions, with fakes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from runctl.aws.ec2 import Instance
from runctl.services.account.resources import Scope, bulk_action, list_instances
from runctl.services.instances.lifecycle import GracefulStopResult
from runctl.services.instances.prices import PriceBook
from tests.services.fakes import NOW, FakeEc2


def test_list_shows_only_managed_instances_unless_all(tmp_path: Path) -> None:
    ec2 = FakeEc2()
    ours = ec2.add(
        "running",
        launch_time=NOW - timedelta(hours=1),
        tags={"runctl:managed": "true", "runctl:project": "a"},
    )
    ec2.add("running", tags={})
    ec2.add("terminated")
    prices = PriceBook("us-east-1", cache=tmp_path)
    listing = list_instances([(ec2, prices)], Scope(), now=lambda: NOW)  # type: ignore[list-item]
    assert [r.instance_id for r in listing.rows] == [ours.instance_id]
    row = listing.rows[0]
    assert row.age_seconds == 3600 and row.hourly_usd == 0.0104 and row.accumulated_usd == 0.0104
    assert listing.total_hourly_usd == 0.0104
    everything = list_instances([(ec2, prices)], Scope(include_foreign=True), now=lambda: NOW)  # type: ignore[list-item]
    assert len(everything.rows) == 2
    assert list_instances([(ec2, prices)], Scope(project="b"), now=lambda: NOW).rows == []  # type: ignore[list-item]


def no_job(instance: Instance) -> GracefulStopResult | None:
    return None


def test_bulk_actions_never_touch_protected_or_foreign_instances() -> None:
    ec2 = FakeEc2()
    target = ec2.add("running")
    protected = ec2.add("running", tags={"runctl:managed": "true", "runctl:protected": "true"})
    foreign = ec2.add("running", tags={})
    spot = ec2.add("running", lifecycle="spot")
    plan = bulk_action(ec2, "terminate", Scope(), graceful=no_job, dry_run=True)  # type: ignore[arg-type]
    assert sorted(plan.acted_on) == sorted([target.instance_id, spot.instance_id])
    assert plan.skipped == {protected.instance_id: "tagged runctl:protected=true"}
    assert all(i.state == "running" for i in ec2.instances.values())
    stopped = bulk_action(ec2, "stop", Scope(), graceful=no_job)  # type: ignore[arg-type]
    assert stopped.acted_on == [target.instance_id]
    assert spot.instance_id in stopped.skipped
    assert ec2.instances[foreign.instance_id].state == "running"
    assert ec2.instances[protected.instance_id].state == "running"
    assert ec2.instances[target.instance_id].state == "stopping"


def test_bulk_actions_take_only_the_callers_instances_and_run_the_graceful_step() -> None:
    ec2 = FakeEc2()
    mine = ec2.add("running", tags={"runctl:managed": "true", "runctl:user": "alice",
                                     "runctl:project": "a"})  # fmt: skip
    other_project = ec2.add("running", tags={"runctl:managed": "true", "runctl:user": "alice",
                                              "runctl:project": "b"})  # fmt: skip
    theirs = ec2.add("running", tags={"runctl:managed": "true", "runctl:user": "bob",
                                       "runctl:project": "a"})  # fmt: skip
    stepped: list[str] = []

    def graceful(instance: Instance) -> GracefulStopResult | None:
        stepped.append(instance.instance_id)
        return GracefulStopResult("job", "job stopped; checkpoint 3 committed", "3")

    done = bulk_action(ec2, "terminate", Scope("a", "alice"), graceful=graceful)  # type: ignore[arg-type]
    assert done.acted_on == [mine.instance_id] and stepped == [mine.instance_id]
    assert ec2.instances[other_project.instance_id].state == "running"
    assert ec2.instances[theirs.instance_id].state == "running"
    everyone = bulk_action(ec2, "stop", Scope("a", None), graceful=graceful, force=True)  # type: ignore[arg-type]
    assert everyone.acted_on == [theirs.instance_id]
    assert stepped == [mine.instance_id]  # --force: no graceful step
