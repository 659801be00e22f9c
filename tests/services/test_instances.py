"""Instance lifecycle in every state, the graceful job hook, and waiting, with fakes."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from runctl.aws.ec2 import Instance, SpotPrice
from runctl.errors import NotFoundError, UsageError, WaitTimeoutError, WrongStateError
from runctl.polling import Timing
from runctl.services.instances.lifecycle import (
    GracefulStopResult,
    instance_status,
    start_instance,
    stop_instance,
    terminate_instance,
    validate_instance_id,
    wait_for_state,
    wait_ready,
)
from runctl.services.instances.prices import PriceBook
from tests.services.fakes import NOW, FakeClock, FakeEc2, FakeSsm


def no_job(instance: Instance) -> GracefulStopResult | None:
    """The graceful step when no job runs on the instance."""
    return None


def timing() -> Timing:
    clock = FakeClock()
    return Timing(sleep=clock.sleep, clock=clock)


@pytest.mark.parametrize("value", ["i-0123456789abcdef0", "i-01234567"])
def test_valid_instance_ids(value: str) -> None:
    assert validate_instance_id(value) == value


@pytest.mark.parametrize(
    "value", ["i-123", "0123456789abcdef0", "i-0123456789ABCDEF0", "i-0123456789abcdef", ""]
)
def test_malformed_instance_ids_are_usage_errors(value: str) -> None:
    with pytest.raises(UsageError):
        validate_instance_id(value)


def test_unknown_instance_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        stop_instance(FakeEc2(), "i-0123456789abcdef0", graceful=no_job)


def test_stop_running_calls_graceful_step_first() -> None:
    ec2 = FakeEc2()
    instance = ec2.add("running")
    seen: list[str] = []

    def graceful(target):  # type: ignore[no-untyped-def]
        seen.append(target.instance_id)
        assert ("StopInstances", instance.instance_id) not in ec2.calls
        return GracefulStopResult("job-1", "checkpoint 3 committed", "s3://b/ck/3")

    result = stop_instance(ec2, instance.instance_id, graceful=graceful)
    assert seen == [instance.instance_id]
    assert result.changed and result.state == "stopping"
    assert result.job_stop is not None and result.job_stop.checkpoint == "s3://b/ck/3"


def test_force_skips_the_graceful_step() -> None:
    ec2 = FakeEc2()
    instance = ec2.add("running")
    called: list[object] = []
    stop_instance(ec2, instance.instance_id, force=True, graceful=called.append)  # type: ignore[arg-type]
    terminate_instance(ec2, instance.instance_id, force=True, graceful=called.append)  # type: ignore[arg-type]
    assert called == []


@pytest.mark.parametrize("state", ["stopped", "stopping"])
def test_stopping_a_stopped_instance_is_a_noop(state: str) -> None:
    ec2 = FakeEc2()
    instance = ec2.add(state)
    result = stop_instance(ec2, instance.instance_id, graceful=no_job)
    assert not result.changed and result.state == state
    assert ("StopInstances", instance.instance_id) not in ec2.calls


def test_one_time_spot_cannot_be_stopped_and_terminate_is_suggested() -> None:
    ec2 = FakeEc2()
    instance = ec2.add("running", lifecycle="spot", spot_request_id="sir-1")
    ec2.spot_request_types["sir-1"] = "one-time"
    with pytest.raises(WrongStateError) as info:
        stop_instance(ec2, instance.instance_id, graceful=no_job)
    assert "one-time spot" in info.value.message
    assert "terminate" in (info.value.hint or "")
    persistent = ec2.add("running", lifecycle="spot", spot_request_id="sir-2")
    ec2.spot_request_types["sir-2"] = "persistent"
    assert stop_instance(ec2, persistent.instance_id, graceful=no_job).changed


@pytest.mark.parametrize("state", ["terminated", "shutting-down"])
def test_gone_instances_cannot_be_started_or_stopped(state: str) -> None:
    ec2 = FakeEc2()
    instance = ec2.add(state)
    with pytest.raises(WrongStateError) as info:
        start_instance(ec2, instance.instance_id)
    assert info.value.exit_code == 8
    with pytest.raises(WrongStateError):
        stop_instance(ec2, instance.instance_id, graceful=no_job)
    assert not terminate_instance(ec2, instance.instance_id, graceful=no_job).changed


def test_start_running_is_a_noop_and_start_stopped_starts() -> None:
    ec2 = FakeEc2()
    running = ec2.add("running")
    assert not start_instance(ec2, running.instance_id).changed
    stopped = ec2.add("stopped")
    result = start_instance(ec2, stopped.instance_id)
    assert result.changed and ("StartInstances", stopped.instance_id) in ec2.calls


def test_start_waits_for_a_stopping_instance_to_stop_first() -> None:
    ec2 = FakeEc2()
    instance = ec2.add("stopping")
    original = ec2.describe_instance

    def describe(instance_id: str):  # type: ignore[no-untyped-def]
        found = original(instance_id)
        if found.state == "stopping":
            ec2.set_state(instance_id, "stopped")
        return found

    ec2.describe_instance = describe  # type: ignore[method-assign]
    assert start_instance(ec2, instance.instance_id, timing=timing()).changed


def test_protected_instances_are_neither_stopped_nor_terminated_even_with_force() -> None:
    ec2 = FakeEc2()
    instance = ec2.add("running", tags={"runctl:managed": "true", "runctl:protected": "true"})
    for act in (stop_instance, terminate_instance):
        for force in (False, True):
            with pytest.raises(WrongStateError, match="protected"):
                act(ec2, instance.instance_id, graceful=no_job, force=force)
    assert ec2.instances[instance.instance_id].state == "running"
    assert not any(call[0] in ("StopInstances", "TerminateInstances") for call in ec2.calls)


def test_instances_runctl_did_not_create_need_force_and_are_named() -> None:
    ec2 = FakeEc2()
    foreign = ec2.add("running", tags={"Name": "db-primary"})
    for act, verb in ((stop_instance, "stop"), (terminate_instance, "terminate")):
        with pytest.raises(UsageError, match=f"refusing to {verb} .*db-primary.*NOT created by"):
            act(ec2, foreign.instance_id, graceful=no_job)
    assert ec2.instances[foreign.instance_id].state == "running"
    assert terminate_instance(ec2, foreign.instance_id, graceful=no_job, force=True).changed


def test_wait_for_state_times_out_naming_the_state() -> None:
    ec2 = FakeEc2()
    instance = ec2.add("stopping")
    with pytest.raises(WaitTimeoutError, match="still stopping after 30s"):
        wait_for_state(ec2, instance.instance_id, "stopped", timeout=30, timing=timing())


def test_wait_for_running_fails_fast_when_terminated() -> None:
    ec2 = FakeEc2()
    instance = ec2.add("terminated", state_reason="Server.SpotInstanceTermination")
    with pytest.raises(WrongStateError, match="SpotInstanceTermination"):
        wait_for_state(ec2, instance.instance_id, "running", timeout=30, timing=timing())


def test_wait_ready_returns_once_ssm_is_online() -> None:
    ec2 = FakeEc2()
    instance = ec2.add("running", iam_instance_profile_arn="arn:profile")
    ssm = FakeSsm(online={instance.instance_id})
    ready = wait_ready(ec2, ssm, instance.instance_id, timeout=0)  # type: ignore[arg-type]
    assert ready.ssm_online and ready.state == "running"


def test_wait_ready_timeout_says_the_instance_profile_is_missing() -> None:
    ec2 = FakeEc2()
    instance = ec2.add("running")
    with pytest.raises(WaitTimeoutError) as info:
        wait_ready(ec2, FakeSsm(), instance.instance_id, timeout=60, timing=timing())  # type: ignore[arg-type]
    assert "no instance profile" in info.value.message
    assert "aws setup" in (info.value.hint or "")


def test_wait_ready_timeout_with_a_profile_points_at_its_policy() -> None:
    ec2 = FakeEc2()
    instance = ec2.add("running", iam_instance_profile_arn="arn:profile")
    with pytest.raises(WaitTimeoutError) as info:
        wait_ready(ec2, FakeSsm(), instance.instance_id, timeout=60, timing=timing())  # type: ignore[arg-type]
    assert "AmazonSSMManagedInstanceCore" in (info.value.hint or "")


def test_wait_ready_on_a_stopped_instance_is_wrong_state() -> None:
    ec2 = FakeEc2()
    instance = ec2.add("stopped")
    with pytest.raises(WrongStateError) as info:
        wait_ready(ec2, FakeSsm(), instance.instance_id, timeout=60, timing=timing())  # type: ignore[arg-type]
    assert "aws start" in (info.value.hint or "")


def test_status_has_uptime_cost_and_ssm_ping(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ec2 = FakeEc2()
    instance = ec2.add(
        "running", launch_time=NOW - timedelta(hours=2), tags={"runctl:job": "demo-1"}
    )
    prices = PriceBook("us-east-1", cache=tmp_path, now=lambda: NOW)
    status = instance_status(
        ec2,
        lambda: FakeSsm(online={instance.instance_id}),
        prices,
        instance.instance_id,
        now=lambda: NOW,
    )  # type: ignore[arg-type]
    assert status.uptime_seconds == 7200
    assert status.hourly_price_usd == 0.0104
    assert status.cost_so_far_usd == 0.0208
    assert status.ssm_ping == "Online"
    assert status.current_job == "demo-1"
    assert "price table" in status.price_source


def test_status_of_a_stopped_instance_asks_ssm_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ec2 = FakeEc2()
    instance = ec2.add("stopped")

    class MuteSsm(FakeSsm):
        def describe_instance_information(self, instance_ids):  # type: ignore[no-untyped-def]
            raise AssertionError("SSM was asked about a stopped instance")

    prices = PriceBook("us-east-1", cache=tmp_path, now=lambda: NOW)
    status = instance_status(ec2, MuteSsm, prices, instance.instance_id, now=lambda: NOW)  # type: ignore[arg-type]
    assert status.ssm_ping == "n/a"
    assert status.cost_so_far_usd is None
    assert status.hourly_price_usd == 0.0104


def test_status_asks_ssm_and_the_spot_price_at_the_same_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each call waits for the other to be in flight: one after the other would break the
    barrier (its timeout only bounds a failing run)."""
    ec2 = FakeEc2()
    instance = ec2.add("running", lifecycle="spot", launch_time=NOW - timedelta(hours=1))
    both = threading.Barrier(2, timeout=30)

    class Spot:
        def describe_spot_price_history(self, instance_type, availability_zones=()):  # type: ignore[no-untyped-def]
            both.wait()
            zone = availability_zones[0]
            return {zone: SpotPrice(instance_type, zone, 0.0031, NOW)}

    class SlowSsm(FakeSsm):
        def describe_instance_information(self, instance_ids):  # type: ignore[no-untyped-def]
            both.wait()
            return super().describe_instance_information(instance_ids)

    prices = PriceBook("us-east-1", cache=tmp_path, now=lambda: NOW, spot_source=Spot())
    status = instance_status(
        ec2,
        lambda: SlowSsm(online={instance.instance_id}),
        prices,
        instance.instance_id,
        now=lambda: NOW,
    )  # type: ignore[arg-type]
    assert status.ssm_ping == "Online"
    assert status.hourly_price_usd == 0.0031
    assert status.cost_so_far_usd == 0.0031
