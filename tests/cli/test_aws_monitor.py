"""``runctl aws monitor`` and ``aws processes`` end to end against the harness."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tests.cli.aws_helpers import run
from tests.cli.jobs_helpers import make_project, ready_instance
from tests.cli.spot_helpers import finish, log_text, spawn, wait_until
from tests.cloud.harness import Cloud

SLOW = """
import os, sys, time
for i in range(int(sys.argv[1])):
    print("step", i, flush=True)
    time.sleep(float(sys.argv[2]))
big = int(os.environ.get("BIG", "0"))
if big:
    print("x" * big, flush=True)
print("done", flush=True)
"""


def start(instance_id: str, *args: str, options: tuple[str, ...] = ()) -> str:
    result = run("aws", "train", instance_id, "slow.py", "-o", "json", *options, "--", *args)
    assert result.exit_code == 0, result.stderr
    job_id: str = json.loads(result.stdout)["job_id"]
    return job_id


def test_follow_streams_lines_while_running_and_ends_with_the_job(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"slow.py": SLOW})
    instance_id = ready_instance(cloud_env)
    job_id = start(instance_id, "6", "0.5")
    result = run("aws", "monitor", instance_id, "--follow", "-o", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    # The script's own lines: the runner may add "[runctl <time>] ..." notes of its own (a busy
    # machine makes an IMDS poll time out, and the runner says so in the log).
    lines = [
        e["line"] for e in events if e["type"] == "log" and not e["line"].startswith("[runctl ")
    ]
    assert [line for line in lines if line.startswith("step")] == [f"step {i}" for i in range(6)]
    assert lines[-1] == "done"
    assert events[-1] == {
        "type": "end",
        "instance_id": instance_id,
        "job_id": job_id,
        "attempt": 0,
        "state": "succeeded",
        "verdict": "succeeded",
        "exit_code": 0,
    }


STEPPED = """
import os, time
for i in range(4):
    print("step", i, flush=True)
    while not os.path.exists(os.path.join(os.environ["HOME"], f"go-{i}")):
        time.sleep(0.05)
print("done", flush=True)
"""


def test_follow_shows_lines_as_they_are_printed(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    make_project(project, {"slow.py": STEPPED})
    instance_id = ready_instance(cloud_env)
    start(instance_id)
    wait_until(lambda: "step 0" in log_text(cloud_env, instance_id), what="the script running")
    follower = spawn(cloud_env, project, shared_cache, "aws", "monitor", instance_id, "--follow")
    assert follower.stdout is not None
    guard = threading.Timer(60, follower.kill)  # a follower that does not stream must not hang
    guard.start()
    for i in range(4):
        # The script is blocked right after printing step i: the follower must show it now,
        # not when the job ends.
        line = ""
        while line.strip() != f"step {i}":
            line = follower.stdout.readline()
            assert line, f"the follower ended before showing step {i}"
        (cloud_env.sandbox(instance_id) / f"go-{i}").write_text("")
    code, out, err = finish(follower)
    guard.cancel()
    assert code == 0, err
    assert out.rstrip().endswith("done")


GATED = """
import os, time
print("waiting", flush=True)
while not os.path.exists(os.path.join(os.environ["HOME"], "go")):
    time.sleep(0.05)
