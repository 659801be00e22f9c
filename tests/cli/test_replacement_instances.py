"""A replacement instance picks up a third-party script where it stopped: its own checkpoint
directory (``checkpoint.dir = "out"``), the requirements venv unpacked from S3 instead of pip,
``--outputs out`` in S3, the recovery figure ending when the script runs again; and
``--resume-from`` starting a new job from another job's checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from runctl.job.spec import parse_time, seconds_between
from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cli.spot_helpers import (
    TRAINER,
    finish,
    log_text,
    read_json,
    spawn,
    wait_for_step,
    wait_until,
)
from tests.cloud.harness import Cloud
from tests.python_envs import REQUIREMENTS, write_probe_wheel

# Knows nothing of runctl: checkpoints to out/ckpt.json under its working directory.
THIRD_PARTY = """
import json, os, signal, sys, time
import runctl_probe_pkg  # from requirements.txt
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
os.makedirs("out", exist_ok=True)
path = os.path.join("out", "ckpt.json")
state = json.load(open(path)) if os.path.exists(path) else {"step": 0, "total": 0}
print("resumed from step", state["step"], flush=True)
steps = int(sys.argv[1])
while state["step"] < steps:
    time.sleep(0.1)
    state["step"] += 1
    state["total"] += state["step"]
    with open(path + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(path + ".tmp", path)
    print(f"step {state['step']}/{steps}", flush=True)
    if stop:
        sys.exit(143)
with open(os.path.join("out", "final.json"), "w") as f:
    json.dump(state, f)
"""
STEPS = 120


def _venv_published(cloud: Cloud) -> bool:
    listed = cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runctl/demo/venvs/")
    return any(o["Key"].endswith(".json") for o in listed.get("Contents", []))


def test_a_replacement_resumes_out_ckpt_with_the_venv_from_s3_and_ships_out(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": THIRD_PARTY, "requirements.txt": REQUIREMENTS})
    write_probe_wheel(project / "wheels")
    with (project / ".runctl.toml").open("a") as config:
        config.write('dir = "out"\n')  # [checkpoint] is the file's last section
    first = ready_instance(cloud, spot=True)
    proc = spawn(
        cloud, project, shared_cache,
        "aws", "train", first, "train.py", "--auto-resume", "--outputs", "out", "-o", "json",
        "--", str(STEPS),
    )  # fmt: skip
    wait_for_step(cloud, first, 10, STEPS)
    wait_until(lambda: _venv_published(cloud), what="the venv packed and uploaded")
    cloud.interrupt(first, notice_seconds=8)

    code, out, err = finish(proc, timeout=240)

    assert code == 0, err
    doc = json.loads(out)
    replacement = doc["instance_id"]
    assert replacement != first
    interrupted, resumed = doc["timeline"]
    assert (interrupted["state"], resumed["state"]) == ("interrupted", "succeeded")
    # checkpoint.dir = "out" is the script's own out/, committed and restored there.
    log = log_text(cloud, replacement)
    resumed_from = int(log.split("resumed from step ")[1].split()[0])
    assert resumed_from >= 10
    # The replacement unpacked the venv: pip never ran there, and the installed files predate
    # the attempt (they come from the first instance's archive).
    prefix = doc["job_uri"].removeprefix(f"s3://{BUCKET}/")
    s3 = cloud.client("s3")
    first_log = s3.get_object(Bucket=BUCKET, Key=f"{prefix}logs/attempt-0.log")["Body"].read()
    assert b"-m pip install" in first_log  # the first instance built it (its disk is gone)
    assert "unpacked from" in log
    assert "-m pip" not in log
    (installed,) = cloud.sandbox(replacement).glob(
        "venvs/*/lib/python3*/site-packages/runctl_probe_pkg/__init__.py"
    )
    assert installed.stat().st_mtime < parse_time(resumed["started"]).timestamp()
    # Interruption -> script running again includes the replacement's staging.
    assert resumed["script_started"] > resumed["started"]
    assert interrupted["recovery_seconds"] == seconds_between(
        interrupted["notice"], resumed["script_started"]
    )
    assert interrupted["recovery_seconds"] > resumed["staging_seconds"] > 0
    assert "interruption -> script running again" in err
    # --outputs out lands in the job's outputs, under the same name.
    final = read_json(cloud, f"{prefix}outputs/out/final.json")
    assert final == {"step": STEPS, "total": STEPS * (STEPS + 1) // 2}


def test_resume_from_starts_a_new_job_from_another_jobs_checkpoint(
    cloud_env: Cloud, project: Path
) -> None:
    from tests.cli.aws_helpers import run

    make_project(project, {"train.py": TRAINER})
    instance_id = ready_instance(cloud_env)
    first = run("aws", "train", instance_id, "train.py", "--wait", "-o", "json", "--",
                "--steps", "10", "--step-seconds", "0.05")  # fmt: skip
    assert first.exit_code == 0, first.stderr
    source = json.loads(first.stdout)

    missing = run("aws", "train", instance_id, "train.py", "--resume-from",
                  "demo-20200101-000000-abcd")  # fmt: skip
    assert missing.exit_code == 6, missing.stderr
    assert "no job demo-20200101-000000-abcd" in missing.stderr

    for value in ("latest", source["job_id"]):  # latest: the only job with a checkpoint yet
        again = run("aws", "train", instance_id, "train.py", "--resume-from", value, "--wait",
                    "-o", "json", "--", "--steps", "20", "--step-seconds", "0.05")  # fmt: skip
        assert again.exit_code == 0, again.stderr
        doc = json.loads(again.stdout)
        assert doc["job_id"] != source["job_id"]
        assert f"starting from job {source['job_id']}'s checkpoint" in again.stderr
        assert "resumed=1 from step 10" in again.stderr  # the step count goes on
        prefix = doc["job_uri"].removeprefix(f"s3://{BUCKET}/")
        assert read_json(cloud_env, f"{prefix}outputs/result.json") == {"step": 20, "total": 210}
        spec = read_json(cloud_env, f"{prefix}job.json")
        assert spec["resume_from"]["job_id"] == source["job_id"]
