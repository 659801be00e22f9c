"""The places runctl uses on this machine: project root and key, cache, user config."""

from __future__ import annotations

from pathlib import Path

import pytest

from runctl.errors import UsageError
from runctl.paths import Project, cache_dir, find_project_root, user_config_file


def test_the_project_is_keyed_by_its_roots_name(tmp_path: Path) -> None:
    root = tmp_path / "My Project"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")

    project = Project.find(root / "src" / "deep")

    assert project == Project(root.resolve(), "my-project")
    assert project.jobs_dir == root.resolve() / ".runctl" / "jobs"
    assert find_project_root(root / "src") == root.resolve()


def test_a_given_name_wins_and_unsafe_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")

    assert Project.find(tmp_path, "My Proj").key == "my-proj"
    for bad in ("../../x", "evil\nname"):
        with pytest.raises(UsageError, match="cannot be used"):
            Project.find(tmp_path, bad)


def test_cache_and_config_follow_xdg() -> None:
    env = {"XDG_CACHE_HOME": "/c", "XDG_CONFIG_HOME": "/cfg", "HOME": "/h"}
    assert cache_dir("code", env=env) == Path("/c/runctl/code")
    assert user_config_file(env) == Path("/cfg/runctl/config.toml")
    assert cache_dir(env={"HOME": "/h"}) == Path("/h/.cache/runctl")
    assert user_config_file({"HOME": "/h"}) == Path("/h/.config/runctl/config.toml")