print("x" * 70000, flush=True)
print("done", flush=True)
"""


def test_follow_handles_more_than_24000_characters_between_polls(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    make_project(project, {"slow.py": GATED})
    instance_id = ready_instance(cloud_env)
    start(instance_id)
    wait_until(lambda: "waiting" in log_text(cloud_env, instance_id), what="the script waiting")
    follower = spawn(cloud_env, project, shared_cache, "aws", "monitor", instance_id, "--follow")
    assert follower.stdout is not None
    head = ""
    while "waiting" not in head:  # the follower is streaming: its first lines are out
        line = follower.stdout.readline()
        assert line, "the follower ended before showing the log"
        head += line
    (cloud_env.sandbox(instance_id) / "go").write_text("")
    code, out, err = finish(follower)
    assert code == 0, err
    assert out.index("x" * 70000) < out.index("done")
    assert out.count("x" * 70000) == 1


def test_monitor_reads_the_s3_copy_after_the_instance_is_gone(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"slow.py": SLOW})
    instance_id = ready_instance(cloud_env)
    job_id = start(instance_id, "2", "0.1")
    assert run("aws", "monitor", instance_id, "--follow").exit_code == 0
    cloud_env.client("ec2").terminate_instances(InstanceIds=[instance_id])
    cloud_env.wait_state(instance_id, "terminated")
    result = run("aws", "monitor", instance_id, "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["source"] == "s3"
    assert doc["job_id"] == job_id
    assert doc["state"] == "succeeded"
    assert doc["lines"][-1] == "done"


def test_monitor_lines_limits_the_tail(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"slow.py": SLOW})
    instance_id = ready_instance(cloud_env)
    start(instance_id, "5", "0")
    assert run("aws", "monitor", instance_id, "--follow").exit_code == 0
    result = run("aws", "logs", instance_id, "--lines", "2")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["step 4", "done"]


def test_two_instances_train_at_once_without_interfering(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"slow.py": SLOW})
    first = ready_instance(cloud_env)
    second = ready_instance(cloud_env)
    job_a = start(first, "3", "0.3")
    job_b = start(second, "2", "0.3")
    assert job_a != job_b
    out_a = run("aws", "monitor", first, "--follow", "-o", "json")
    out_b = run("aws", "monitor", second, "--follow", "-o", "json")
    end_a = json.loads(out_a.stdout.splitlines()[-1])
    end_b = json.loads(out_b.stdout.splitlines()[-1])
    assert (end_a["job_id"], end_a["state"]) == (job_a, "succeeded")
    assert (end_b["job_id"], end_b["state"]) == (job_b, "succeeded")
    assert "step 2" in out_a.stdout
    assert "step 2" not in out_b.stdout


def test_second_job_on_a_busy_instance_is_refused(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"slow.py": STEPPED})  # busy until the test opens its gates
    instance_id = ready_instance(cloud_env)
    start(instance_id)
    wait_until(lambda: "step 0" in log_text(cloud_env, instance_id), what="the script running")
    busy = run("aws", "train", instance_id, "slow.py", "--", "1", "0")
    assert busy.exit_code == 8, busy.stderr
    assert "busy" in busy.stderr
    for i in range(4):
        (cloud_env.sandbox(instance_id) / f"go-{i}").write_text("")


def test_processes_shows_machine_and_job_tree(cloud_env: Cloud, project: Path) -> None:
    # The script waits at step 0 until the test is done looking (a 10 s script used to end
    # before the third snapshot on a busy machine).
    make_project(project, {"slow.py": STEPPED})
    instance_id = ready_instance(cloud_env)
    job_id = start(instance_id)
    wait_until(lambda: "step 0" in log_text(cloud_env, instance_id), what="the script running")
    result = run("aws", "processes", instance_id, "-o", "json")
    assert result.exit_code == 0, result.stderr
    snap = json.loads(result.stdout)
    assert snap["instance_id"] == instance_id
    assert snap["job_id"] == job_id
    assert snap["memory"]["total_bytes"] > 0
    assert snap["cpu"]["count"] >= 1
    commands = " ".join(p["command"] for p in snap["processes"])
    assert "runctl.remote.runner" in commands
    assert "slow.py" in commands
    watch = run("aws", "processes", instance_id, "--watch", "--interval", "1", "--count", "2",
                "-o", "json")  # fmt: skip
    assert watch.exit_code == 0, watch.stderr
    assert len(watch.stdout.splitlines()) == 2
    text = run("aws", "processes", instance_id)
    assert text.exit_code == 0
    assert "slow.py" in text.stdout
    for i in range(4):
        (cloud_env.sandbox(instance_id) / f"go-{i}").write_text("")


def test_stop_with_no_job_running_acts_at_once(cloud_env: Cloud, project: Path) -> None:
    instance_id = ready_instance(cloud_env)
    result = run("aws", "stop", instance_id, "--wait", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["job_stop"] is None
    assert doc["state"] == "stopped"
