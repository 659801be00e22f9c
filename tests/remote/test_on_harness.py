"""A job through the cloud harness's SSM on a spot instance: started detached by the real start
command, interrupted by a spot notice, resumed on a second instance (instance-role credentials
from IMDS, the harness's bare python3 and PATH)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runctl.job.spec import CheckpointSettings, JobSpec, code_key, new_job_id
from runctl.services.bundles.code import build_code_bundle, upload_code_bundle
from runctl.services.bundles.runtime import RuntimeBundle, RuntimeRef, upload_runtime_bundle
from runctl.services.jobs.commands import parse_command_json, start_job_command

TRAINING = Path(__file__).resolve().parents[2] / "training"


def _status(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None
    return data


def _job(
    cloud: Any,
    runtime_bundle: RuntimeBundle,
    tmp_path: Path,
    files: dict[str, str],
    **spec_fields: Any,
) -> tuple[Any, RuntimeRef, JobSpec]:
    """Bucket ``jobs`` with the runtime bundle, a project of ``files`` shipped as code, and a
    job.json made of ``spec_fields``; returns (s3 client, runtime ref, spec)."""
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="jobs")
    runtime = upload_runtime_bundle(s3, "jobs", runtime_bundle)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    for rel, text in files.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    bundle = build_code_bundle(project, tmp_path / "cache")
    upload_code_bundle(s3, bundle, "jobs", "demo")
    spec = JobSpec(
        job_id=new_job_id("demo"),
        project="demo",
        bucket="jobs",
        code_key=code_key("demo", bundle.sha256),
        code_sha256=bundle.sha256,
        **spec_fields,
    )
    assert spec.location is not None
    s3.put_object(Bucket="jobs", Key=spec.location.job_key, Body=spec.to_json().encode())
    return s3, runtime, spec


def test_spot_job_is_interrupted_and_resumed_on_a_new_instance(
    cloud: Any, runtime_bundle: RuntimeBundle, tmp_path: Path
) -> None:
    script = (TRAINING / "train_with_checkpoints.py").read_text()
    s3, runtime, spec = _job(
        cloud,
        runtime_bundle,
        tmp_path,
        {"training/train_with_checkpoints.py": script},
        script="training/train_with_checkpoints.py",
        args=["--steps", "80", "--step-seconds", "0.05"],
        checkpoint=CheckpointSettings(sync_interval_seconds=1, grace_seconds=20),
        spot_poll_seconds=0.5,
    )
    location = spec.location
    assert location is not None

    def start(instance_id: str, attempt: int) -> None:
        command = start_job_command(runtime.url, runtime.sha256, location.uri, attempt)
        invocation = cloud.run_command(instance_id, command, timeout=120)
        assert invocation["Status"] == "Success", invocation
        assert parse_command_json(invocation["StandardOutputContent"])["started"] is True

    def wait(predicate: Any, timeout: float = 90) -> dict[str, Any]:
        found: dict[str, Any] = cloud.wait_for(
            lambda: (s := _status(s3, "jobs", location.status_key)) and predicate(s) and s, timeout
        )
        return found

    first = cloud.run_instance(spot=True)
    start(first, 0)
    wait(lambda s: s["state"] == "running" and s.get("checkpoint_id"))
    cloud.interrupt(first, notice_seconds=120)
    interrupted = wait(lambda s: s["state"] == "interrupted")

    assert interrupted["instance_ids"] == [first]
    assert interrupted["notice"] and interrupted["sigterm"] and interrupted["checkpoint_committed"]

    second = cloud.run_instance(spot=True)
    start(second, 1)
    final = wait(lambda s: s["state"] in ("succeeded", "failed") and s["attempt"] == 1)

    assert final["state"] == "succeeded"
    assert final["instance_ids"] == [first, second]
    log = s3.get_object(Bucket="jobs", Key=location.log_key(1))["Body"].read().decode()
    assert "resumed=1" in log
    result = s3.get_object(Bucket="jobs", Key=location.prefix + "outputs/result.json")
    assert json.loads(result["Body"].read()) == {"step": 80, "total": sum(range(81))}


def test_stop_on_finish_on_one_time_spot_terminates_instead_and_says_why(
    cloud: Any, runtime_bundle: RuntimeBundle, tmp_path: Path
) -> None:
    s3, runtime, spec = _job(
        cloud,
        runtime_bundle,
        tmp_path,
        {"train.py": "print('trained')\n"},
        script="train.py",
        stop_on_finish=True,
    )
    location = spec.location
    assert location is not None
    spot = cloud.run_instance(spot=True, tags={"runctl:managed": "true"})

    command = start_job_command(runtime.url, runtime.sha256, location.uri, 0)
    assert cloud.run_command(spot, command, timeout=120)["Status"] == "Success"
    cloud.wait_for(lambda: cloud.state(spot) in ("shutting-down", "terminated"), timeout=90)

    status = _status(s3, "jobs", location.status_key)
    assert status is not None and status["state"] == "succeeded"
    assert "one-time spot instance" in status["message"]
    assert "terminating it instead" in status["message"]
    log = s3.get_object(Bucket="jobs", Key=location.log_key(0))["Body"].read().decode()
    assert "UnsupportedOperation" in log or "AWS cannot stop" in log
    assert "asking EC2 to stop" in log
    assert [c for c in cloud.calls("StopInstances", "ec2")]
    assert [c for c in cloud.calls("TerminateInstances", "ec2")]
