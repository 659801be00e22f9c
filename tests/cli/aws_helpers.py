"""Helpers for the ``aws`` / ``resources`` CLI tests against the cloud harness."""

from __future__ import annotations

import json
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from runctl.cli.app import app
from tests.cloud.harness import Cloud

runner = CliRunner()


def run(*args: str, input: str | None = None) -> Result:
    """Invoke the real CLI in-process (the harness environment is applied by ``cloud_env``)."""
    return runner.invoke(app, list(args), input=input)


def ok_json(*args: str) -> Any:
    result = run(*args, "--output", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def live_instances(cloud: Cloud) -> list[dict[str, Any]]:
    """Every instance that is pending, running, stopping or stopped."""
    pages = cloud.client("ec2").describe_instances(
        Filters=[
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
        ]
    )
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def describe(cloud: Cloud, instance_id: str) -> dict[str, Any]:
    pages = cloud.client("ec2").describe_instances(InstanceIds=[instance_id])
    instance: dict[str, Any] = pages["Reservations"][0]["Instances"][0]
    return instance


def tags_of(item: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in item.get("Tags", [])}
