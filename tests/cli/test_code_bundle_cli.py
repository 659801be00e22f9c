"""What ``runctl aws train`` ships of a hostile or careless project, end to end on the harness:
no secrets at any depth, no symlink out of the project, unreadable files skipped with a warning,
and a directory given as the script refused before any AWS call."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.cli.aws_helpers import run
from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cloud.harness import Cloud

LIST_CODE = """
import os
for top, dirs, files in os.walk("."):
    for name in files:
        print("shipped", os.path.relpath(os.path.join(top, name)))
"""
SECRETS = [
    ".netrc",
    ".pypirc",
    "id_dsa",
    "id_ecdsa.pub",
    "deploy/id_ed25519",
    "deploy/id_ed25519.pub",
    "configs/.ssh/config",
    "sub/dir/.git-credentials",
    "web/.npmrc",
    "tools/.docker/config.json",
    "certs/client.p12",
    "certs/client.pfx",
    "gcp/my-service-account-prod.json",
    "gcp/credentials.json",
    "nested/.env.production",
    "nested/.aws/credentials",
]


def shipped_members(cloud: Cloud) -> dict[str, bytes]:
    """The files of the one code bundle in the bucket, by name."""
    s3 = cloud.client("s3")
    [key] = [
        o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="runctl/demo/code/")["Contents"]
    ]
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_secrets_and_links_out_of_the_project_are_never_shipped(
    cloud_env: Cloud, project: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "keys").mkdir(parents=True)
    (outside / "secret.txt").write_text("TOP SECRET")
    (outside / "keys" / "prod.txt").write_text("PROD KEY")
    make_project(
        project,
        {"train.py": LIST_CODE, "pkg/mod.py": "X = 1\n", **{s: "secret" for s in SECRETS}},
    )
    (project / "leak.txt").symlink_to(outside / "secret.txt")
    (project / "leakdir").symlink_to(outside / "keys")
    (project / "pkg" / "up").symlink_to("../..")  # the parent of the project
    (project / "pkg_link").symlink_to("pkg")  # inside: followed once
    (project / "pkg" / "self").symlink_to(".")  # a loop
    (project / "alias.py").symlink_to("pkg/mod.py")
    (project / "gone.txt").symlink_to(project / "missing.txt")
    instance_id = ready_instance(cloud_env)
    result = run("aws", "train", instance_id, "train.py", "--wait", "-o", "json")
    assert result.exit_code == 0, result.stderr
    members = shipped_members(cloud_env)
    assert sorted(members) == [
        "alias.py",
        "pkg/mod.py",
        "pkg_link/mod.py",
        "pyproject.toml",
        "train.py",
    ]
    assert members["alias.py"] == b"X = 1\n"
    assert not any(b"SECRET" in data or b"PROD KEY" in data for data in members.values())
    warnings = {
        line.split("(")[1].split(")")[0]: line.split("): ")[1].split(", ")
        for line in result.stderr.splitlines()
        if line.startswith("warning: not in the code bundle")
    }
    assert warnings == {
        "symbolic links that point outside the project": [
            "leak.txt",
            "leakdir",
            "pkg/up",
            "pkg_link/up",
        ],
        "symbolic links whose target does not exist": ["gone.txt"],
        "directory links back into a directory they are in": ["pkg/self", "pkg_link/self"],
    }
    # What the instance actually got is what the bundle holds.
    assert "shipped pkg_link/mod.py" in result.stderr
    assert "shipped leak.txt" not in result.stderr and "id_ed25519" not in result.stderr


def test_include_pattern_still_ships_a_named_secret(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": LIST_CODE, "gcp/credentials.json": "{}"})
    instance_id = ready_instance(cloud_env)
    result = run(
        "aws", "train", instance_id, "train.py",
        "--include-pattern", "gcp/credentials.json", "--wait",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "gcp/credentials.json" in shipped_members(cloud_env)


def _without_file_permission_override() -> list[str]:
    """A command prefix under which mode 000 really means unreadable, even for root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is missing")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]


def test_unreadable_files_and_directories_are_skipped_with_a_warning(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"train.py": LIST_CODE, "locked.py": "x", "private/data.py": "y"})
    (project / "locked.py").chmod(0)
    (project / "private").chmod(0)
    instance_id = ready_instance(cloud_env)
    try:
        result = subprocess.run(
            [
                *_without_file_permission_override(),
                *(sys.executable, "-m", "runctl", "aws", "train", instance_id, "train.py"),
                *("--wait", "-o", "json"),
            ],
            env=cloud_env.subprocess_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        (project / "private").chmod(0o755)
        (project / "locked.py").chmod(0o644)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "PermissionError" not in result.stderr
    warning = " ".join(result.stderr.split())
    assert "permission denied" in warning and "locked.py" in warning and "private/" in warning
    assert json.loads(result.stdout)["state"] == "succeeded"
    assert "locked.py" not in shipped_members(cloud_env)


@pytest.mark.parametrize("command", ["aws train", "local"])
def test_a_directory_as_the_script_is_a_usage_error(
    cloud_env: Cloud, project: Path, command: str
) -> None:
    make_project(project, {"training/train.py": LIST_CODE, "training/eval.py": ""})
    before = len(cloud_env.request_log)
    args = ["aws", "train", "i-0123456789abcdef0"] if command == "aws train" else ["local"]
    result = run(*args, "training", "-o", "json")
    assert result.exit_code == 2, result.output
    assert "script training is a directory" in result.stderr
    assert "training/eval.py, training/train.py" in result.stderr
    assert json.loads(result.stdout)["error"] == "UsageError"
    assert len(cloud_env.request_log) == before
