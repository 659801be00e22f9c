"""Fixtures for the instance side, on the cloud harness (:mod:`tests.cloud`): its moto server
and credentials (``aws_env``), an IMDS with no EC2 instance behind it (``imds``), a bare
python3, the runtime bundle, and an "instance" — a :class:`tests.cloud.runner_sandbox.
RunnerSandbox` in which the real start command runs with bash.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from runctl.job.s3store import S3Store
from runctl.job.stores import CheckpointStore, LocalStore
from runctl.services.bundles.runtime import (
    RuntimeBundle,
    build_runtime_bundle,
    upload_runtime_bundle,
)
from tests.cloud.harness import Cloud
from tests.cloud.imds import StandaloneImds
from tests.cloud.runner_sandbox import RunnerSandbox, sandbox_env


@pytest.fixture
def aws_env(cloud_env: Cloud) -> dict[str, str]:
    """The harness's AWS variables (already in this process's environment) for children."""
    return {k: v for k, v in cloud_env.env.items() if k.startswith("AWS_")}


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    return boto3.client("s3", region_name=aws_env["AWS_REGION"])


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"runctl-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CheckpointStore:
    """A checkpoint store in a local directory, then one in S3 (the harness's moto)."""
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
def imds() -> Iterator[StandaloneImds]:
    server = StandaloneImds()
    yield server
    server.close()


@pytest.fixture
def instance(
    tmp_path: Path,
    aws_env: dict[str, str],
    s3: Any,
    bucket: str,
    runtime_bundle: RuntimeBundle,
    bare_python: Path,
    imds: StandaloneImds,
) -> Iterator[RunnerSandbox]:
    root = tmp_path / "instance-root"
    env = sandbox_env(root, tmp_path / "home", bare_python, aws_env, imds.endpoint)
    runtime = upload_runtime_bundle(s3, bucket, runtime_bundle)
    box = RunnerSandbox(root, env, s3, bucket, runtime, tmp_path)
    yield box
    box.kill_all()
