"""The places runctl uses on this machine, computed here and nowhere else.

- the project: the nearest enclosing directory with ``.git``, ``pyproject.toml``,
  ``requirements.txt`` or ``.runctl.toml`` (else the starting directory), its key (see
  :func:`runctl.job.spec.project_key`) and its ``.runctl/jobs/`` (``runctl local`` jobs;
  ``.runctl/`` holds a ``.gitignore`` that ignores all of it);
- the user's cache, ``$XDG_CACHE_HOME/runctl`` (default ``~/.cache/runctl``): code and runtime
  bundles, the price table;
- the user's config, ``$XDG_CONFIG_HOME/runctl/config.toml`` (default
  ``~/.config/runctl/config.toml``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runctl.errors import UsageError
from runctl.job.spec import project_key

PROJECT_FILE = ".runctl.toml"
PROJECT_MARKERS = (".git", "pyproject.toml", "requirements.txt", PROJECT_FILE)
LOCAL_DIR = ".runctl"


def find_project_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` with a project marker, else ``start``."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if any((directory / marker).exists() for marker in PROJECT_MARKERS):
            return directory
    return start


def find_project_file(start: Path) -> Path | None:
    """The project's ``.runctl.toml``: searched from ``start`` upward to the project root."""
    candidate = find_project_root(start) / PROJECT_FILE
    return candidate if candidate.is_file() else None


@dataclass(frozen=True)
class Project:
    """The project on this machine: its root and its key in job ids, S3 keys and tags."""

    root: Path
    key: str

    @classmethod
    def find(cls, cwd: Path, name: str | None = None) -> Project:
        """The project holding ``cwd``, keyed by ``name`` (``--project-name`` or
        ``aws.project_name``) or else its root directory's name.

        Raises UsageError (exit 2) for a name that cannot be a key (a path, control characters).
        """
        root = find_project_root(cwd)
        chosen = name if name is not None else root.name
        try:
            key = project_key(chosen)
        except ValueError as exc:
            if name is None:  # the directory's own name: fall back to a neutral key
                return cls(root, project_key("project"))
            raise UsageError(
                f"project name {name!r} cannot be used: {exc}",
                hint="use letters, digits, spaces, '-', '_' and '.' (e.g. --project-name mnist)",
            ) from None
        return cls(root, key)

    @property
    def jobs_dir(self) -> Path:
        """Where ``runctl local`` keeps its jobs: ``<root>/.runctl/jobs``."""
        return self.root / LOCAL_DIR / "jobs"

    def prepare_jobs_dir(self) -> Path:
        """:attr:`jobs_dir`, made if missing, with a ``.gitignore`` of ``*`` in ``.runctl/`` so
        that runctl's files never show in the user's ``git status``."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        ignore = self.root / LOCAL_DIR / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# runctl's local job files: none of them belongs in git.\n*\n")
        return self.jobs_dir


def cache_dir(*parts: str, env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/runctl/<parts>``, else ``~/.cache/runctl/<parts>``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base, "runctl", *parts)


def user_config_file(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/runctl/config.toml``, else ``~/.config/runctl/config.toml``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "runctl" / "config.toml"
