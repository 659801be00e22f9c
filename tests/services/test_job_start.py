"""The shared start tail when the runner still refuses (a start that raced another one): the
job is recorded ``refused``, a resumed job gets its previous status back, the instance is not
tagged. SSM's answer is scripted; job.json and status.json go to the harness's S3."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runctl.errors import RunctlError, WrongStateError
from runctl.job.record import JobRecord
from runctl.job.spec import JobSpec, JobStatus
from runctl.services.bundles.runtime import RuntimeRef
from runctl.services.jobs.commands import probe_command
from runctl.services.jobs.start import check_probe, start_attempt
from tests.cloud.harness import Cloud

BUCKET = "start-tail"
INSTANCE = "i-0123456789abcdef0"


@dataclass
class ScriptedSsm:
    """SendCommand/GetCommandInvocation answering with one fixed invocation."""

    code: int
    stdout: str
    sent: list[str] = field(default_factory=list)

    def send_command(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs["Parameters"]["commands"][0])
        return {"Command": {"CommandId": "c-1"}}

    def get_command_invocation(self, **kwargs: Any) -> dict[str, Any]:
        status = "Success" if self.code == 0 else "Failed"
        return {"Status": status, "ResponseCode": self.code, "StandardOutputContent": self.stdout}


@dataclass
class TagLog:
    tagged: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)

    def create_tags(self, ids: list[str], tags: dict[str, str]) -> None:
        self.tagged.append((ids, tags))


def session(cloud: Cloud, ssm: ScriptedSsm) -> Any:
    return SimpleNamespace(
        s3=cloud.client("s3"), ssm_client=ssm, ec2=TagLog(), remote_root="/opt/runctl",
        region="us-east-1",
    )  # fmt: skip


RUNTIME = RuntimeRef("runctl/runtime/x.tar.gz", "x" * 64, 1, "https://example.invalid/x", False)
REFUSAL = json.dumps({"error": "WrongStateError", "message": "job j0 is already running",
                      "exit_code": 8})  # fmt: skip


@pytest.fixture
def record(cloud: Cloud) -> JobRecord:
    cloud.client("s3").create_bucket(Bucket=BUCKET)
    spec = JobSpec(job_id="p-20240501-120000-abcd", project="p", script="t.py", bucket=BUCKET)
    assert spec.location is not None
    found = JobRecord(spec.location, s3=cloud.client("s3"))
    found.write_spec(spec)
    return found


def test_a_new_job_the_runner_refuses_is_recorded_refused_and_tags_nothing(
    cloud: Cloud, record: JobRecord
) -> None:
    fake = session(cloud, ScriptedSsm(8, REFUSAL))
    spec = record.read_spec()
    pending = JobStatus(spec.job_id, "pending", 0, [INSTANCE])
    with pytest.raises(WrongStateError, match="already running"):
        start_attempt(fake, record, spec, pending, INSTANCE, force=False, runtime=RUNTIME)
    status = record.read_status()
    assert status is not None and status.state == "refused" and status.is_terminal
    assert "already running" in (status.message or "")
    assert fake.ec2.tagged == []


def test_a_refused_resume_puts_the_previous_status_back(cloud: Cloud, record: JobRecord) -> None:
    fake = session(cloud, ScriptedSsm(8, REFUSAL))
    spec = record.read_spec()
    previous = JobStatus(spec.job_id, "interrupted", 1, [INSTANCE], checkpoint_id="00000003")
    record.write_status(previous)
    pending = JobStatus(spec.job_id, "pending", 2, [INSTANCE, INSTANCE])
    with pytest.raises(WrongStateError):
        start_attempt(fake, record, spec, pending, INSTANCE, force=True, runtime=RUNTIME,
                      previous=previous)  # fmt: skip
    assert record.read_status() == previous


def test_a_start_that_fails_otherwise_is_recorded_failed(cloud: Cloud, record: JobRecord) -> None:
    fake = session(cloud, ScriptedSsm(1, "curl: could not fetch the runtime"))
    spec = record.read_spec()
    pending = JobStatus(spec.job_id, "pending", 0, [INSTANCE])
    with pytest.raises(RunctlError) as caught:
        start_attempt(fake, record, spec, pending, INSTANCE, force=False, runtime=RUNTIME)
    assert not isinstance(caught.value, WrongStateError)
    status = record.read_status()
    assert status is not None and status.state == "failed"
    assert status.reason == "the runner did not start"


def test_a_started_job_tags_the_instance_last(cloud: Cloud, record: JobRecord) -> None:
    answer = json.dumps({"started": True, "job_id": "x", "pid": 1})
    fake = session(cloud, ScriptedSsm(0, answer))
    spec = record.read_spec()
    pending = JobStatus(spec.job_id, "pending", 0, [INSTANCE])
    started = start_attempt(fake, record, spec, pending, INSTANCE, force=False, runtime=RUNTIME)
    assert started.job_id == spec.job_id and started.attempt == 0
    assert fake.ec2.tagged == [([INSTANCE], {"runctl:job": spec.job_id,
                                             "runctl:job-uri": started.location.uri})]  # fmt: skip
    status = record.read_status()
    assert status is not None and status.state == "pending"


def _probed(answer: dict[str, object]) -> Future[dict[str, object]]:
    future: Future[dict[str, object]] = Future()
    future.set_result(answer)
    return future


def test_a_container_job_needs_docker_on_the_instance() -> None:
    without = _probed({"busy_job": None, "python": "3.11.9", "python_ok": True, "docker": None})
    with pytest.raises(WrongStateError, match="no docker CLI") as info:
        check_probe(without, INSTANCE, force=False, docker=True)
    assert "Deep Learning AMIs" in (info.value.hint or "")
    check_probe(without, INSTANCE, force=False)  # a job without --docker does not need it
    found = {"busy_job": None, "python": "3.11.9", "python_ok": True, "docker": "/usr/bin/docker"}
    check_probe(_probed(found), INSTANCE, force=False, docker=True)


def test_the_probe_reports_the_docker_cli(tmp_path: Path) -> None:
    """The probe script itself, run by bash here: docker's path when it is on PATH, else null."""
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "python3").symlink_to(sys.executable)
    with_docker = tmp_path / "with-docker"
    with_docker.mkdir()
    (with_docker / "docker").write_text("#!/bin/sh\n")
    (with_docker / "docker").chmod(0o755)
    script = probe_command()
    for path, expected in (
        (f"{with_docker}:{bare}", str(with_docker / "docker")),
        (str(bare), None),
    ):
        env = {"PATH": path, "RUNCTL_REMOTE_ROOT": str(tmp_path)}
        found = subprocess.run(["/bin/bash", "-c", script], env=env, capture_output=True, text=True)
        assert json.loads(found.stdout)["docker"] == expected, found.stderr
