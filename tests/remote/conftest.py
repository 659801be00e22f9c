"""Fixtures for the instance side: a moto server, a bare python3, the runtime bundle, an
"instance" (a sandbox root in which the real start command runs with bash), a fake IMDS.

The instance's processes see exactly what the cloud harness gives them: ``PATH`` whose
``python3`` is a ``venv --without-pip`` (no boto3), ``RUNCTL_REMOTE_ROOT`` = the sandbox,
``AWS_ENDPOINT_URL`` = the moto server, test credentials, and an IMDS endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from runctl.job.s3store import S3Store
from runctl.job.spec import TERMINAL_STATES, JobLocation, JobSpec, code_key, new_job_id
from runctl.job.stores import CheckpointStore, LocalStore
from runctl.services.bundles.code import build_code_bundle, upload_code_bundle
from runctl.services.bundles.runtime import (
    RuntimeBundle,
    RuntimeRef,
    build_runtime_bundle,
    upload_runtime_bundle,
)
from runctl.services.jobs.commands import start_job_command
from tests.remote.fake_imds import FakeImds

REGION = "us-east-1"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
MARKER = "RUNCTL_TEST_SANDBOX"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """AWS variables pointing at moto, applied to this process and returned for children."""
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    return boto3.client("s3", region_name=REGION)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"runctl-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CheckpointStore:
    """A checkpoint store in a local directory, then one in S3 (moto)."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    s3 = request.getfixturevalue("s3")
    bucket = request.getfixturevalue("bucket")
    return S3Store(s3, f"s3://{bucket}/runctl/p/jobs/j/checkpoints/")


@pytest.fixture(scope="session")
def runtime_bundle(tmp_path_factory: pytest.TempPathFactory) -> RuntimeBundle:
    return build_runtime_bundle(tmp_path_factory.mktemp("runtime-cache"))


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a venv without pip: python3 with the standard library only."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin"


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    server = FakeImds()
    yield server
    server.close()


class Instance:
    """A sandboxed "instance": runs runctl's bash commands the way SSM would."""

    def __init__(
        self,
        root: Path,
        env: dict[str, str],
        s3: Any,
        bucket: str,
        runtime: RuntimeRef,
        tmp: Path,
    ) -> None:
        self.root = root
        self.env = env
        self.s3 = s3
        self.bucket = bucket
        self.runtime = runtime
        self.tmp = tmp

    def bash(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def upload_project(self, files: dict[str, str], project: str = "proj") -> tuple[str, str]:
        """Write a project, bundle and upload it; return (code key, sha256)."""
        root = self.tmp / f"project-{uuid.uuid4().hex[:8]}"
        for rel, text in {"pyproject.toml": "", **files}.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        bundle = build_code_bundle(root, self.tmp / "code-cache")
        upload_code_bundle(self.s3, bundle, self.bucket, project)
        return code_key(project, bundle.sha256), bundle.sha256

    def new_job(self, files: dict[str, str], script: str, **fields: Any) -> JobSpec:
        key, sha = self.upload_project(files)
        spec = JobSpec(
            job_id=new_job_id("proj"),
            project="proj",
            script=script,
            bucket=self.bucket,
            region=REGION,
            code_key=key,
            code_sha256=sha,
            **fields,
        )
        self.put_job(spec)
        return spec

    def put_job(self, spec: JobSpec) -> JobLocation:
        location = spec.location
        assert location is not None
        self.s3.put_object(Bucket=self.bucket, Key=location.job_key, Body=spec.to_json().encode())
        return location

    def start(
        self, spec: JobSpec, attempt: int = 0, force: bool = False
    ) -> subprocess.CompletedProcess[str]:
        location = spec.location
        assert location is not None
        command = start_job_command(
            self.runtime.url,
            self.runtime.sha256,
            location.uri,
            attempt,
            force,
            "/nonexistent/runctl-root",
            region=REGION,
        )
        return self.bash(command)

    def status(self, spec: JobSpec) -> dict[str, Any] | None:
        location = spec.location
        assert location is not None
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=location.status_key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        data: dict[str, Any] = json.loads(body)
        return data

    def wait(
        self, spec: JobSpec, states: frozenset[str] = TERMINAL_STATES, timeout: float = 300
    ) -> dict[str, Any]:
        """Poll status.json in S3 until its state is one of ``states`` and the runner is gone."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(spec)
            reached = status is not None and status["state"] in states
            # A final state counts once the runner has also exited (it cleans up after).
            if reached and not (states is TERMINAL_STATES and self.runner_alive(spec)):
                assert status is not None
                return status
            if time.monotonic() > deadline:
                log = self.root / "jobs" / spec.job_id / "runner.log"
                detail = log.read_text() if log.exists() else "(no runner.log)"
                raise AssertionError(f"job never reached {sorted(states)}: {status}\n{detail}")
            time.sleep(0.1)

    def runner_alive(self, spec: JobSpec) -> bool:
        from runctl.job.layout import RemoteRoot

        return RemoteRoot(self.root).running_job() == spec.job_id

    def read(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))


@pytest.fixture
def instance(
    tmp_path: Path,
    aws_env: dict[str, str],
    s3: Any,
    bucket: str,
    runtime_bundle: RuntimeBundle,
    bare_python: Path,
    imds: FakeImds,
) -> Iterator[Instance]:
    root = tmp_path / "instance-root"
    env = {
        "PATH": f"{bare_python}:{SYSTEM_PATH}",
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "RUNCTL_REMOTE_ROOT": str(root),
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint,
        "OPENBLAS_NUM_THREADS": "1",
        MARKER: uuid.uuid4().hex,
        **aws_env,
    }
    runtime = upload_runtime_bundle(s3, bucket, runtime_bundle)
    box = Instance(root, env, s3, bucket, runtime, tmp_path)
    yield box
    _kill_marked(env[MARKER])


def _kill_marked(marker: str) -> None:
    """Kill every process started with ``RUNCTL_TEST_SANDBOX=<marker>`` (runners, scripts)."""
    needle = f"{MARKER}={marker}".encode()
    for _ in range(20):
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                found.append(int(entry.name))
        if not found:
            return
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
