"""The job runner end to end: the real start command, run with bash in a sandbox whose python3
has no boto3, against the harness's moto server and an IMDS, as the harness runs SSM commands."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from runctl.job.checkpoints import list_manifests, read_manifest
from runctl.job.s3store import S3Store
from runctl.job.spec import (
    RUNNING,
    CheckpointSettings,
    JobSpec,
    parse_time,
    seconds_between,
)
from runctl.services.jobs.commands import (
    job_state_command,
    parse_command_json,
    stop_job_command,
)
from tests.cloud.imds import StandaloneImds
from tests.cloud.runner_sandbox import RunnerSandbox
from tests.python_envs import write_probe_wheel

TRAINING = Path(__file__).resolve().parents[2] / "training"

PROBE = """\
import json, os, sys
from pathlib import Path
env = {k: v for k, v in os.environ.items() if k.startswith("RUNCTL_")}
data = Path(os.environ["RUNCTL_DATA_DIR"])
seen = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
out = Path(os.environ["RUNCTL_OUTPUT_DIR"])
has_boto3 = __import__("importlib.util").util.find_spec("boto3") is not None
(out / "env.json").write_text(json.dumps({"env": env, "argv": sys.argv[1:], "data": seen,
                                          "boto3": has_boto3}))
ckpt = Path(os.environ["RUNCTL_CHECKPOINT_DIR"])
(ckpt / "model.bin").write_bytes(b"weights" * 100)
print("hello from the script", flush=True)
print("to stderr", file=sys.stderr, flush=True)
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""


def _fast(**overrides: float) -> CheckpointSettings:
    settings = CheckpointSettings(sync_interval_seconds=1, grace_seconds=20, keep_last_n=3)
    for name, value in overrides.items():
        setattr(settings, name, value)
    return settings


def test_job_runs_end_to_end(instance: RunnerSandbox, imds: StandaloneImds) -> None:
    instance.s3.put_object(Bucket=instance.bucket, Key="data/train/a.csv", Body=b"1,2\n")
    instance.s3.put_object(Bucket=instance.bucket, Key="data/train/sub/b.csv", Body=b"3,4\n")
    spec = instance.new_job(
        {"probe.py": PROBE},
        "probe.py",
        args=["--lr", "0.1", "two words"],
        env={"MY_VAR": "x y"},
        data_s3=f"s3://{instance.bucket}/data/train/",
        checkpoint=_fast(),
    )

    started = instance.start(spec)

    assert started.returncode == 0, started.stderr
    answer = parse_command_json(started.stdout)
    assert answer["started"] is True
    assert answer["job_id"] == spec.job_id
    status = instance.wait(spec)
    assert status["state"] == "succeeded", status
    assert status["exit_code"] == 0
    assert status["attempt"] == 0
    assert status["instance_ids"] == [imds.instance_id]
    assert status["checkpoint_id"] and status["checkpoint_committed"]
    location = spec.location
    assert location is not None
    log = instance.read(location.log_key(0)).decode()
    assert "hello from the script" in log
    assert "to stderr" in log
    probe = json.loads(instance.read(location.prefix + "outputs/env.json"))
    assert probe["argv"] == ["--lr", "0.1", "two words"]
    assert probe["data"] == ["a.csv", "sub/b.csv"]
    assert probe["boto3"] is False, "the runtime bundle leaked into the script's PYTHONPATH"
    env = probe["env"]
    job_dir = instance.root / "jobs" / spec.job_id
    assert env["RUNCTL_JOB_ID"] == spec.job_id
    assert env["RUNCTL_ATTEMPT"] == "0"
    assert env["RUNCTL_INSTANCE_ID"] == imds.instance_id
    assert env["RUNCTL_RESUMED"] == "0"
    assert env["RUNCTL_DATA_DIR"] == str(job_dir / "data")
    # checkpoint.dir is relative to the project root, the code directory on an instance.
    assert env["RUNCTL_CHECKPOINT_DIR"] == str(job_dir / "code" / "checkpoints")
    assert env["RUNCTL_OUTPUT_DIR"] == str(job_dir / "outputs")
    assert env["RUNCTL_GRACE_SECONDS"] == "20"
    manifest = read_manifest(
        S3Store(instance.s3, location.checkpoints_uri), status["checkpoint_id"]
    )
    assert [f.path for f in manifest.files] == ["model.bin"]
    local = json.loads((job_dir / "status.json").read_text())
    assert local == status
    assert not (instance.root / "current-job").exists()


