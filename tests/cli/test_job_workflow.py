"""The job workflow's seams, end to end: project keys, refused starts, lost jobs, verdicts,
Ctrl-C while following, the graceful step in bulk actions, a python3 too old."""

from __future__ import annotations

import json
import signal
import stat
from pathlib import Path

import pytest

from tests.cli.aws_helpers import run
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

HELLO = "print('hello from', __import__('os').environ['RUNCTL_JOB_ID'])\n"
SLOW = "import time\nfor i in range(200):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n"
STEPS = 120


def job_keys(cloud: Cloud) -> list[str]:
    listed = cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runctl/")
    return sorted(o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith("job.json"))


def test_a_project_name_that_is_not_a_key_finds_its_code_without_sync(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"hello.py": HELLO})
    instance_id = ready_instance(cloud_env)
    first = run("aws", "train", instance_id, "hello.py", "--project-name", "My Proj", "--wait",
                "-o", "json")  # fmt: skip
    assert first.exit_code == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["job_uri"].startswith(f"s3://{BUCKET}/runctl/my-proj/jobs/my-proj-")
    again = run("aws", "train", instance_id, "hello.py", "--project-name", "My Proj",
                "--no-sync-code", "--wait", "-o", "json")  # fmt: skip
    assert again.exit_code == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["code_sha256"] == doc["code_sha256"] and second["verdict"] == "succeeded"


@pytest.mark.parametrize("name", ["../../x", "evil\nname", "a/b"])
def test_unsafe_project_names_are_refused_before_any_aws_call(
    cloud_env: Cloud, project: Path, name: str
) -> None:
    make_project(project, {"hello.py": HELLO})
    cloud_env.request_log.clear()
    result = run("aws", "train", "i-0123456789abcdef0", "hello.py", "--project-name", name)
    assert result.exit_code == 2, result.stderr
    assert "project name" in result.stderr
    assert cloud_env.request_log == []


def test_a_refused_start_writes_nothing_and_leaves_the_running_job_current(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"slow.py": SLOW, "hello.py": HELLO})
    instance_id = ready_instance(cloud_env)
    first = run("aws", "train", instance_id, "slow.py", "-o", "json")
    assert first.exit_code == 0, first.stderr
    running = json.loads(first.stdout)["job_id"]
    before = job_keys(cloud_env)
    busy = run("aws", "train", instance_id, "hello.py", "-o", "json")
    assert busy.exit_code == 8, busy.stderr
    assert f"job {running} is running there" in busy.stderr
    assert job_keys(cloud_env) == before  # no job.json, no status.json for the refused job
    status = json.loads(run("aws", "status", instance_id, "-o", "json").stdout)
    assert status["current_job"] == running
    watched = run("aws", "monitor", instance_id, "-o", "json")
    assert json.loads(watched.stdout)["job_id"] == running


def test_json_exit_code_is_the_scripts_and_verdict_says_what_happened(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"fail.py": "import sys\nsys.exit(3)\n", "hello.py": HELLO})
    instance_id = ready_instance(cloud_env)
    failed = run("aws", "train", instance_id, "fail.py", "--wait", "-o", "json")
    assert failed.exit_code == 7
    doc = json.loads(failed.stdout)
    assert (doc["exit_code"], doc["verdict"], doc["state"]) == (3, "failed", "failed")
    ok = run("aws", "train", instance_id, "hello.py", "--wait", "-o", "json")
    assert ok.exit_code == 0, ok.stderr
    done = json.loads(ok.stdout)
    assert (done["exit_code"], done["verdict"]) == (0, "succeeded")


def test_follow_exits_7_lost_when_the_instance_is_terminated_under_it(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    make_project(project, {"slow.py": SLOW})
    instance_id = ready_instance(cloud_env)
    assert run("aws", "train", instance_id, "slow.py").exit_code == 0
    follower = spawn(cloud_env, project, shared_cache, "aws", "monitor", instance_id, "--follow",
                     "-o", "json")  # fmt: skip
    wait_until(lambda: "tick 5" in log_text(cloud_env, instance_id), what="the job running")
    cloud_env.client("ec2").terminate_instances(InstanceIds=[instance_id])
    code, out, err = finish(follower, timeout=60)
    assert code == 7, err
    end = json.loads(out.strip().splitlines()[-1])
    assert (end["type"], end["verdict"], end["state"]) == ("end", "lost", "lost")


def test_monitor_after_the_instance_is_gone_says_lost_at_once(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"slow.py": SLOW})
    instance_id = ready_instance(cloud_env)
    assert run("aws", "train", instance_id, "slow.py").exit_code == 0
    wait_until(lambda: "tick 3" in log_text(cloud_env, instance_id), what="the job running")
    cloud_env.client("ec2").terminate_instances(InstanceIds=[instance_id])
    cloud_env.wait_state(instance_id, "terminated")
    glance = run("aws", "monitor", instance_id, "-o", "json")
    assert glance.exit_code == 0, glance.stderr
    doc = json.loads(glance.stdout)
    assert (doc["source"], doc["state"], doc["verdict"]) == ("s3", "lost", "lost")
    followed = run("aws", "monitor", instance_id, "--follow", "-o", "json")
    assert followed.exit_code == 7
    assert json.loads(followed.stdout.strip().splitlines()[-1])["verdict"] == "lost"


