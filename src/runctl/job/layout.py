"""Where things live on the instance under ``$RUNCTL_REMOTE_ROOT`` (default ``/opt/runctl``).

::

    <root>/runtime/<sha256>/        extracted runtime bundles (PYTHONPATH of the runner)
    <root>/runtime/current          path of the runtime the last start command used
    <root>/current-job              id of the job whose runner is alive (one job per instance)
    <root>/venvs/<sha256>/          virtualenvs for a requirements.txt, reused across jobs
    <root>/jobs/<job-id>/           job.json, status.json, runner.pid, runner.log,
                                    stop-request, code/, data/, checkpoints/, outputs/, logs/

``runctl local`` uses the same :class:`JobPaths` under ``<project root>/.runctl/jobs/<job-id>/``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REMOTE_ROOT = "/opt/runctl"
ROOT_ENV = "RUNCTL_REMOTE_ROOT"
#: Prefix of the instance's system paths (``/dev``, ``/etc/fstab``, mount points such as a data
#: volume's ``/mnt/data``) for the scripts and the runner: unset (empty) on an instance; a test
#: sandbox sets it to its own directory, so the same text runs unchanged there.
SYSTEM_ROOT_ENV = "RUNCTL_SYSTEM_ROOT"
RUNNER_MODULE = "runctl.remote.runner"


@dataclass(frozen=True)
class JobPaths:
    """The files and directories of one job on the machine that runs it."""

    job_dir: Path

    @property
    def job_json(self) -> Path:
        return self.job_dir / "job.json"

    @property
    def status_json(self) -> Path:
        return self.job_dir / "status.json"

    @property
    def runner_pid(self) -> Path:
        return self.job_dir / "runner.pid"

    @property
    def runner_log(self) -> Path:
        return self.job_dir / "runner.log"

    @property
    def stop_request(self) -> Path:
        return self.job_dir / "stop-request"

    @property
    def code_dir(self) -> Path:
        return self.job_dir / "code"

    @property
    def data_dir(self) -> Path:
        return self.job_dir / "data"

    @property
    def output_dir(self) -> Path:
        return self.job_dir / "outputs"

    def log(self, attempt: int) -> Path:
        return self.job_dir / "logs" / f"attempt-{attempt}.log"

    def checkpoint_dir(self, setting: str) -> Path:
        """The checkpoint directory: ``setting`` if absolute, else relative to the job dir."""
        path = Path(setting).expanduser()
        return path if path.is_absolute() else self.job_dir / path


@dataclass(frozen=True)
class RemoteRoot:
    """The instance-side root directory and the bookkeeping files in it."""

    path: Path

    @classmethod
    def from_env(
        cls, default: str = DEFAULT_REMOTE_ROOT, env: Mapping[str, str] | None = None
    ) -> RemoteRoot:
        """``$RUNCTL_REMOTE_ROOT`` when set and not empty, else ``default``."""
        environ = os.environ if env is None else env
        return cls(Path(environ.get(ROOT_ENV) or default))

    @property
    def current_job_file(self) -> Path:
        return self.path / "current-job"

    @property
    def current_runtime_file(self) -> Path:
        return self.path / "runtime" / "current"

    @property
    def venvs_dir(self) -> Path:
        return self.path / "venvs"

    def job(self, job_id: str) -> JobPaths:
        return JobPaths(self.path / "jobs" / job_id)

    def current_job(self) -> str | None:
        """The id in ``current-job``, or None."""
        try:
            text = self.current_job_file.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return text or None

    def running_job(self) -> str | None:
        """The id of the job whose runner process is alive on this machine, or None."""
        job_id = self.current_job()
        if job_id is None:
            return None
        pid = read_pid(self.job(job_id).runner_pid)
        return job_id if pid is not None and runner_alive(pid) else None


def system_path(path: str, env: Mapping[str, str] | None = None) -> Path:
    """An absolute system path (``/mnt/data``) under ``$RUNCTL_SYSTEM_ROOT`` when that is set."""
    environ = os.environ if env is None else env
    prefix = environ.get(SYSTEM_ROOT_ENV, "")
    return Path(prefix + path) if prefix else Path(path)


def read_pid(path: Path) -> int | None:
    """The pid stored in ``path``, or None."""
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def runner_alive(pid: int) -> bool:
    """True when ``pid`` is alive and (where /proc exists) is a runctl runner, not a reused pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        data = cmdline.read_bytes()
    except OSError:
        return True
    if not data:  # a zombie: exited, not yet reaped
        return False
    return RUNNER_MODULE.encode() in data
