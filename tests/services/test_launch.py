"""The launch strategy, request checks and idempotency, against in-memory fakes."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from runctl.aws.ec2 import Subnet
from runctl.errors import CapacityError, NotFoundError, UsageError
from runctl.polling import Timing
from runctl.services import tags as tagging
from runctl.services.instances.launch import NoCapacityError, launch_instances, render_user_data
from runctl.services.instances.launch_request import LaunchRequest, request_key, validate_request
from tests.services.fakes import NOW, FakeClock, FakeEc2, FakeSsm

REQUEST = LaunchRequest(instance_type="t3.micro", project="demo", user="alice")
SPOT = replace(REQUEST, spot=True)


def launch(ec2: FakeEc2, request: LaunchRequest = REQUEST, **kw: object):  # type: ignore[no-untyped-def]
    return launch_instances(ec2, FakeSsm(), request, now=lambda: ec2.now, **kw)  # type: ignore[arg-type]


def test_on_demand_launch_is_tagged_imdsv2_and_uses_the_amis_root_device() -> None:
    ec2 = FakeEc2()
    result = launch(ec2, replace(REQUEST, tags={"team": "vision"}, iam_instance_profile="p"))
    assert result.instance is not None and result.instance.lifecycle == "on-demand"
    [spec] = ec2.launches()
    assert spec.image_id == "ami-al2023"
    assert [
        (d.device_name, d.size_gb, d.volume_type, d.delete_on_termination)
        for d in spec.block_devices
    ] == [("/dev/xvda", 30, "gp3", True)]
    assert spec.tags["runctl:managed"] == "true"
    assert spec.tags["runctl:project"] == "demo"
    assert spec.tags["runctl:user"] == "alice"
    assert spec.tags["runctl:created"] == "2025-01-01T12:00:00Z"
    assert spec.tags["Name"] == "runctl-demo"
    assert spec.tags["team"] == "vision"
    assert spec.tags[tagging.REQUEST] == result.request_key
    assert spec.iam_instance_profile == "p"
    assert result.warnings == []
    assert [a.outcome for a in result.attempts] == ["launched"]


def test_missing_instance_profile_is_warned_about() -> None:
    result = launch(FakeEc2())
    assert any("no instance profile" in w for w in result.warnings)


def test_gpu_type_gets_newest_dlami_and_100gb_root_and_graviton_gets_arm64() -> None:
    ec2 = FakeEc2()
    gpu = launch(ec2, replace(REQUEST, instance_type="g5.xlarge"))
    assert gpu.image is not None and gpu.image.image.image_id == "ami-dl-new"
    assert ec2.launches()[0].block_devices[0].device_name == "/dev/sda1"
    assert ec2.launches()[0].block_devices[0].size_gb == 100
    arm = launch(ec2, replace(REQUEST, instance_type="t4g.small"))
    assert arm.image is not None and arm.image.image.image_id == "ami-al2023arm"


def test_data_volume_is_added_and_user_data_mounts_it() -> None:
    ec2 = FakeEc2()
    launch(ec2, replace(REQUEST, data_volume_gb=200, root_volume_gb=50))
    spec = ec2.launches()[0]
    assert [(d.device_name, d.size_gb) for d in spec.block_devices] == [
        ("/dev/xvda", 50),
        ("/dev/sdf", 200),
    ]
    assert spec.user_data is not None
    assert "DATA_GB=200" in spec.user_data and "/mnt/data" in spec.user_data
    assert "yum" not in spec.user_data and "apt-get" not in spec.user_data
    assert "dnf " not in spec.user_data and "pip install" not in spec.user_data


def test_root_volume_smaller_than_the_ami_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="at least 75 GB"):
        launch(FakeEc2(), replace(REQUEST, instance_type="g5.xlarge", root_volume_gb=20))


def test_spot_tries_zones_cheapest_first() -> None:
    ec2 = FakeEc2(spot_prices={"us-east-1a": 0.01, "us-east-1b": 0.003, "us-east-1c": 0.02})
    result = launch(ec2, SPOT)
    assert result.instance is not None and result.instance.lifecycle == "spot"
    assert result.instance.availability_zone == "us-east-1b"


def test_spot_capacity_in_one_zone_moves_to_the_next_zone() -> None:
    ec2 = FakeEc2(refuse={("spot", "us-east-1a"): "InsufficientInstanceCapacity"})
    result = launch(ec2, SPOT)
    assert [(a.market, a.availability_zone, a.outcome) for a in result.attempts] == [
        ("spot", "us-east-1a", "no-capacity"),
        ("spot", "us-east-1b", "launched"),
    ]
    assert result.instance is not None and result.instance.lifecycle == "spot"


def test_no_spot_capacity_anywhere_falls_back_to_on_demand() -> None:
    ec2 = FakeEc2(refuse={("spot", z): "InsufficientInstanceCapacity" for z in FakeEc2().zones})
    result = launch(ec2, SPOT)
    assert [a.market for a in result.attempts] == ["spot"] * 3 + ["on-demand"]
    assert result.instance is not None and result.instance.lifecycle == "on-demand"
    assert len(ec2.live()) == 1


def test_no_fallback_raises_no_capacity_with_every_attempt_and_leaves_nothing() -> None:
    ec2 = FakeEc2(refuse={("spot", z): "SpotMaxPriceTooLow" for z in FakeEc2().zones})
    with pytest.raises(NoCapacityError) as info:
        launch(ec2, replace(SPOT, fallback=False))
    assert info.value.exit_code == 5
    assert len(info.value.attempts) == 3
    assert "us-east-1c" in info.value.message and "nothing was left running" in info.value.message
    assert "--no-fallback" in (info.value.hint or "")
    assert info.value.to_dict()["attempts"]
    assert ec2.live() == []
    assert all(spec.spot for spec in ec2.launches())


def test_a_partial_instance_from_a_failed_attempt_is_terminated() -> None:
    ec2 = FakeEc2(
        refuse={("spot", "us-east-1a"): "InsufficientInstanceCapacity"},
        leave_partial={("spot", "us-east-1a")},
    )
    result = launch(ec2, SPOT)
    first = result.attempts[0]
    assert first.outcome == "no-capacity" and len(first.cleaned_up) == 1
    assert [i.instance_id for i in ec2.live()] == [result.instance.instance_id]  # type: ignore[union-attr]


def test_quota_refusal_skips_the_rest_of_that_market() -> None:
    ec2 = FakeEc2(refuse={("spot", "us-east-1a"): "MaxSpotInstanceCountExceeded"})
    result = launch(ec2, SPOT)
    assert [(a.market, a.outcome) for a in result.attempts] == [
        ("spot", "no-capacity"),
        ("on-demand", "launched"),
    ]


def test_spot_zones_above_max_price_are_skipped_without_a_call() -> None:
    ec2 = FakeEc2(spot_prices={"us-east-1a": 0.5, "us-east-1b": 0.05, "us-east-1c": 0.6})
    result = launch(ec2, replace(SPOT, spot_max_price=0.1, fallback=False))
    assert result.instance is not None and result.instance.availability_zone == "us-east-1b"
    assert len(ec2.launches()) == 1
    assert ec2.launches()[0].spot_max_price == 0.1


def test_instance_terminated_at_launch_for_capacity_counts_as_a_failed_attempt() -> None:
    ec2 = FakeEc2(launched_state="pending")
    clock = FakeClock()
    original = ec2.describe_instances

    def describe(**kw):  # type: ignore[no-untyped-def]
        for instance in original(**kw):
            if instance.availability_zone == "us-east-1a" and instance.state == "pending":
                ec2.set_state(
                    instance.instance_id,
                    "terminated",
                    state_reason_code="Server.InsufficientInstanceCapacity",
                )
            elif instance.state == "pending":
                ec2.set_state(instance.instance_id, "running")
        return original(**kw)

    ec2.describe_instances = describe  # type: ignore[method-assign]
    result = launch(ec2, SPOT, confirm_running=True, timing=Timing(sleep=clock.sleep, clock=clock))
    assert result.attempts[0].code == "Server.InsufficientInstanceCapacity"
    assert result.instance is not None and result.instance.availability_zone == "us-east-1b"
    assert result.instance.state == "running"


def test_other_errors_stop_the_strategy_after_cleaning_up() -> None:
    ec2 = FakeEc2()

    def broken(spec):  # type: ignore[no-untyped-def]
        ec2.add("pending", tags=dict(spec.tags), client_token=spec.client_token)
        raise NotFoundError("AMI gone")

    ec2.run_instances = broken  # type: ignore[method-assign]
    with pytest.raises(NotFoundError):
        launch(ec2, SPOT)
    assert ec2.live() == []


def test_ctrl_c_during_launch_terminates_what_was_being_created() -> None:
    ec2 = FakeEc2()

    def interrupted(spec):  # type: ignore[no-untyped-def]
        ec2.add("pending", tags=dict(spec.tags), client_token=spec.client_token)
        raise KeyboardInterrupt

    ec2.run_instances = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        launch(ec2, SPOT)
    assert ec2.live() == []


def test_two_identical_creates_launch_two_instances() -> None:
    ec2 = FakeEc2()
    first = launch(ec2, SPOT)
    second = launch(ec2, SPOT)
    assert not first.reused and not second.reused
    assert first.instance is not None and second.instance is not None
    assert first.instance.instance_id != second.instance.instance_id
    assert first.request_key != second.request_key
    tokens = [spec.client_token for spec in ec2.launches()]
    assert len(tokens) == 2 and all(tokens) and len(set(tokens)) == 2


def test_explicit_client_token_reuses_at_any_age_and_in_any_live_state() -> None:
    ec2 = FakeEc2()
    request = replace(SPOT, client_token="nightly-42")
    first = launch(ec2, request)
    assert first.request_key == "nightly-42" and first.instance is not None
    ec2.set_state(first.instance.instance_id, "stopped")
    ec2.now = NOW + timedelta(days=2)
    again = launch(ec2, replace(request, spot=False))
    assert again.reused and again.instance is not None
    assert again.instance.instance_id == first.instance.instance_id
    assert [a.outcome for a in again.attempts] == ["reused"]
    assert len(ec2.launches()) == 1


def test_once_a_tokens_instances_are_gone_it_launches_with_new_client_tokens() -> None:
    ec2 = FakeEc2()
    request = replace(SPOT, client_token="nightly-42")
    first = launch(ec2, request)
    assert first.instance is not None
    ec2.set_state(first.instance.instance_id, "terminated")
    second = launch(ec2, request)
    assert not second.reused and second.instance is not None
    assert second.instance.instance_id != first.instance.instance_id
    assert len({spec.client_token for spec in ec2.launches()}) == 2


def test_request_key_is_the_client_token_or_fresh_for_every_run() -> None:
    assert request_key(replace(REQUEST, client_token="t-1")) == "t-1"
    assert request_key(REQUEST) != request_key(REQUEST)
    assert request_key(REQUEST).startswith("r-")


def test_count_places_every_instance_through_the_strategy_with_its_own_token() -> None:
    ec2 = FakeEc2(spot_prices={"us-east-1a": 0.01, "us-east-1b": 0.003, "us-east-1c": 0.02})
    result = launch(ec2, SPOT, count=3)
    assert [i.availability_zone for i in result.instances] == ["us-east-1b"] * 3
    assert all(i.lifecycle == "spot" for i in result.instances)
    assert len({i.instance_id for i in result.instances}) == 3
    specs = ec2.launches()
    assert len({spec.client_token for spec in specs}) == 3
    assert {spec.tags[tagging.REQUEST] for spec in specs} == {result.request_key}
    assert result.count == 3 and len(ec2.live()) == 3


def test_count_spills_to_other_zones_then_on_demand_when_spot_runs_out() -> None:
    ec2 = FakeEc2(
        spot_prices={"us-east-1a": 0.01, "us-east-1b": 0.02, "us-east-1c": 0.03},
        room={("spot", "us-east-1a"): 1, ("spot", "us-east-1b"): 1},
        refuse={("spot", "us-east-1c"): "InsufficientInstanceCapacity"},
    )
    result = launch(ec2, SPOT, count=3)
    assert [(i.lifecycle, i.availability_zone) for i in result.instances] == [
        ("spot", "us-east-1a"),
        ("spot", "us-east-1b"),
        ("on-demand", "us-east-1a"),
    ]
    # A zone that refused is not asked again in the same run.
    tried = [(spec.spot, spec.availability_zone) for spec in ec2.launches()]
    assert tried.count((True, "us-east-1a")) == 2 and tried.count((True, "us-east-1c")) == 1
    assert len(ec2.live()) == 3


def test_count_that_cannot_be_placed_terminates_everything_it_launched() -> None:
    ec2 = FakeEc2(
        room={("spot", "us-east-1a"): 1},
        refuse={("spot", z): "InsufficientInstanceCapacity" for z in ("us-east-1b", "us-east-1c")},
    )
    with pytest.raises(NoCapacityError) as info:
        launch(ec2, replace(SPOT, fallback=False), count=3)
    assert info.value.exit_code == 5
    assert "placed 1" in info.value.message and "nothing was left running" in info.value.message
    assert "--allow-partial" in (info.value.hint or "")
    assert ec2.live() == []


def test_allow_partial_keeps_what_was_placed_and_says_so() -> None:
    ec2 = FakeEc2(
        room={("spot", "us-east-1a"): 1},
        refuse={("spot", z): "InsufficientInstanceCapacity" for z in ("us-east-1b", "us-east-1c")},
    )
    result = launch(ec2, replace(SPOT, fallback=False), count=3, allow_partial=True)
    assert len(result.instances) == 1 and len(ec2.live()) == 1
    assert any("placed 1 of 3" in w for w in result.warnings)


def test_explicit_token_returns_all_n_and_completes_a_launch_that_lost_one() -> None:
    ec2 = FakeEc2()
    request = replace(SPOT, client_token="sweep-7")
    first = launch(ec2, request, count=3)
    ids = [i.instance_id for i in first.instances]
    again = launch(ec2, request, count=3)
    assert again.reused and [i.instance_id for i in again.instances] == ids
    assert len(ec2.launches()) == 3
    ec2.set_state(ids[1], "terminated")
    topped_up = launch(ec2, request, count=3)
    assert not topped_up.reused and len(topped_up.instances) == 3
    assert [i.instance_id for i in topped_up.instances][:2] == [ids[0], ids[2]]
    assert len(ec2.launches()) == 4


def test_ctrl_c_in_the_middle_of_a_count_terminates_all_it_launched() -> None:
    ec2 = FakeEc2()
    original = ec2.run_instances
    calls = iter([False, False, True])

    def interrupted(spec):  # type: ignore[no-untyped-def]
        if next(calls):
            raise KeyboardInterrupt
        return original(spec)

    ec2.run_instances = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        launch(ec2, SPOT, count=3)
    assert ec2.live() == []


def test_the_instance_limit_counts_what_a_count_adds() -> None:
    ec2 = FakeEc2()
    ec2.add("running")
    with pytest.raises(CapacityError, match="3 more asked for"):
        launch(ec2, replace(REQUEST, max_instances=3), count=3)
    assert ec2.launches() == []
    assert len(launch(ec2, replace(REQUEST, max_instances=3), count=2).instances) == 2


def test_a_count_instance_terminated_at_launch_is_placed_again_elsewhere() -> None:
    ec2 = FakeEc2(launched_state="pending")
    clock = FakeClock()
    original = ec2.describe_instances
    doomed: list[str] = []

    def describe(**kw):  # type: ignore[no-untyped-def]
        for instance in original(**kw):
            if instance.state != "pending":
                continue
            if instance.availability_zone == "us-east-1a" and not doomed:
                doomed.append(instance.instance_id)
                ec2.set_state(instance.instance_id, "terminated", state_reason_code="capacity")
            else:
                ec2.set_state(instance.instance_id, "running")
        return original(**kw)

    ec2.describe_instances = describe  # type: ignore[method-assign]
    result = launch(
        ec2, SPOT, count=2, confirm_running=True, timing=Timing(sleep=clock.sleep, clock=clock)
    )
    assert len(result.instances) == 2 and doomed[0] not in [i.instance_id for i in result.instances]
    assert [a.outcome for a in result.attempts].count("no-capacity") == 1
    # The slot that lost its instance went to the next zone; us-east-1a refused and is not
    # asked again.
    assert [(i.state, i.availability_zone) for i in result.instances] == [
        ("running", "us-east-1a"),
        ("running", "us-east-1b"),
    ]


def test_instance_limit_refuses_without_force() -> None:
    ec2 = FakeEc2()
    for _ in range(2):
        ec2.add("running")
    with pytest.raises(CapacityError, match="max_instances = 2"):
        launch(ec2, replace(REQUEST, max_instances=2))
    assert ec2.launches() == []
    assert launch(ec2, replace(REQUEST, max_instances=2, force=True)).instance is not None


def test_unmanaged_instances_do_not_count_towards_the_limit() -> None:
    ec2 = FakeEc2()
    ec2.add("running", tags={})
    assert launch(ec2, replace(REQUEST, max_instances=1)).instance is not None


def test_dry_run_checks_permission_and_launches_nothing() -> None:
    ec2 = FakeEc2()
    result = launch(ec2, SPOT, dry_run=True)
    assert result.dry_run and result.instance is None
    assert [a.outcome for a in result.attempts] == ["allowed"]
    assert ec2.launches() == []
    assert [name for name, _ in ec2.calls if name.startswith("RunInstances")] == [
        "RunInstances(dry-run)"
    ]


def test_a_typo_in_the_type_suggests_the_nearest_names() -> None:
    with pytest.raises(UsageError) as info:
        launch(FakeEc2(), replace(REQUEST, instance_type="t3.mciro"))
    assert "t3.micro" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"instance_type": "t3"}, "not an instance type"),
        ({"spot_max_price": 0.5}, "--spot-max-price needs --spot"),
        ({"spot": True, "spot_max_price": -1.0}, "--spot-max-price"),
        ({"root_volume_gb": 0}, "--root-volume-size"),
        ({"data_volume_gb": 20000}, "--data-volume-size"),
        ({"ami_id": "ubuntu"}, "not an AMI id"),
        ({"security_group": "default"}, "group id"),
        ({"subnet_id": "10.0.0.0/24"}, "subnet-"),
        ({"client_token": "has space"}, "--client-token"),
    ],
)
def test_bad_requests_are_usage_errors_before_any_call(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        validate_request(replace(REQUEST, **change))  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [0, 101])
def test_a_count_out_of_range_is_a_usage_error(count: int) -> None:
    with pytest.raises(UsageError, match="--count"):
        validate_request(REQUEST, count)


def test_with_a_subnet_other_zones_go_through_subnets_of_the_same_vpc() -> None:
    ec2 = FakeEc2(
        subnets=[
            Subnet("subnet-b", "vpc-1", "us-east-1b", 10),
            Subnet("subnet-a", "vpc-1", "us-east-1a", 10),
            Subnet("subnet-c", "vpc-1", "us-east-1c", 5),
            Subnet("subnet-c2", "vpc-1", "us-east-1c", 50),
            Subnet("subnet-x", "vpc-2", "us-east-1a", 99),
        ],
        refuse={("spot", "us-east-1b"): "InsufficientInstanceCapacity"},
    )
    result = launch(ec2, replace(SPOT, subnet_id="subnet-b"))
    assert [(a.availability_zone, a.subnet_id) for a in result.attempts] == [
        ("us-east-1b", "subnet-b"),
        ("us-east-1a", "subnet-a"),
    ]


def test_only_zones_offering_the_type_are_tried() -> None:
    ec2 = FakeEc2(
        offered=["us-east-1c"], refuse={("spot", "us-east-1c"): "InsufficientInstanceCapacity"}
    )
    result = launch(ec2, SPOT)
    assert [(a.market, a.availability_zone) for a in result.attempts] == [
        ("spot", "us-east-1c"),
        ("on-demand", "us-east-1c"),
    ]
    with pytest.raises(CapacityError, match="not offered"):
        launch(FakeEc2(offered=[]), SPOT)


def _boot(script: str, tmp_path: Path, sandbox: str | None = None) -> str:
    env = {"PATH": os.environ["PATH"], **({"RUNCTL_REMOTE_ROOT": sandbox} if sandbox else {})}
    done = subprocess.run(
        ["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_user_data_honours_the_remote_root_and_the_sandbox_override(tmp_path: Path) -> None:
    root = tmp_path / "srv" / "runctl"
    text = render_user_data(replace(REQUEST, remote_root=str(root)))
    assert "DATA_GB=0" in text
    assert "ready" in _boot(text, tmp_path)
    assert root.is_dir()
    _boot(text, tmp_path, sandbox=str(tmp_path / "sandbox"))
    assert (tmp_path / "sandbox").is_dir()


@pytest.mark.parametrize(
    "hostile",
    [
        '/x"; touch {marker}; : "',
        "/x$(touch {marker})",
        "/x`touch {marker}`",
        "/x'; touch {marker}; '",
        "/x\ntouch {marker}",
    ],
)
def test_user_data_runs_no_part_of_the_remote_root_as_a_command(
    tmp_path: Path, hostile: str
) -> None:
    # The config refuses such a root (exit 3); the boot script must not rely on that alone.
    marker = tmp_path / "pwned"
    root = str(tmp_path) + hostile.format(marker=marker)
    _boot(render_user_data(replace(REQUEST, remote_root=root)), tmp_path)
    assert not marker.exists()
    assert Path(root).is_dir()  # the whole value stayed one word: a directory of that name


def test_a_just_created_instance_profile_is_retried_until_iam_knows_it() -> None:
    from runctl.aws.ec2 import ProfileNotReady

    ec2 = FakeEc2()
    clock = FakeClock()
    original = ec2.run_instances
    failures = iter([True, True, False])

    def flaky(spec):  # type: ignore[no-untyped-def]
        if next(failures):
            raise ProfileNotReady("p", "Invalid IAM Instance Profile name")
        return original(spec)

    ec2.run_instances = flaky  # type: ignore[method-assign]
    result = launch(
        ec2,
        replace(REQUEST, iam_instance_profile="p"),
        timing=Timing(sleep=clock.sleep, clock=clock),
    )
    assert result.instance is not None
    assert clock.sleeps == [2.0, 4.0]


def test_an_instance_profile_iam_never_shows_is_given_up_after_two_minutes() -> None:
    from runctl.aws.ec2 import ProfileNotReady

    ec2 = FakeEc2()
    clock = FakeClock()

    def never(spec):  # type: ignore[no-untyped-def]
        raise ProfileNotReady("p", 'IAM Instance Profile "arn:p" has no associated IAM Roles')

    ec2.run_instances = never  # type: ignore[method-assign]
    ec2.check_run_instances = never  # type: ignore[method-assign]
    for dry_run in (False, True):
        clock.sleeps.clear()
        start = clock.now
        with pytest.raises(ProfileNotReady) as info:
            launch(
                ec2,
                replace(REQUEST, iam_instance_profile="p"),
                dry_run=dry_run,
                timing=Timing(sleep=clock.sleep, clock=clock),
            )
        assert info.value.exit_code == 6
        assert clock.now - start == pytest.approx(120.0)
        assert clock.sleeps[:5] == [2.0, 4.0, 8.0, 16.0, 20.0]
