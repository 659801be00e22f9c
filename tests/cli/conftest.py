"""Shared fixtures for CLI tests: an isolated home and working directory, a project on the
harness, a bucket for the s3 commands."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.jobs_helpers import make_project
from tests.cli.s3_helpers import BUCKET as S3_BUCKET
from tests.cloud.harness import Cloud


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


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One runctl cache for the session, so the runtime bundle is built once."""
    return tmp_path_factory.mktemp("runctl-cache")


@pytest.fixture
def project(
    tmp_path: Path, cloud_env: Cloud, monkeypatch: pytest.MonkeyPatch, shared_cache: Path
) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_cache))
    root = tmp_path / "demo"
    make_project(root, {})
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def s3_env(cloud_env: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    """For the s3 CLI tests: the harness in os.environ, a fresh cwd, no RUNCTL_* leaking in,
    and the bucket ``tests.cli.s3_helpers.BUCKET``."""
    for name in list(os.environ):
        if name.startswith("RUNCTL_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cloud_env.client("s3", internal=True).create_bucket(Bucket=S3_BUCKET)
    cloud_env.request_log.clear()
    return cloud_env
