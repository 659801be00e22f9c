"""The cache of resolved configuration: a hit gives what resolving gives, and any change to what
the resolution depends on (file contents, RUNCTL_* variables, flags) is seen at once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runctl.config import resolve
from runctl.config_cache import resolve_cached
from runctl.errors import ConfigError, UsageError


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    return root


def entries(env: dict[str, str]) -> list[Path]:
    return sorted(Path(env["XDG_CACHE_HOME"], "runctl", "config").glob("*.json"))


def test_a_hit_gives_what_resolving_gives(project: Path, env: dict[str, str]) -> None:
    (project / ".runctl.toml").write_text('[aws]\ns3_bucket = "bkt1"\n[s3]\nmax_concurrency = 8\n')
    first = resolve_cached(cwd=project, env=env)
    assert len(entries(env)) == 1
    second = resolve_cached(cwd=project, env=env)
    assert second._settings is None  # read back, not validated again
    fresh = resolve(cwd=project, env=env)
    assert second.values == first.values == fresh.values
    assert second.sources == fresh.sources
    assert second.files == fresh.files == [project / ".runctl.toml"]
    assert second.file_for("aws.s3_bucket") == project / ".runctl.toml"
    assert second.value("s3.max_concurrency") == 8
    assert second.settings == fresh.settings  # typed models, validated on first use


def test_an_edit_within_one_mtime_tick_is_seen(project: Path, env: dict[str, str]) -> None:
    config = project / ".runctl.toml"
    config.write_text('[aws]\ns3_bucket = "aaa"\n')
    stat = config.stat()
    assert resolve_cached(cwd=project, env=env).value("aws.s3_bucket") == "aaa"
    config.write_text('[aws]\ns3_bucket = "bbb"\n')  # same size, same inode
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    assert resolve_cached(cwd=project, env=env).value("aws.s3_bucket") == "bbb"


def test_environment_and_flags_are_part_of_the_key(project: Path, env: dict[str, str]) -> None:
    assert resolve_cached(cwd=project, env=env).value("aws.region") is None
    with_env = {**env, "RUNCTL_AWS__REGION": "eu-west-1"}
    assert resolve_cached(cwd=project, env=with_env).sources["aws.region"] == "env"
    flagged = resolve_cached(cwd=project, env=with_env, overrides={"aws.region": "us-west-2"})
    assert flagged.value("aws.region") == "us-west-2"
    assert flagged.sources["aws.region"] == "flag"
    assert resolve_cached(cwd=project, env=env).value("aws.region") is None
    assert len(entries(env)) == 3


def test_an_invalid_config_is_refused_every_time(project: Path, env: dict[str, str]) -> None:
    (project / ".runctl.toml").write_text("[aws]\nno_such_key = 1\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="no_such_key"):
            resolve_cached(cwd=project, env=env)
    assert entries(env) == []


def test_a_damaged_entry_is_resolved_again(project: Path, env: dict[str, str]) -> None:
    resolve_cached(cwd=project, env=env)
    (entry,) = entries(env)
    entry.write_text("{not json")
    assert resolve_cached(cwd=project, env=env).value("aws.remote_root") == "/opt/runctl"
    assert json.loads(entry.read_text())["values"]["aws"]["remote_root"] == "/opt/runctl"


def test_unknown_key_names_itself(project: Path, env: dict[str, str]) -> None:
    resolved = resolve_cached(cwd=project, env=env)
    with pytest.raises(UsageError, match=r"aws\.nope"):
        resolved.value("aws.nope")
