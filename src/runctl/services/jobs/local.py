"""``runctl local``: a job on this machine through the same supervisor an instance runs.

Layout and conventions (the same environment contract as on an instance):

- the script runs with the project root as its working directory, with this machine's
  ``python3`` (``$RUNCTL_PYTHON`` overrides), in its own process group;
- the job lives in ``<project root>/.runctl/jobs/<job-id>/`` (job.json, status.json,
  ``logs/attempt-0.log``, ``outputs/`` = ``RUNCTL_OUTPUT_DIR``, ``data/`` = ``RUNCTL_DATA_DIR``);
- ``RUNCTL_CHECKPOINT_DIR`` is ``--checkpoint-dir``, else ``local.checkpoint_dir``, else
  ``checkpoint.dir`` (default ``checkpoints``), relative to the project root -- the same
  directory as on an instance, where the project root is the code directory. It persists between
  runs: a run that finds files there is a resume (``RUNCTL_RESUMED=1``). With ``--checkpoint-s3``
  (an ``s3://`` prefix, or a local directory used as a store of the same format) the newest
  committed checkpoint is restored into it first and it is committed there every
  ``checkpoint.sync_interval_seconds`` and when the script ends, exactly as on an instance;
- ``--data-s3`` is downloaded into ``RUNCTL_DATA_DIR`` and ``RUNCTL_OUTPUT_DIR`` is uploaded to
  ``--output-s3`` at the end, with the ``--outputs`` paths (relative to the project root) under
  the same relative names. Without S3 options nothing touches AWS (boto3 is not imported);
- ``.runctl/`` holds a ``.gitignore`` of ``*``: runctl's files never show in ``git status``.
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runctl.config import Settings
from runctl.errors import ConfigError, NotFoundError, UsageError
from runctl.job.layout import JobPaths, project_path
from runctl.job.spec import CheckpointSettings, JobSpec, JobStatus, new_job_id, split_s3_uri
from runctl.paths import Project
from runctl.remote.process import Echo
from runctl.remote.runner import run_local
from runctl.remote.supervisor import RunContext
from runctl.services.bundles.selection import select_files
from runctl.services.jobs.outcome import verdict_of
from runctl.services.tags import current_user

PYTHON_ENV = "RUNCTL_PYTHON"


@dataclass
class LocalJobRequest:
    """What the user asked ``runctl local`` for."""

    script: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    data_s3: str | None = None
    output_s3: str | None = None
    checkpoint_s3: str | None = None
    checkpoint_dir: str | None = None
    project_name: str | None = None
    outputs: list[str] = field(default_factory=list)


@dataclass
class LocalJobResult:
    """How the local job ended; ``error`` is what stopped it before the script ran, if anything."""

    job_id: str
    project: str
    status: JobStatus
    log_path: Path
    job_dir: Path
    checkpoint_dir: Path
    output_dir: Path
    error: BaseException | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "project": self.project,
            "state": self.status.state,
            "verdict": verdict_of(self.status),
            "exit_code": self.status.exit_code,
            "checkpoint_id": self.status.checkpoint_id,
            "restored_checkpoint": self.status.restored_checkpoint,
            "fallbacks": [asdict(f) for f in self.status.fallbacks_of()],
            "message": self.status.message,
            "started": self.status.started,
            "ended": self.status.ended,
            "log": str(self.log_path),
            "job_dir": str(self.job_dir),
            "checkpoint_dir": str(self.checkpoint_dir),
            "output_dir": str(self.output_dir),
        }


def parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    """``["K=V", ...]`` -> dict; UsageError (exit 2) for anything without a valid name."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not (name.replace("_", "a").isalnum() and not name[0].isdigit()):
            raise UsageError(f"--env {pair!r} is not NAME=VALUE", hint="e.g. --env LR=0.01")
        env[name] = value
    return env


def check_s3_option(option: str, value: str | None, *, allow_local: bool = False) -> None:
    """UsageError (exit 2) unless ``value`` is an ``s3://`` URI (or, if allowed, a path)."""
    if value is None or (allow_local and not value.startswith("s3://")):
        return
    try:
        split_s3_uri(value)
    except ValueError:
        raise UsageError(
            f"{option} {value!r} is not an S3 URI", hint="e.g. s3://bucket/prefix/"
        ) from None


def check_project_paths(outputs: Sequence[str], checkpoint_dir: str) -> None:
    """``--outputs`` paths must be inside the project (exit 2), and so must a relative
    ``checkpoint.dir`` (a configuration error, exit 3): both are relative to the project root,
    the code directory on the instance."""
    for output in outputs:
        if Path(output).expanduser().is_absolute():
            raise UsageError(
                f"--outputs {output} is an absolute path",
                hint="give a path relative to the project root, e.g. --outputs out",
            )
        try:
            project_path(output, Path("/"))
        except ValueError as exc:
            raise UsageError(f"--outputs {output}: {exc}", hint="e.g. --outputs out") from None
    try:
        project_path(checkpoint_dir, Path("/"))
    except ValueError as exc:
        raise ConfigError(
            f"checkpoint.dir: {exc}",
            hint="set it to a directory inside the project (e.g. checkpoints or out), or an "
            "absolute path on the instance",
        ) from None


