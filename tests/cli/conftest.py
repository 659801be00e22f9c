"""Shared helpers for CLI tests: an isolated home and working directory."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project directory as cwd, with HOME and RUNCTL_* variables isolated."""
    home = tmp_path / "home"
    home.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for var in list(__import__("os").environ):
        if var.startswith("RUNCTL_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(project)
    return project
