"""``runctl jobs list|show|logs|cancel`` end to end: jobs read from their records in S3, whether
their instances still exist or not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.aws_helpers import describe, ok_json, run
from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cli.spot_helpers import TRAINER, log_text, read_json, wait_for_step, wait_until
from tests.cloud.harness import Cloud

HELLO = "import sys\nprint('hello', *sys.argv[1:], flush=True)\n"
FAIL = "print('about to fail', flush=True)\nraise SystemExit(3)\n"
SLOW = "import time\nfor i in range(600):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n"
STEPS = 300
ROW_KEYS = [
    "job_id", "job_uri", "project", "script", "args", "user", "state", "verdict", "exit_code",
    "attempts", "instance_id", "instance_state", "created", "ended", "duration_seconds",
    "cost_usd", "price_source",
]  # fmt: skip


def train(instance_id: str, script: str, *args: str, wait: bool = True) -> dict[str, Any]:
    result = run("aws", "train", instance_id, script, *(["--wait"] if wait else []), "-o", "json",
                 "--", *args)  # fmt: skip
    assert result.exit_code in (0, 7), result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def listed(*args: str) -> dict[str, dict[str, Any]]:
    data = ok_json("jobs", "list", *args)
    return {row["job_id"]: row for row in data["jobs"]}


def test_list_shows_jobs_whose_instances_are_gone(cloud_env: Cloud, project: Path) -> None:
    cloud = cloud_env
    make_project(project, {"hello.py": HELLO, "fail.py": FAIL, "slow.py": SLOW})
    first = ready_instance(cloud)
    ok = train(first, "hello.py", "--lr=0.1")
    failed = train(first, "fail.py")
    running = train(first, "slow.py", wait=False)
    wait_until(lambda: "tick 3" in log_text(cloud, first), what="the slow job running")
    cloud.client("ec2").terminate_instances(InstanceIds=[first])
    cloud.wait_state(first, "terminated")

    data = ok_json("jobs", "list")
    rows = {row["job_id"]: row for row in data["jobs"]}
    assert list(data["jobs"][0]) == ROW_KEYS
    assert [row["job_id"] for row in data["jobs"]] == sorted(rows, reverse=True)  # newest first
    assert rows[ok["job_id"]]["state"] == "succeeded" and rows[ok["job_id"]]["args"] == ["--lr=0.1"]
    assert (rows[failed["job_id"]]["state"], rows[failed["job_id"]]["exit_code"]) == ("failed", 3)
    lost = rows[running["job_id"]]
    assert (lost["state"], lost["verdict"]) == ("lost", "lost")
    for row in rows.values():
        assert row["instance_id"] == first and row["instance_state"] in ("terminated", None)
        assert row["script"] in ("hello.py", "fail.py", "slow.py") and row["attempts"] == 1
        assert row["cost_usd"] is not None and "price table" in row["price_source"]
        assert row["duration_seconds"] is not None and row["user"]
    text = run("jobs", "list")
    assert text.exit_code == 0, text.stderr
    assert (
        ok["job_id"] in text.stdout and "lost" in text.stdout and "failed (exit 3)" in text.stdout
    )
    assert set(listed("--state", "lost")) == {running["job_id"]}
    assert set(listed("--state", "failed")) == {failed["job_id"]}
    assert listed("--project", "other") == {}
    assert len(listed("--limit", "2")) == 2


def test_list_is_the_callers_jobs_unless_all_users(cloud_env: Cloud, project: Path) -> None:
    cloud = cloud_env
    make_project(project, {"hello.py": HELLO})
    instance_id = ready_instance(cloud)
    mine = train(instance_id, "hello.py")
    theirs = train(instance_id, "hello.py")
    key = theirs["job_uri"].removeprefix(f"s3://{BUCKET}/") + "job.json"
    spec = read_json(cloud, key)
    assert spec["user"] and spec["launch_spec"]["instance_type"] == "t3.micro"
    spec["user"] = "somebody-else"
    cloud.client("s3").put_object(Bucket=BUCKET, Key=key, Body=json.dumps(spec).encode())
    assert set(listed()) == {mine["job_id"]}
    assert set(listed("--all-users")) == {mine["job_id"], theirs["job_id"]}


def test_show_says_everything_and_refuses_bad_ids_before_any_call(
    cloud_env: Cloud, project: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"hello.py": HELLO})
    instance_id = ready_instance(cloud)
    job = train(instance_id, "hello.py", "a b")
    detail = ok_json("jobs", "show", job["job_id"])
    assert list(detail)[: len(ROW_KEYS)] == ROW_KEYS
    assert (detail["state"], detail["verdict"], detail["exit_code"]) == (
        "succeeded",
        "succeeded",
        0,
    )
    assert detail["args"] == ["a b"] and detail["instance_ids"] == [instance_id]
    assert detail["checkpoint_uri"] == job["job_uri"] + "checkpoints/"
    assert detail["log_uri"] == job["job_uri"] + "logs/attempt-0.log"
    assert detail["launch_spec"]["instance_id"] == instance_id
    assert detail["hourly_price_usd"] is not None
    by_uri = ok_json("jobs", "show", job["job_uri"])
    assert by_uri["job_id"] == job["job_id"]
    text = run("jobs", "show", job["job_id"])
    assert text.exit_code == 0 and "checkpoints:" in text.stdout and "hello.py a b" in text.stdout

    missing = run("jobs", "show", "demo-20200101-000000-abcd")
    assert missing.exit_code == 6 and "does not exist" in missing.stderr
    cloud.request_log.clear()
    for bad in ("not-a-job", "s3://bucket/elsewhere/"):
        result = run("jobs", "show", bad)
        assert result.exit_code == 2, result.stderr
    assert run("jobs", "list", "--state", "sleeping").exit_code == 2
    assert cloud.request_log == []


def test_logs_come_from_the_instance_then_from_s3_and_follow_to_the_verdict(
    cloud_env: Cloud, project: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"hello.py": HELLO, "fail.py": FAIL})
    instance_id = ready_instance(cloud)
    job = train(instance_id, "hello.py", "from-the-log")
    live = run("jobs", "logs", job["job_id"])
    assert live.exit_code == 0, live.stderr
    assert "hello from-the-log" in live.stdout
    doc = ok_json("jobs", "logs", job["job_id"])
    assert "hello from-the-log" in doc["lines"] and doc["state"] == "succeeded"

    failed = train(instance_id, "fail.py")
    followed = run("jobs", "logs", failed["job_id"], "--follow", "-o", "json")
    assert followed.exit_code == 7
    events = [json.loads(line) for line in followed.stdout.splitlines()]
    assert {"type": "log", "line": "about to fail"} in events
    assert (events[-1]["type"], events[-1]["verdict"], events[-1]["exit_code"]) == (
        "end",
        "failed",
        3,
    )

    cloud.client("ec2").terminate_instances(InstanceIds=[instance_id])
    cloud.wait_state(instance_id, "terminated")
    gone = ok_json("jobs", "logs", job["job_id"])
    assert gone["source"] == "s3" and "hello from-the-log" in gone["lines"]


def test_cancel_commits_the_checkpoint_and_leaves_the_instance_running(
    cloud_env: Cloud, project: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    instance_id = ready_instance(cloud)
    job = train(instance_id, "train.py", "--steps", str(STEPS), "--step-seconds", "0.1",
                wait=False)  # fmt: skip
    wait_for_step(cloud, instance_id, 10, STEPS)
    refused = run("jobs", "cancel", job["job_id"])  # no terminal to confirm on
    assert refused.exit_code == 2 and "--yes" in refused.stderr

    done = run("jobs", "cancel", job["job_id"], "--yes", "-o", "json")
    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "cancelled" and result["checkpoint_id"]
    assert result["instance_left_running"] is True
    status = read_json(cloud, job["job_uri"].removeprefix(f"s3://{BUCKET}/") + "status.json")
    assert status["state"] == "cancelled" and status["checkpoint_id"] == result["checkpoint_id"]
    assert describe(cloud, instance_id)["State"]["Name"] == "running"
    row = listed()[job["job_id"]]
    assert (row["state"], row["verdict"]) == ("cancelled", "cancelled")

    again = run("jobs", "cancel", job["job_id"], "--yes")
    assert again.exit_code == 8 and "already ended (cancelled)" in again.stderr