def test_failing_script_reports_its_exit_code(instance: RunnerSandbox) -> None:
    spec = instance.new_job({"probe.py": PROBE}, "probe.py", env={"EXIT_WITH": "3"})

    assert instance.start(spec).returncode == 0
    status = instance.wait(spec)

    assert status["state"] == "failed"
    assert status["exit_code"] == 3
    location = spec.location
    assert location is not None
    assert "to stderr" in instance.read(location.log_key(0)).decode()


def test_missing_code_fails_the_job_with_a_message(instance: RunnerSandbox) -> None:
    spec = instance.new_job({"probe.py": PROBE}, "probe.py")
    spec.code_key = "runctl/proj/code/0000.tar.gz"
    instance.put_job(spec)

    instance.start(spec)
    status = instance.wait(spec)

    assert status["state"] == "failed"
    assert status["exit_code"] is None
    assert "0000.tar.gz" in status["message"]


def _long_job(instance: RunnerSandbox, steps: int = 400) -> JobSpec:
    script = (TRAINING / "train_with_checkpoints.py").read_text()
    return instance.new_job(
        {"train.py": script},
        "train.py",
        args=["--steps", str(steps), "--step-seconds", "0.05"],
        checkpoint=_fast(),
        spot_poll_seconds=0.2,
    )


def _wait_for_log(instance: RunnerSandbox, spec: JobSpec, text: str, timeout: float = 60) -> None:
    path = instance.root / "jobs" / spec.job_id / "logs" / "attempt-0.log"
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


def test_second_job_on_a_busy_instance_is_refused(instance: RunnerSandbox) -> None:
    first = _long_job(instance)
    assert instance.start(first).returncode == 0
    instance.wait(first, frozenset({RUNNING}))
    second = instance.new_job({"probe.py": PROBE}, "probe.py")

    refused = instance.start(second)

    assert refused.returncode == 8
    error = parse_command_json(refused.stdout)
    assert error["error"] == "WrongStateError"
    assert first.job_id in error["message"]
    stop = instance.bash(stop_job_command(remote_root_default="/nonexistent"))
    assert parse_command_json(stop.stdout)["state"] == "stopped"


def test_spot_notice_interrupts_commits_and_the_next_attempt_resumes(
    instance: RunnerSandbox, imds: StandaloneImds
) -> None:
    spec = _long_job(instance, steps=60)
    instance.start(spec)
    _wait_for_log(instance, spec, "step 5/")

    imds.interrupt(seconds=120)
    status = instance.wait(spec)

    assert status["state"] == "interrupted"
    assert status["reason"] == "spot"
    notice, sigterm, committed = status["notice"], status["sigterm"], status["checkpoint_committed"]
    assert parse_time(notice) <= parse_time(sigterm) <= parse_time(committed)
    print(f"spot notice -> checkpoint committed: {seconds_between(notice, committed):.2f}s")
    location = spec.location
    assert location is not None
    store = S3Store(instance.s3, location.checkpoints_uri)
    newest = list_manifests(store)[0]
    assert newest.id == status["checkpoint_id"]
    saved = json.loads(store.read("blobs/" + read_manifest(store, newest.id).files[0].sha256))
    assert 5 <= saved["step"] < 60

    imds.spot_action = None
    imds.instance_id = "i-0fedcba9876543210"
    instance.root = instance.root.with_name("second-instance")  # a new machine, empty disk
    instance.env["RUNCTL_REMOTE_ROOT"] = str(instance.root)
    assert instance.start(spec, attempt=1).returncode == 0
    final = instance.wait(spec)

    assert final["state"] == "succeeded"
    assert final["attempt"] == 1
    assert final["instance_ids"] == ["i-0123456789abcdef0", "i-0fedcba9876543210"]
    log = instance.read(location.log_key(1)).decode()
    assert f"resumed=1 from step {saved['step']}" in log
    result = json.loads(instance.read(location.prefix + "outputs/result.json"))
    assert result == {"step": 60, "total": sum(range(61))}


def test_control_stop_commits_and_reports_the_checkpoint(instance: RunnerSandbox) -> None:
    spec = _long_job(instance)
    instance.start(spec)
    _wait_for_log(instance, spec, "step 3/")

    stopped = instance.bash(stop_job_command(spec.job_id, remote_root_default="/nonexistent"))

    assert stopped.returncode == 0, stopped.stderr
    answer = parse_command_json(stopped.stdout)
    assert answer["running"] is True
    assert answer["stopped"] is True
    assert answer["state"] == "stopped"
    assert answer["checkpoint_id"]
    assert answer["checkpoint_committed"]
    status = instance.wait(spec)
    assert status["state"] == "stopped"
    assert status["checkpoint_id"] == answer["checkpoint_id"]

    state = parse_command_json(instance.bash(job_state_command(lines=5)).stdout)
    assert state["job_id"] == spec.job_id
    assert state["running"] is False
    assert state["status"]["state"] == "stopped"
    assert 0 < len(state["log_tail"]) <= 5

    again = parse_command_json(instance.bash(stop_job_command()).stdout)
    assert again["running"] is False


