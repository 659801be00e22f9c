"""``runctl workflow train`` end to end on the harness: parallel jobs with their own sweep
arguments, outputs downloaded, and no instance left running -- after success, a failed job,
Ctrl-C and a lost terminal (SIGHUP); ``--auto-resume`` for each job on its own."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli.aws_helpers import run
from tests.cli.jobs_helpers import BUCKET, make_project
from tests.cli.spot_helpers import (
    TRAINER,
    finish,
    live_instance_ids,
    log_text,
    read_json,
    spawn,
    wait_for_step,
    wait_until,
)
from tests.cloud.harness import Cloud

# Writes its arguments to its outputs. With --gate=PATH it waits for that file first (the
# harness runs an instance's processes on this host): a test opens the gate only once every job
# is waiting there, which proves them running side by side without timing anything.
SWEPT = """
import json, os, sys, time
options = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
lr = options["lr"]
if "gate" in options:
    print(f"lr {lr} at the gate", flush=True)
    while not os.path.exists(options["gate"]):
        time.sleep(0.1)
for step in range(1, 6):
    print(f"lr {lr} step {step}", flush=True)
with open(os.path.join(os.environ["RUNCTL_OUTPUT_DIR"], "args.json"), "w") as f:
    json.dump(sys.argv[1:], f)
