"""``runctl status`` end to end: instances with their jobs, running jobs, volumes, the month."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.aws_helpers import ok_json, run
from tests.cli.jobs_helpers import make_project, ready_instance
from tests.cli.spot_helpers import log_text, wait_until
from tests.cloud.harness import Cloud

HELLO = "print('hello', flush=True)\n"
SLOW = "import time\nfor i in range(600):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n"
INSTANCE_KEYS = [
    "instance_id",
    "name",
    "project",
    "state",
    "instance_type",
    "lifecycle",
    "availability_zone",
    "uptime_seconds",
    "hourly_usd",
    "cost_usd",
    "price_source",
    "job_id",
    "job_state",
    "protected",
]


def test_status_shows_instances_jobs_volumes_and_the_month(
    cloud_env: Cloud, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = cloud_env
    make_project(project, {"hello.py": HELLO, "slow.py": SLOW})
    busy, idle = ready_instance(cloud), ready_instance(cloud)
    done = json.loads(run("aws", "train", busy, "hello.py", "--wait", "-o", "json").stdout)
    slow = json.loads(run("aws", "train", busy, "slow.py", "-o", "json").stdout)
    wait_until(lambda: "tick 2" in log_text(cloud, busy), what="the slow job running")
    volume = ok_json("aws", "ebs", "create", "--size", "10", "--availability-zone", "us-east-1a")
    foreign = cloud.run_instance()

    data = ok_json("status")
    assert list(data) == [
        "region",
        "scope",
        "instances",
        "hourly_usd",
        "running_jobs",
        "volumes",
        "snapshots",
        "month",
        "notes",
    ]
    lines = {line["instance_id"]: line for line in data["instances"]}
    assert set(lines) == {busy, idle} and foreign not in lines
    assert list(lines[busy]) == INSTANCE_KEYS
    assert (lines[busy]["job_id"], lines[busy]["job_state"]) == (slow["job_id"], "running")
    assert lines[idle]["job_id"] is None and lines[idle]["hourly_usd"] == 0.0104
    assert lines[busy]["uptime_seconds"] is not None and lines[busy]["cost_usd"] is not None
    assert [j["job_id"] for j in data["running_jobs"]] == [slow["job_id"]]
    assert [v["volume_id"] for v in data["volumes"]] == [volume["volume_id"]]
    month = data["month"]
    assert month["jobs_counted"] == 2 and month["jobs_usd"] >= 0
    assert data["running_jobs"][0]["cost_usd"] is not None
    assert month["usd"] == pytest.approx(month["jobs_usd"] + month["storage_usd"])
    assert data["hourly_usd"] == pytest.approx(2 * 0.0104)
    assert done["job_id"] not in {j["job_id"] for j in data["running_jobs"]}

    monkeypatch.setenv("COLUMNS", "250")
    text = run("status")
    assert text.exit_code == 0, text.stderr
    assert slow["job_id"] in text.stdout and volume["volume_id"] in text.stdout
    assert "2 instance(s) running at $0.0208/h, 1 job(s) running" in text.stdout
    assert "so far $" in text.stdout
    assert ok_json("status", "--project", "other")["running_jobs"] == []


def test_status_without_a_bucket_still_shows_instances(cloud_env: Cloud, workdir: Path) -> None:
    created = ok_json("aws", "create", "t3.micro")
    data = ok_json("status")
    assert [i["instance_id"] for i in data["instances"]] == [created["instance_id"]]
    assert data["month"] is None and any("jobs not shown" in n for n in data["notes"])
    text = run("status")
    assert text.exit_code == 0 and "no job running now" in text.stdout
    assert created["instance_id"] in text.stdout
