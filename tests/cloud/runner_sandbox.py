"""A sandbox in which runctl's start command runs straight in bash: the runner's own tests.

Where the harness's instances receive commands through SSM, the runner's tests (``tests/remote``)
want the instance program without EC2 around it: :class:`RunnerSandbox` runs the same bash the
start command sends, with what a harness instance's processes see — ``PATH`` whose ``python3`` is
a ``venv --without-pip`` (no boto3), ``RUNCTL_REMOTE_ROOT`` = the sandbox, the harness's moto
endpoint and credentials, and an IMDS (:class:`tests.cloud.imds.StandaloneImds`). Its processes
carry the harness's session marker, so :func:`tests.cloud.sandbox.kill_marked` ends them.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from runctl.job.layout import RemoteRoot
from runctl.job.spec import TERMINAL_STATES, JobLocation, JobSpec, code_key, new_job_id
from runctl.services.bundles.code import build_code_bundle, upload_code_bundle
from runctl.services.bundles.runtime import RuntimeRef
from runctl.services.jobs.commands import start_job_command
from tests.cloud.sandbox import SESSION_VAR, kill_marked

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def sandbox_env(
    root: Path, home: Path, python_bin: Path, aws_env: dict[str, str], imds_endpoint: str
) -> dict[str, str]:
    """The environment of a sandbox's processes (with a fresh session marker)."""
    aws = {k: v for k, v in aws_env.items() if k != "AWS_EC2_METADATA_DISABLED"}
    return {
        "PATH": f"{python_bin}:{SYSTEM_PATH}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "RUNCTL_REMOTE_ROOT": str(root),
        "RUNCTL_SYSTEM_ROOT": str(root),  # never this machine's /opt (a DLAMI's /opt/pytorch)
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_endpoint,
        # The IMDS is a thread of the test process, slow on a loaded machine (see instances.py).
        "AWS_METADATA_SERVICE_TIMEOUT": "60",
        "OPENBLAS_NUM_THREADS": "1",
        SESSION_VAR: uuid.uuid4().hex,
        **aws,
    }


class RunnerSandbox:
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
            region=self.env["AWS_REGION"],
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
            region=self.env["AWS_REGION"],
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
        return RemoteRoot(self.root).running_job() == spec.job_id

    def read(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def kill_all(self) -> None:
        """End every process this sandbox started (runners, scripts)."""
        kill_marked(self.env[SESSION_VAR])
