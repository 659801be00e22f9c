"""Shared pieces of the ``runctl s3`` CLI tests (the ``s3_env`` fixture is in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from runctl.cli.app import app

BUCKET = "cli-bkt"
runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def run_json(*args: str, code: int = 0) -> Any:
    result = run(*args, "--output", "json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
