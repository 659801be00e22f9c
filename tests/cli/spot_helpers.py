"""Helpers for the spot interruption and resume tests: a CLI subprocess and ways to wait."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.jobs_helpers import BUCKET
from tests.cloud.harness import Cloud

REPO = Path(__file__).resolve().parents[2]
TRAINER = (REPO / "training" / "train_with_checkpoints.py").read_text()


def interruptible() -> None:
    """In the child: Ctrl-C as in a terminal. A test run started in the background inherits
    SIGINT ignored, and Python then never turns SIGINT into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(cloud: Cloud, cwd: Path, cache: Path, *args: str) -> subprocess.Popen[str]:
    """``runctl ARGS`` as a subprocess in ``cwd`` against the harness."""
    env = {**cloud.subprocess_env(), "XDG_CACHE_HOME": str(cache), "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "runctl", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )


# Upper bounds for a broken run, not speed requirements: a busy machine may take its time.
def finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_until(predicate: Callable[[], Any], timeout: float = 300, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def log_text(cloud: Cloud, instance_id: str) -> str:
    """Every job log on the instance's disk, concatenated."""
    root = cloud.sandbox(instance_id)
    try:
        return "".join(p.read_text(errors="replace") for p in sorted(root.rglob("attempt-*.log")))
    except FileNotFoundError:  # a directory renamed under the walk (code.extracting -> code)
        return ""


def job_state(cloud: Cloud, instance_id: str) -> str | None:
    """The state the runner on ``instance_id`` last wrote to its job's local status.json."""
    found = sorted((cloud.sandbox(instance_id) / "jobs").glob("*/status.json"))
    if not found:
        return None
    try:
        return str(json.loads(found[-1].read_text())["state"])
    except (OSError, ValueError, KeyError):
        return None  # being rewritten


def s3_job_state(cloud: Cloud, instance_id: str) -> str | None:
    """The state in the S3 copy of status.json of the job last run on ``instance_id`` (what the
    laptop reads once the instance is gone)."""
    found = sorted((cloud.sandbox(instance_id) / "jobs").glob("*/status.json"))
    if not found:
        return None
    suffix = f"/jobs/{found[-1].parent.name}/status.json"
    s3 = cloud.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="runctl/"):
        for item in page.get("Contents", []):
            if item["Key"].endswith(suffix):
                body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
                return str(json.loads(body)["state"])
    return None


def interrupt_after_commit(cloud: Cloud, instance_id: str) -> None:
    """A spot interruption whose instance goes once its runner has finished with the notice
    (checkpoint committed, job marked interrupted here and in S3): a fixed notice of a few
    seconds raced a busy machine and the job came out ``lost``, and so did ending the instance
    between the runner's local status and its S3 copy. AWS gives two minutes, plenty for this."""
    cloud.interrupt(instance_id, notice_seconds=3600)
    wait_until(
        lambda: (
            job_state(cloud, instance_id) == "interrupted"
            and s3_job_state(cloud, instance_id) == "interrupted"
        ),
        what=f"the runner on {instance_id} to finish with the notice",
    )
    cloud.interrupt(instance_id, notice_seconds=0)


def wait_for_step(cloud: Cloud, instance_id: str, step: int, steps: int) -> None:
    wait_until(
        lambda: f"step {step}/{steps}" in log_text(cloud, instance_id),
        what=f"step {step} on {instance_id}",
    )


def manifests(cloud: Cloud, prefix: str) -> list[str]:
    s3 = cloud.client("s3")
    found = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}manifests/").get("Contents", [])
    return sorted(o["Key"] for o in found)


def read_json(cloud: Cloud, key: str) -> Any:
    return json.loads(cloud.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


def live_instance_ids(cloud: Cloud) -> list[str]:
    pages = cloud.client("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping"]}]
    )
    return [i["InstanceId"] for r in pages["Reservations"] for i in r["Instances"]]
