"""Checkpoints that survive: spot interruptions, auto-resume, stop, cut uploads, corrupt blobs.

Each test drives the real CLI as a subprocess against the harness; the harness delivers the
spot notice through the instance's IMDS and terminates the instance when the notice runs out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cli.spot_helpers import (
    TRAINER,
    finish,
    interrupt_after_commit,
    live_instance_ids,
    log_text,
    manifests,
    read_json,
    spawn,
    wait_for_step,
    wait_until,
)
from tests.cloud.harness import Cloud

# Long enough (12 s) that a notice is always seen before the script could finish on its own.
STEPS = 120


def expected(steps: int = STEPS) -> dict[str, int]:
    """The deterministic final state of train_with_checkpoints.py after ``steps`` steps."""
    return {"step": steps, "total": steps * (steps + 1) // 2}


def train_args(instance_id: str, *extra: str, steps: int = STEPS) -> list[str]:
    return [
        "aws", "train", instance_id, "train.py", "--output", "json", *extra,
        "--", "--steps", str(steps), "--step-seconds", "0.1",
    ]  # fmt: skip


def result_of(cloud: Cloud, doc: dict[str, object]) -> object:
    prefix = str(doc["job_uri"]).removeprefix(f"s3://{BUCKET}/")
    return read_json(cloud, f"{prefix}outputs/result.json")


def checkpoint_step(cloud: Cloud, store: str, manifest: dict[str, Any]) -> int:
    """The training step saved in a committed checkpoint (its state.json blob)."""
    (entry,) = [f for f in manifest["files"] if f["path"] == "state.json"]
    state = read_json(cloud, f"{store}blobs/{entry['sha256']}")
    return int(state["step"])


def interrupt_twice(cloud: Cloud, first: str) -> None:
    """Interrupt ``first``, wait for attempt 1 to run on its replacement, interrupt that too."""
    interrupt_after_commit(cloud, first)
    second = wait_until(
        lambda: [i for i in live_instance_ids(cloud) if i != first and log_text(cloud, i)],
        what="the replacement",
    )[0]
    wait_until(lambda: "resumed=1" in log_text(cloud, second), what="attempt 1 running")
    interrupt_after_commit(cloud, second)


def test_interruption_resumes_on_a_new_instance_with_the_same_result(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    first = ready_instance(cloud, spot=True)
    proc = spawn(cloud, project, shared_cache, *train_args(first, "--auto-resume"))
    wait_for_step(cloud, first, 12, STEPS)
    interrupt_after_commit(cloud, first)
    code, out, err = finish(proc)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["state"] == "succeeded"
    assert doc["instance_id"] != first
    timeline = doc["timeline"]
    assert [t["state"] for t in timeline] == ["interrupted", "succeeded"]
    assert timeline[0]["instance_id"] == first
    assert timeline[0]["checkpoint_id"]
    assert timeline[0]["notice_to_commit_seconds"] is not None
    assert timeline[0]["recovery_seconds"] is not None
    assert timeline[1]["attempt"] == 1
    assert result_of(cloud, doc) == expected()
    resumed_log = log_text(cloud, doc["instance_id"])
    assert "attempt 1 resumed=1 from step" in resumed_log
    resumed_from = int(resumed_log.split("resumed=1 from step ")[1].split()[0])
    assert resumed_from >= 12
    assert "attempts:" in err
    replacement = cloud.client("ec2").describe_instances(InstanceIds=[doc["instance_id"]])
    tags = {t["Key"]: t["Value"] for t in replacement["Reservations"][0]["Instances"][0]["Tags"]}
    assert tags["runctl:job"] == doc["job_id"]
    assert tags["runctl:managed"] == "true"


def test_two_interruptions_in_one_job(cloud_env: Cloud, project: Path, shared_cache: Path) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    first = ready_instance(cloud, spot=True)
    proc = spawn(cloud, project, shared_cache, *train_args(first, "--auto-resume"))
    wait_for_step(cloud, first, 8, STEPS)
    interrupt_twice(cloud, first)
    code, out, err = finish(proc)
    assert code == 0, err
    doc = json.loads(out)
    assert [t["attempt"] for t in doc["timeline"]] == [0, 1, 2]
    assert [t["state"] for t in doc["timeline"]] == ["interrupted", "interrupted", "succeeded"]
    assert result_of(cloud, doc) == expected()


def test_max_restarts_exceeded_fails_clearly_and_leaves_nothing_running(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    first = ready_instance(cloud, spot=True)
    proc = spawn(
        cloud, project, shared_cache,
        *train_args(first, "--auto-resume", "--max-restarts", "1", steps=200),
    )  # fmt: skip
    wait_for_step(cloud, first, 3, 200)
    interrupt_twice(cloud, first)
    code, out, err = finish(proc)
    assert code == 7, err
    doc = json.loads(out)
    assert "max-restarts 1" in doc["message"]
    assert "--max-restarts 1 reached" in err
    assert [t["state"] for t in doc["timeline"]] == ["interrupted", "interrupted"]
    wait_until(lambda: not live_instance_ids(cloud), what="no instance left")


def test_stop_commits_a_checkpoint_and_start_then_train_resumes_from_it(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    instance_id = ready_instance(cloud)
    store = f"s3://{BUCKET}/experiments/exp1/"
    cloud.allow_s3(store)  # outside runctl/: the role needs a grant, as on AWS
    # Runs until stopped, however long `aws stop` takes to land on a busy machine.
    endless = 10**6
    proc = spawn(
        cloud, project, shared_cache,
        *train_args(instance_id, "--checkpoint-s3", store, steps=endless),
    )  # fmt: skip
    assert finish(proc)[0] == 0
    wait_for_step(cloud, instance_id, 10, endless)
    stop = spawn(cloud, project, shared_cache, "aws", "stop", instance_id, "--wait", "-o", "json")
    code, out, err = finish(stop)
    assert code == 0, err
    stopped = json.loads(out)
    assert stopped["job_stop"]["checkpoint"]
    assert "committed" in stopped["job_stop"]["message"]
    committed = manifests(cloud, "experiments/exp1/")
    assert committed and committed[-1].endswith(".json")
    saved = int(log_text(cloud, instance_id).split("SIGTERM: saved step ")[1].split()[0])

    start = spawn(cloud, project, shared_cache, "aws", "start", instance_id, "--wait")
    assert finish(start)[0] == 0
    cloud.wait_state(instance_id, "running")
    steps = saved + 20
    again = spawn(
        cloud, project, shared_cache,
        *train_args(instance_id, "--checkpoint-s3", store, "--wait", steps=steps),
    )  # fmt: skip
    code, out, err = finish(again)
    assert code == 0, err
    assert f"resumed=1 from step {saved}" in log_text(cloud, instance_id)
    assert result_of(cloud, json.loads(out)) == expected(steps)


def test_cut_final_upload_resumes_from_the_previous_committed_checkpoint(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    store = "experiments/cut/"
    cloud.allow_s3(f"s3://{BUCKET}/{store}")
    first = ready_instance(cloud, spot=True)
    proc = spawn(
        cloud, project, shared_cache,
        *train_args(first, "--checkpoint-s3", f"s3://{BUCKET}/{store}", "--wait"),
    )  # fmt: skip
    wait_for_step(cloud, first, 10, STEPS)
    wait_until(lambda: manifests(cloud, store), what="a committed checkpoint")
    cloud.cut_s3_upload(f"{store}", times=1000, after_bytes=1)
    before = manifests(cloud, store)
    cloud.interrupt(first, notice_seconds=5)
    code, _, err = finish(proc)
    assert code == 7, err
    # The final commit never completes; the instance goes at the end of the notice either way.
    assert "interrupted" in err or "was lost" in err
    assert manifests(cloud, store)[: len(before)] == before
    last_good = read_json(cloud, manifests(cloud, store)[-1])
    cloud.clear_faults()

    second = ready_instance(cloud)
    again = spawn(
        cloud, project, shared_cache,
        *train_args(second, "--checkpoint-s3", f"s3://{BUCKET}/{store}", "--wait"),
    )  # fmt: skip
    code, out, err = finish(again)
    assert code == 0, err
    assert f"resumed=1 from step {checkpoint_step(cloud, store, last_good)}" in log_text(
        cloud, second
    )
    assert result_of(cloud, json.loads(out)) == expected()


def test_corrupted_blob_is_detected_and_the_previous_checkpoint_is_used(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    store = "experiments/corrupt/"
    cloud.allow_s3(f"s3://{BUCKET}/{store}")
    first = ready_instance(cloud)
    # Two runs, so that two committed checkpoints with different states exist whatever the
    # periodic commits caught on a busy machine: run 1 ends at step 10, run 2 at step 30.
    for steps in (10, 30):
        proc = spawn(
            cloud, project, shared_cache,
            *train_args(first, "--checkpoint-s3", f"s3://{BUCKET}/{store}", "--wait", steps=steps),
        )  # fmt: skip
        code, _, err = finish(proc)
        assert code == 0, err
    committed = [read_json(cloud, key) for key in manifests(cloud, store)]
    newest = committed[-1]
    blob = newest["files"][0]["sha256"]
    # What a resume falls back to: the newest checkpoint that does not hold the corrupted blob.
    previous = next(
        m for m in reversed(committed[:-1]) if m["files"] and m["files"][0]["sha256"] != blob
    )
    cloud.client("s3").put_object(Bucket=BUCKET, Key=f"{store}blobs/{blob}", Body=b"garbage")

    again = spawn(
        cloud, project, shared_cache,
        *train_args(first, "--checkpoint-s3", f"s3://{BUCKET}/{store}", "--wait", steps=30),
    )  # fmt: skip
    code, out, err = finish(again)
    assert code == 0, err
    doc = json.loads(out)
    log = "".join(
        p.read_text() for p in (cloud.sandbox(first) / "jobs" / doc["job_id"]).rglob("*.log")
    )  # this run's logs only: run 2 also said "resumed=1 from step 10"
    assert f"resumed=1 from step {checkpoint_step(cloud, store, previous)}" in log
    assert blob[:12] in log  # the runner names the blob that failed verification
    assert result_of(cloud, doc) == expected(30)
