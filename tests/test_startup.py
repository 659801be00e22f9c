"""Commands that need no AWS must not pay for boto3 or docker at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("boto3", "botocore", "docker", "moto", "s3transfer")


def imported_modules(args: list[str], cwd: Path) -> set[str]:
    env = {**os.environ, "HOME": str(cwd)}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runctl", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "runctl.cli.app" in names
    return names


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["config", "show"], ["config", "show", "-o", "json"]]
)
def test_no_heavy_imports(args: list[str], tmp_path: Path) -> None:
    names = imported_modules(args, tmp_path)
    loaded = sorted(n for n in names if n.split(".")[0] in HEAVY)
    assert loaded == []