def test_control_stop_with_reason_cancel_records_cancelled(instance: RunnerSandbox) -> None:
    spec = _long_job(instance)
    instance.start(spec)
    _wait_for_log(instance, spec, "step 3/")

    cancelled = instance.bash(
        stop_job_command(spec.job_id, reason="cancel", remote_root_default="/nonexistent")
    )

    assert cancelled.returncode == 0, cancelled.stderr
    answer = parse_command_json(cancelled.stdout)
    assert answer["stopped"] is True and answer["state"] == "cancelled"
    assert answer["checkpoint_id"]
    status = instance.wait(spec)
    assert status["state"] == "cancelled" and status["checkpoint_id"] == answer["checkpoint_id"]


def test_commands_answer_on_a_machine_that_never_ran_a_job(instance: RunnerSandbox) -> None:
    stop = instance.bash(stop_job_command())
    state = instance.bash(job_state_command())

    assert parse_command_json(stop.stdout)["running"] is False
    assert parse_command_json(state.stdout)["job_id"] is None


def test_stop_on_finish_stops_the_instance_itself(
    instance: RunnerSandbox, imds: StandaloneImds
) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    launched = ec2.run_instances(ImageId=image, InstanceType="t3.micro", MinCount=1, MaxCount=1)
    instance_id = launched["Instances"][0]["InstanceId"]
    imds.instance_id = instance_id
    spec = instance.new_job({"probe.py": PROBE}, "probe.py", stop_on_finish=True)

    instance.start(spec)
    assert instance.wait(spec)["state"] == "succeeded"

    def state() -> str:
        found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
        return str(found["Instances"][0]["State"]["Name"])

    deadline = time.monotonic() + 120  # a cap for a broken runner, not a speed requirement
    while state() not in ("stopping", "stopped"):
        assert time.monotonic() < deadline, f"{instance_id} was never stopped"
        time.sleep(0.1)


@pytest.mark.slow
def test_requirements_go_into_a_venv_with_pip_options_from_the_environment(
    instance: RunnerSandbox,
) -> None:
    wheels = instance.tmp / "wheels"
    write_probe_wheel(wheels)
    instance.env.update(PIP_FIND_LINKS=str(wheels), PIP_NO_INDEX="1")
    script = (
        "import os, runctl_probe_pkg\n"
        "open(os.environ['RUNCTL_OUTPUT_DIR'] + '/v.txt', 'w').write(str(runctl_probe_pkg.VALUE))\n"
    )
    spec = instance.new_job(
        {"app/run.py": script, "requirements.txt": "runctl-probe-pkg==1.0\n"}, "app/run.py"
    )

    instance.start(spec)
    status = instance.wait(spec, timeout=180)

    location = spec.location
    assert location is not None
    log = instance.read(location.log_key(0)).decode()
    assert status["state"] == "succeeded", log
    assert instance.read(location.prefix + "outputs/v.txt") == b"42"
    assert "pip install" in log
    assert list((instance.root / "venvs").iterdir())


def test_job_runs_on_python39(
    instance: RunnerSandbox, tmp_path: Path, imds: StandaloneImds
) -> None:
    from tests.remote.test_runtime_bundle import _python39

    python39 = _python39()
    if python39 is None:
        pytest.skip("no python3.9 on this machine")
    venv = tmp_path / "py39"
    subprocess.run([python39, "-m", "venv", "--without-pip", str(venv)], check=True)
    instance.env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    spec = instance.new_job({"probe.py": PROBE}, "probe.py", args=["a b"], checkpoint=_fast())

    assert instance.start(spec).returncode == 0
    status = instance.wait(spec)

    assert status["state"] == "succeeded", status
    location = spec.location
    assert location is not None
    assert json.loads(instance.read(location.prefix + "outputs/env.json"))["argv"] == ["a b"]
    assert status["checkpoint_id"]


def test_a_job_without_job_json_is_marked_failed(instance: RunnerSandbox) -> None:
    spec = JobSpec(job_id="proj-20240101-000000-abcd", project="proj", script="x.py")
    spec.bucket = instance.bucket

    assert instance.start(spec).returncode == 0
    status = instance.wait(spec)

    assert status["state"] == "failed"
    assert "could not start the job" in status["message"]
    assert "job.json" in status["message"]