sys.exit(3 if lr == "bad" else 0)
"""
STEPS = 600


@pytest.fixture
def profile(cloud_env: Cloud) -> str:
    s3 = cloud_env.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return cloud_env.create_instance_profile().name


def workflow_args(profile: str, script: str, *extra: str) -> list[str]:
    return ["workflow", "train", script, "--instance-type", "t3.micro",
            "--iam-instance-profile", profile, *extra]  # fmt: skip


def running_jobs(cloud: Cloud, proc: subprocess.Popen[str], count: int) -> list[str] | None:
    """The instances whose job has logged a few steps, once ``count`` have (the workflow
    process must still be running)."""
    if proc.poll() is not None:
        raise AssertionError(f"the workflow ended early ({proc.returncode}): {proc.communicate()}")
    found = [i for i in live_instance_ids(cloud) if "step 5/" in log_text(cloud, i)]
    return found if len(found) == count else None


def test_a_sweep_runs_its_jobs_in_parallel_fetches_outputs_and_terminates(
    cloud_env: Cloud, project: Path, profile: str, shared_cache: Path, tmp_path: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": SWEPT})
    gate = tmp_path / "gate"
    proc = spawn(cloud, project, shared_cache, *workflow_args(
        profile, "train.py", "--count", "2", "--sweep", "lr=0.1,0.01", "-o", "json",
        "--", f"--gate={gate}",
    ))  # fmt: skip

    def at_the_gate() -> list[str] | None:
        if proc.poll() is not None:
            raise AssertionError(f"the workflow ended early: {proc.communicate()}")
        found = [i for i in live_instance_ids(cloud) if "at the gate" in log_text(cloud, i)]
        return found if len(found) == 2 else None

    waiting = wait_until(at_the_gate, timeout=120, what="both jobs at the gate")
    gate.touch()  # both jobs are running at once: let them finish
    code, out, err = finish(proc, timeout=120)
    assert code == 0, err
    doc = json.loads(out)
    jobs = doc["jobs"]
    assert doc["succeeded"] is True and [j["verdict"] for j in jobs] == ["succeeded"] * 2
    assert [j["args"] for j in jobs] == [
        [f"--gate={gate}", "--lr=0.1"],
        [f"--gate={gate}", "--lr=0.01"],
    ]
    assert sorted(j["instance_id"] for j in jobs) == sorted(waiting)
    for job in jobs:
        outputs = project / "runctl-outputs" / job["job_id"]
        assert job["outputs_dir"] == str(outputs) and job["output_files"] == 1
        assert json.loads((outputs / "args.json").read_text()) == job["args"]
        assert job["cost_usd"] is not None and job["duration_seconds"] > 0
    # Interleaved logs, each line with its job's label.
    assert "[#1 lr=0.1] lr 0.1 step 5" in err
    assert "[#2 lr=0.01] lr 0.01 step 5" in err
    assert live_instance_ids(cloud) == []
    # Each instance ended itself with its job (terminate-on-finish), or the workflow ended it.
    assert len(doc["launched"]) == 2 and set(doc["terminated"]) <= set(doc["launched"])
    assert doc["left_running"] == []


def test_one_failing_job_exits_7_and_still_fetches_both_and_terminates(
    cloud_env: Cloud, project: Path, profile: str
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": SWEPT})
    result = run(*workflow_args(profile, "train.py", "--sweep", "lr=0.1,bad"))
    assert result.exit_code == 7, result.stderr
    assert "1 of 2 jobs did not succeed: #2 lr=bad failed" in result.stderr
    assert "#2 lr=bad" in result.stdout and "failed" in result.stdout  # the summary table
    assert "is left running" in result.stderr
    fetched = sorted((project / "runctl-outputs").glob("*/args.json"))
    assert len(fetched) == 2
    assert live_instance_ids(cloud) == []


def test_json_of_a_failed_workflow_is_one_document(
    cloud_env: Cloud, project: Path, profile: str
) -> None:
    make_project(project, {"train.py": SWEPT})
    result = run(*workflow_args(profile, "train.py", "--sweep", "lr=bad", "--no-download",
                                "-o", "json"))  # fmt: skip
    assert result.exit_code == 7
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 7 and doc["succeeded"] is False
    assert (doc["jobs"][0]["verdict"], doc["jobs"][0]["exit_code"]) == ("failed", 3)
    assert doc["jobs"][0]["outputs_dir"] is None
    assert not (project / "runctl-outputs").exists()
    assert live_instance_ids(cloud_env) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_an_interrupted_workflow_checkpoints_and_terminates_everything(
    cloud_env: Cloud, project: Path, profile: str, shared_cache: Path, signum: int
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    proc = spawn(cloud, project, shared_cache, *workflow_args(
        profile, "train.py", "--count", "2", "-o", "json",
        "--", "--steps", str(STEPS), "--step-seconds", "0.1",
    ))  # fmt: skip
    instances = wait_until(lambda: running_jobs(cloud, proc, 2), timeout=120, what="both jobs")
    proc.send_signal(signum)
    code, _, err = finish(proc, timeout=180)
    assert code == 130, err
    assert "each running job commits its checkpoint first" in err
    assert live_instance_ids(cloud) == []
    rows = json.loads(run("jobs", "list", "-o", "json").stdout)["jobs"]
    assert sorted(row["instance_id"] for row in rows) == sorted(instances)
    s3 = cloud.client("s3")
    for row in rows:  # each job stopped with its checkpoint committed before its instance went
        prefix = row["job_uri"].removeprefix(f"s3://{BUCKET}/")
        assert (
            row["state"] == "stopped" and read_json(cloud, prefix + "status.json")["checkpoint_id"]
        )
        log = s3.get_object(Bucket=BUCKET, Key=prefix + "logs/attempt-0.log")["Body"].read()
        assert b"SIGTERM: saved step" in log


def test_auto_resume_works_for_each_job_on_its_own(
    cloud_env: Cloud, project: Path, profile: str, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    steps = 120
    proc = spawn(cloud, project, shared_cache, *workflow_args(
        profile, "train.py", "--spot", "--count", "2", "--auto-resume", "-o", "json",
        "--", "--steps", str(steps), "--step-seconds", "0.1",
    ))  # fmt: skip
    both = wait_until(lambda: running_jobs(cloud, proc, 2), timeout=120, what="both jobs")
    victim = both[0]
    wait_for_step(cloud, victim, 10, steps)
    cloud.interrupt(victim, notice_seconds=5)
    code, out, err = finish(proc, timeout=240)
    assert code == 0, err
    jobs = json.loads(out)["jobs"]
    assert [j["verdict"] for j in jobs] == ["succeeded", "succeeded"]
    attempts = sorted(j["attempts"] for j in jobs)
    assert attempts == [1, 2]
    resumed = next(j for j in jobs if j["attempts"] == 2)
    assert resumed["instance_id"] not in both
    assert json.loads(
        (project / "runctl-outputs" / resumed["job_id"] / "result.json").read_text()
    ) == {"step": steps, "total": steps * (steps + 1) // 2}
    assert live_instance_ids(cloud) == []


def test_bad_input_is_refused_before_any_aws_call(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": SWEPT})
    cloud_env.request_log.clear()
    for args, code in (
        (["--sweep", "lr"], 2),
        (["--sweep", "lr=0.1,", "--iam-instance-profile", "p"], 2),
        (["--count", "3", "--sweep", "lr=1,2", "--iam-instance-profile", "p"], 2),
        (["--tag", "runctl:protected=true", "--iam-instance-profile", "p"], 2),
        ([], 3),  # no instance profile
    ):
        result = run("workflow", "train", "train.py", "--instance-type", "t3.micro", *args)
        assert result.exit_code == code, (args, result.stderr)
    missing = run("workflow", "train", "nope.py", "--instance-type", "t3.micro")
    assert missing.exit_code == 6
    assert cloud_env.request_log == []


def test_no_capacity_for_every_instance_leaves_nothing(
    cloud_env: Cloud, project: Path, profile: str
) -> None:
    make_project(project, {"train.py": SWEPT})
    cloud_env.insufficient_capacity(spot_only=False, after=1)
    result = run(*workflow_args(profile, "train.py", "--sweep", "lr=1,2"))
    assert result.exit_code == 5, result.stderr
    assert "placed 1" in result.stderr
    assert live_instance_ids(cloud_env) == []