def resolve_script(script: str, cwd: Path, root: Path) -> Path:
    """The script's absolute path; NotFoundError (exit 6) suggesting close matches if missing,
    UsageError (exit 2) when it names a directory."""
    path = (cwd / script).resolve()
    if path.is_file():
        return path
    if path.is_dir():
        try:
            inside = sorted(p.name for p in path.iterdir() if p.suffix in (".py", ".sh"))[:3]
        except OSError:
            inside = []
        examples = ", ".join(f"{script.rstrip('/')}/{name}" for name in inside)
        raise UsageError(
            f"script {script} is a directory, not a file",
            hint=f"name the script to run, e.g. {examples}" if examples else "name a script file",
            resource=script,
        )
    candidates = [p for p in select_files(root).files if p.endswith((".py", ".sh"))]
    typed = os.path.relpath(path, root) if path.is_relative_to(root) else script
    matches = difflib.get_close_matches(typed, candidates, n=3, cutoff=0.5)
    names = difflib.get_close_matches(Path(script).name, [Path(c).name for c in candidates], n=3)
    matches += [c for c in candidates if Path(c).name in names and c not in matches]
    hint = f"did you mean: {', '.join(matches[:3])}?" if matches else "check the path"
    raise NotFoundError(f"script {script} not found", hint=hint, resource=script)


def local_python() -> str:
    """``$RUNCTL_PYTHON``, else ``python3`` on PATH (the user's environment), else ours."""
    return os.environ.get(PYTHON_ENV) or shutil.which("python3") or sys.executable


def run_local_job(
    request: LocalJobRequest,
    settings: Settings,
    *,
    cwd: Path,
    s3_client: Callable[[], Any] | None = None,
    echo: Echo | None = None,
    notify: Callable[[str], None] | None = None,
) -> LocalJobResult:
    """Run the script in the foreground; return how it ended (never raises for the script).

    Raises UsageError for malformed options and NotFoundError when the script does not exist.
    """
    check_s3_option("--data-s3", request.data_s3)
    check_s3_option("--output-s3", request.output_s3)
    check_s3_option("--checkpoint-s3", request.checkpoint_s3, allow_local=True)
    found = Project.find(cwd, request.project_name or settings.aws.project_name)
    root, project = found.root, found.key
    script = resolve_script(request.script, cwd, root)
    job_id = new_job_id(project)
    rel_script = os.path.relpath(script, root) if script.is_relative_to(root) else str(script)
    check_project_paths(request.outputs, settings.checkpoint.dir)
    checkpoint_setting = (
        request.checkpoint_dir or settings.local.checkpoint_dir or settings.checkpoint.dir
    )
    checkpoint_dir = Path(checkpoint_setting).expanduser()
    if not checkpoint_dir.is_absolute():
        base = cwd if request.checkpoint_dir else root
        checkpoint_dir = (base / checkpoint_dir).resolve()
    config = settings.checkpoint
    spec = JobSpec(
        job_id=job_id,
        project=project,
        script=Path(rel_script).as_posix(),
        args=list(request.args),
        env=dict(request.env),
        data_s3=request.data_s3,
        output_s3=request.output_s3,
        checkpoint_s3=request.checkpoint_s3,
        checkpoint=CheckpointSettings(
            dir=str(checkpoint_dir),
            sync_interval_seconds=config.sync_interval_seconds,
            keep_last_n=config.keep_last_n,
            grace_seconds=config.grace_seconds,
        ),
        outputs=[Path(o).as_posix() for o in request.outputs],
        user=current_user(),
    )
    paths = JobPaths(found.prepare_jobs_dir() / job_id)
    return run_attempt_here(
        spec,
        attempt=0,
        paths=paths,
        checkpoint_dir=checkpoint_dir,
        root=root,
        s3_client=s3_client,
        echo=echo,
        notify=notify,
    )


def run_attempt_here(
    spec: JobSpec,
    *,
    attempt: int,
    paths: JobPaths,
    checkpoint_dir: Path,
    root: Path,
    s3_client: Callable[[], Any] | None = None,
    echo: Echo | None = None,
    notify: Callable[[str], None] | None = None,
) -> LocalJobResult:
    """Run attempt ``attempt`` of ``spec`` on this machine, in the foreground, from ``root``."""
    ctx = RunContext(
        spec=spec,
        attempt=attempt,
        paths=paths,
        checkpoint_dir=checkpoint_dir,
        workdir=root,
        instance_id="local",
        python=local_python(),
        echo=echo,
        notify=notify,
        s3_client=s3_client,
    )
    status, error = run_local(ctx)
    return LocalJobResult(
        job_id=spec.job_id,
        project=spec.project,
        status=status,
        log_path=paths.log(attempt),
        job_dir=paths.job_dir,
        checkpoint_dir=checkpoint_dir,
        output_dir=paths.output_dir,
        error=error,
    )
