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


@pytest.mark.parametrize(
    "args", [["aws", "status", "--help"], ["s3", "download", "--help"], ["config", "show"]]
)
def test_no_pydantic_for_help_or_a_known_config(args: list[str], tmp_path: Path) -> None:
    imported_modules(["config", "validate"], tmp_path)  # resolves and caches the configuration
    names = imported_modules(args, tmp_path)
    assert sorted(n for n in names if n.split(".")[0] in ("pydantic", "pydantic_core")) == []


EVERY_HELP = """
import sys
import typer
from runctl.cli.app import app
from tests.cli.test_command_tree import leaves

paths = [path for path, _ in leaves(typer.main.get_command(app))]
for path in paths:
    try:
        app([*path, "--help"], prog_name="runctl")
    except SystemExit as exc:
        assert exc.code == 0, (path, exc.code)
heavy = sorted({n.split(".")[0] for n in sys.modules} & {"pydantic", "pydantic_core", *%r})
print(len(paths), heavy, file=sys.stderr)
"""


def test_no_commands_help_pays_for_pydantic_or_boto3(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", EVERY_HELP % (HEAVY,)],
        cwd=root,
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    count, heavy = proc.stderr.strip().splitlines()[-1].split(" ", 1)
    assert int(count) > 30
    assert heavy == "[]"
