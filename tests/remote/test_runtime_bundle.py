"""The runtime bundle as instances get it: pruned, deterministic, uploaded once, and working on
the oldest Python an instance may have (3.9, when this machine has one)."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from runctl.services.bundles.runtime import (
    BOTOCORE_DATA_FILES,
    PRESIGN_SECONDS,
    RuntimeBundle,
    build_runtime_bundle,
    upload_runtime_bundle,
)


def _names(bundle: RuntimeBundle) -> list[str]:
    with tarfile.open(bundle.path) as tar:
        return tar.getnames()


def test_bundle_holds_only_what_the_runner_needs(runtime_bundle: RuntimeBundle) -> None:
    names = _names(runtime_bundle)

    services = {
        n.split("/")[2] for n in names if n.startswith("botocore/data/") and n.count("/") > 2
    }
    assert services == {"s3", "ec2", "sts", "ecr"}  # ecr: a container job's login
    top_data = {
        n.split("/")[2] for n in names if n.startswith("botocore/data/") and n.count("/") == 2
    }
    assert top_data == set(BOTOCORE_DATA_FILES)
    assert {n.split("/")[2] for n in names if n.startswith("boto3/data/")} == {"s3", "ec2"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert names == sorted(names)
    tops = {n.split("/")[0] for n in names}
    assert tops >= {"runctl", "boto3", "botocore", "s3transfer", "urllib3", "dateutil", "jmespath"}
    assert "six.py" in tops and "runctl-runtime.json" in tops
    assert not any(n.startswith(("runctl/cli/", "runctl/services/")) for n in names)
    print(
        f"runtime bundle: {runtime_bundle.size / 1e6:.2f} MB, {len(names)} files, "
        f"source {runtime_bundle.source}, {runtime_bundle.packages}"
    )


def test_bundle_targets_python39(runtime_bundle: RuntimeBundle) -> None:
    with tarfile.open(runtime_bundle.path) as tar:
        member = tar.extractfile("runctl-runtime.json")
        assert member is not None
        info = json.loads(member.read())
    assert info["min_python"] == "3.9"
    assert runtime_bundle.min_python == (3, 9)
    assert runtime_bundle.warnings == []


def test_bundle_is_deterministic_and_cached(runtime_bundle: RuntimeBundle) -> None:
    cache = runtime_bundle.path.parent
    again = build_runtime_bundle(cache)
    assert again.path == runtime_bundle.path
    for meta in cache.glob("bundle-*.json"):
        meta.unlink()
    rebuilt_from_scratch = build_runtime_bundle(cache)
    assert rebuilt_from_scratch.sha256 == runtime_bundle.sha256


def test_uploaded_once(s3: Any, bucket: str, runtime_bundle: RuntimeBundle) -> None:
    first = upload_runtime_bundle(s3, bucket, runtime_bundle)
    second = upload_runtime_bundle(s3, bucket, runtime_bundle)

    assert first.uploaded and not second.uploaded
    assert first.key == f"runctl/runtime/{runtime_bundle.sha256}.tar.gz"
    query = parse_qs(urlsplit(first.url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert int(query["X-Amz-Expires"][0]) == PRESIGN_SECONDS <= 3600
    assert "/us-east-1/s3/aws4_request" in query["X-Amz-Credential"][0]
    assert "Signature" not in query and "AWSAccessKeyId" not in query


def _python39() -> str | None:
    """A working python3.9 (pyenv's shims only work where pyenv selects the version)."""
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.9*/bin/python3.9"))
    candidates += [c for c in [shutil.which("python3.9")] if c]
    for candidate in candidates:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 9)":
            return candidate
    return None


@pytest.mark.skipif(_python39() is None, reason="no python3.9 on this machine")
def test_runner_works_on_python39(
    runtime_bundle: RuntimeBundle, tmp_path: Path, aws_env: dict[str, str], bucket: str
) -> None:
    python39 = _python39()
    assert python39 is not None
    extracted = tmp_path / "runtime"
    with tarfile.open(runtime_bundle.path) as tar:
        tar.extractall(extracted, filter="data")
    code = (
        f"import sys, warnings; sys.path.insert(0, {str(extracted)!r})\n"
        "warnings.simplefilter('ignore')\n"
        "from runctl.remote import runner, control, supervisor\n"
        "from runctl.job import s3store, checkpoints\n"
        "from runctl.aws.session import AwsContext\n"
        "from runctl.aws.s3 import S3Uri, put_bytes, get_bytes\n"
        "from runctl.job.spec import JobStatus\n"
        "ctx = AwsContext()\n"
        f"uri = S3Uri({bucket!r}, 'probe/status.json')\n"
        "put_bytes(ctx.s3(), uri, JobStatus(job_id='j').to_json().encode())\n"
        "assert JobStatus.from_json(get_bytes(ctx.s3(), uri)).job_id == 'j'\n"
        "ctx.ec2().describe_instances(); ctx.sts().get_caller_identity()\n"
        "print(sys.version_info[:2])\n"
    )
    done = subprocess.run(
        [python39, "-I", "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **aws_env},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(3, 9)"
