"""``runctl aws start|stop|terminate|status|wait`` end to end against the harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.aws_helpers import ok_json, run
from tests.cloud.harness import Cloud

STATUS_KEYS = [
    "instance_id",
    "name",
    "state",
    "instance_type",
    "lifecycle",
    "availability_zone",
    "launch_time",
    "uptime_seconds",
    "hourly_price_usd",
    "cost_so_far_usd",
    "price_source",
    "ssm_ping",
    "current_job",
    "private_ip",
    "public_ip",
    "managed",
    "tags",
]


MANAGED = {"runctl:managed": "true"}


@pytest.mark.parametrize("command", ["start", "stop", "terminate", "status", "wait"])
def test_malformed_ids_exit_2_before_any_call(
    cloud_env: Cloud, workdir: Path, command: str
) -> None:
    extra = ["--yes"] if command == "terminate" else []
    result = run("aws", command, "i-123", *extra)
    assert result.exit_code == 2
    assert cloud_env.request_log == []


@pytest.mark.parametrize("command", ["start", "stop", "status", "wait"])
def test_unknown_ids_exit_6(cloud_env: Cloud, workdir: Path, command: str) -> None:
    result = run("aws", command, "i-0123456789abcdef0")
    assert result.exit_code == 6
    assert "i-0123456789abcdef0" in result.stderr


def test_stop_then_stop_again_then_start(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    instance_id = cloud.run_instance(tags={"runctl:managed": "true"})
    stopped = ok_json("aws", "stop", instance_id, "--wait")
    assert stopped["changed"] is True and stopped["state"] == "stopped"
    assert cloud.state(instance_id) == "stopped"
    again = run("aws", "stop", instance_id)
    assert again.exit_code == 0 and "nothing to do" in again.stderr
    started = ok_json("aws", "start", instance_id, "--wait")
    assert started["state"] == "running" and cloud.state(instance_id) == "running"
    assert ok_json("aws", "start", instance_id)["changed"] is False


def test_one_time_spot_cannot_be_stopped(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    instance_id = cloud.run_instance(spot=True, tags=MANAGED)
    result = run("aws", "stop", instance_id)
    assert result.exit_code == 8
    assert "one-time spot" in result.stderr and f"aws terminate {instance_id}" in result.stderr
    assert cloud.state(instance_id) == "running"


def test_starting_a_terminated_instance_exits_8(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    instance_id = cloud.run_instance(tags=MANAGED)
    assert run("aws", "terminate", instance_id, "--yes", "--wait").exit_code == 0
    assert cloud.state(instance_id) == "terminated"
    result = run("aws", "start", instance_id)
    assert result.exit_code == 8 and "terminated" in result.stderr
    assert run("aws", "terminate", instance_id, "--yes").exit_code == 0


def test_terminate_refuses_without_a_terminal_or_yes(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    instance_id = cloud.run_instance(tags=MANAGED)
    result = run("aws", "terminate", instance_id, input="y\n")
    assert result.exit_code == 2
    assert "not a terminal" in result.stderr and "--yes" in result.stderr
    assert cloud.state(instance_id) == "running"


def test_terminate_refuses_protected_instances(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    instance_id = cloud.run_instance(tags={"runctl:managed": "true", "runctl:protected": "true"})
    result = run("aws", "terminate", instance_id, "--yes")
    assert result.exit_code == 8 and "protected" in result.stderr
    assert cloud.state(instance_id) == "running"


@pytest.mark.parametrize("flags", [[], ["--force"], ["--wait"]])
def test_stop_refuses_protected_instances_even_with_force(
    cloud_env: Cloud, workdir: Path, flags: list[str]
) -> None:
    cloud = cloud_env
    instance_id = cloud.run_instance(tags={"runctl:managed": "true", "runctl:protected": "true"})
    result = run("aws", "stop", instance_id, *flags)
    assert result.exit_code == 8 and "protected" in result.stderr, result.stderr
    assert cloud.state(instance_id) == "running"
    assert cloud.calls("StopInstances") == []


@pytest.mark.parametrize("command", [["stop"], ["terminate", "--yes"]])
def test_instances_runctl_did_not_create_need_force(
    cloud_env: Cloud, workdir: Path, command: list[str]
) -> None:
    cloud = cloud_env
    instance_id = cloud.run_instance(tags={"Name": "shared-db"})
    result = run("aws", command[0], instance_id, *command[1:])
    assert result.exit_code == 2, result.stderr
    assert "NOT created by runctl" in result.stderr and "shared-db" in result.stderr
    assert "--force" in result.stderr
    assert cloud.state(instance_id) == "running"
    forced = run("aws", *command, instance_id, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert cloud.state(instance_id) in ("stopping", "stopped", "shutting-down", "terminated")


def test_status_json_keys_and_ssm_ping(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    instance_id = cloud.run_instance(tags={"runctl:managed": "true", "Name": "box"})
    cloud.wait_for(lambda: ok_json("aws", "status", instance_id)["ssm_ping"] == "Online")
    data = ok_json("aws", "status", instance_id)
    assert list(data) == STATUS_KEYS
    assert data["state"] == "running" and data["lifecycle"] == "on-demand"
    assert data["hourly_price_usd"] == 0.0104 and data["cost_so_far_usd"] is not None
    assert data["current_job"] is None and data["managed"] is True
    text = run("aws", "status", instance_id)
    assert text.exit_code == 0 and "cost so far" in text.stdout and "box" in text.stdout


def test_wait_command(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    managed = cloud.run_instance()
    data = ok_json("aws", "wait", managed, "--timeout", "30")
    assert data["ssm_online"] is True
    bare = cloud.run_instance(profile=None)
    result = run("aws", "wait", bare, "--timeout", "0")
    assert result.exit_code == 9 and "no instance profile" in result.stderr
    cloud.client("ec2").stop_instances(InstanceIds=[managed])
    stopped = run("aws", "wait", managed, "--timeout", "0")
    assert stopped.exit_code == 8


def test_output_json_error_document(cloud_env: Cloud, workdir: Path) -> None:
    result = run("aws", "status", "i-0123456789abcdef0", "--output", "json")
    assert result.exit_code == 6
    assert json.loads(result.stdout)["exit_code"] == 6