def test_ctrl_c_while_waiting_says_the_job_goes_on_and_how_to_reach_it(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    make_project(project, {"slow.py": SLOW})
    instance_id = ready_instance(cloud_env)
    waiting = spawn(cloud_env, project, shared_cache, "aws", "train", instance_id, "slow.py",
                    "--wait")  # fmt: skip
    wait_until(lambda: "tick 3" in log_text(cloud_env, instance_id), what="the job running")
    waiting.send_signal(signal.SIGINT)
    code, _, err = finish(waiting, timeout=60)
    assert code == 130, err
    assert "keeps running" in err
    assert f"runctl aws monitor {instance_id} --follow" in err
    assert f"runctl aws stop {instance_id}" in err
    tick = log_text(cloud_env, instance_id).count("tick")
    wait_until(lambda: log_text(cloud_env, instance_id).count("tick") > tick, what="more ticks")


@pytest.mark.parametrize("command", ["stop-all", "cleanup"])
def test_bulk_actions_let_the_job_commit_its_checkpoint_first(
    cloud_env: Cloud, project: Path, shared_cache: Path, command: str
) -> None:
    make_project(project, {"train.py": TRAINER})
    instance_id = ready_instance(cloud_env)
    store = f"s3://{BUCKET}/experiments/bulk/"
    cloud_env.allow_s3(store)  # outside runctl/: the role needs a grant, as on AWS
    started = run("aws", "train", instance_id, "train.py", "--checkpoint-s3", store, "-o", "json",
                  "--", "--steps", str(STEPS), "--step-seconds", "0.1")  # fmt: skip
    assert started.exit_code == 0, started.stderr
    job_uri = json.loads(started.stdout)["job_uri"]
    wait_for_step(cloud_env, instance_id, 10, STEPS)
    done = run("resources", command, "--yes", "-o", "json")
    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["acted_on"] == [instance_id]
    assert "committed" in result["job_stops"][instance_id]
    prefix = job_uri.removeprefix(f"s3://{BUCKET}/")
    status = read_json(cloud_env, prefix + "status.json")
    assert status["state"] == "stopped" and status["checkpoint_id"]
    log = cloud_env.client("s3").get_object(Bucket=BUCKET, Key=prefix + "logs/attempt-0.log")
    assert b"SIGTERM: saved step" in log["Body"].read()


def test_a_python3_too_old_is_refused_with_exit_8_and_nothing_written(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"hello.py": HELLO})
    instance_id = ready_instance(cloud_env)
    old = cloud_env.sandbox(instance_id) / "usr" / "local" / "bin" / "python3"
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_text("#!/bin/sh\necho 'Python 3.8.10' >&2\nexit 1\n")
    old.chmod(old.stat().st_mode | stat.S_IEXEC)
    result = run("aws", "train", instance_id, "hello.py", "--wait", "-o", "json")
    assert result.exit_code == 8, result.stderr
    assert "python3 >= 3.9" in result.stderr
    assert job_keys(cloud_env) == []
    assert json.loads(result.stdout)["error"] == "WrongStateError"


@pytest.mark.slow
def test_following_a_quiet_job_costs_one_ssm_command_per_long_poll(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"quiet.py": "import time\ntime.sleep(15)\nprint('done')\n"})
    instance_id = ready_instance(cloud_env)
    cloud_env.request_log.clear()
    result = run("aws", "train", instance_id, "quiet.py", "--wait")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().endswith("done")
    sent = cloud_env.calls("SendCommand")
    # probe + start + a handful of reads; a poll every 2 s would have sent a dozen or more.
    assert len(sent) <= 9, len(sent)
