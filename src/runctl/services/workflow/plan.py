"""What a workflow was asked to run, checked before any AWS call, and the jobs it becomes.

``--sweep KEY=V1,V2,...`` gives each job its own ``--KEY=V`` argument after the script's own
arguments; several ``--sweep`` options make a grid (every combination, the first option varying
slowest). Without ``--sweep``, ``--count N`` jobs run the same arguments. Each job gets its id up
front, and with more than one job an explicit ``--output-s3``/``--checkpoint-s3`` is split per
job (``<uri>/<job-id>/``), so no two jobs write over each other's outputs or checkpoints.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from runctl.config import Settings
from runctl.errors import ConfigError, UsageError
from runctl.job.spec import as_prefix, new_job_id
from runctl.services import tags
from runctl.services.instances.launch_request import LaunchRequest, validate_request
from runctl.services.jobs.request import TrainRequest, prepare_script, require_bucket

SWEEP_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_JOBS = 100


@dataclass(frozen=True)
class Sweep:
    """One ``--sweep KEY=V1,V2,...``: a script option and the values the jobs take."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class WorkflowRequest:
    """What ``workflow train`` was asked to do: the instances' spec, the job's template (its
    ``instance_id`` is filled per job), how many jobs and with which sweep."""

    launch: LaunchRequest
    train: TrainRequest
    count: int | None = None
    sweeps: Sequence[Sweep] = ()
    download_dir: Path | None = Path("runctl-outputs")
    auto_resume: bool = False
    max_restarts: int = 3
    timeout_minutes: float | None = None
    ready_timeout: float = 600.0
    #: ``--detach``: start the jobs and return; each instance terminates itself when its job
    #: ends, and with ``auto_resume`` the jobs recover on their own (runctl.remote.succession).
    detach: bool = False


@dataclass(frozen=True)
class PlannedJob:
    """One job of the workflow: its position (of ``total``), label (its sweep values), id and
    request."""

    index: int
    total: int
    label: str
    job_id: str
    train: TrainRequest

    @property
    def args(self) -> list[str]:
        return list(self.train.args)


def parse_sweep(text: str) -> Sweep:
    """``lr=0.1,0.01`` -> Sweep("lr", ("0.1", "0.01")); UsageError (exit 2) for anything else."""
    key, sep, raw = text.partition("=")
    key = key.strip().removeprefix("--")
    values = tuple(v.strip() for v in raw.split(","))
    if not sep or not SWEEP_KEY_RE.match(key) or not raw or not all(values):
        raise UsageError(
            f"--sweep {text!r} is not KEY=V1,V2,...",
            hint="e.g. --sweep lr=0.1,0.01 gives the jobs --lr=0.1 and --lr=0.01",
        )
    return Sweep(key, values)


def plan_jobs(request: WorkflowRequest, settings: Settings, cwd: Path) -> list[PlannedJob]:
    """The jobs to run, after every local check (before any AWS call): the script and data
    options (as ``aws train`` checks them), the launch request, the count against the sweep,
    the bucket and the instance profile.

    Raises UsageError (exit 2), NotFoundError (6: no script) or ConfigError (3: no bucket, no
    instance profile).
    """
    prepared = prepare_script(request.train, settings, cwd, check_instance=False)
    keys = [sweep.key for sweep in request.sweeps]
    grid = [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*(sweep.values for sweep in request.sweeps))
    ] if request.sweeps else []  # fmt: skip
    count = request.count if request.count is not None else max(len(grid), 1)
    if request.sweeps and count != len(grid):
        raise UsageError(
            f"--count {count} does not match the sweep's {len(grid)} combinations",
            hint="leave --count out: the sweep decides how many jobs run",
        )
    if not 1 <= count <= MAX_JOBS:
        raise UsageError(f"--count {count}: must be between 1 and {MAX_JOBS}")
    validate_request(request.launch, count)
    if tags.is_protected(request.launch.tags):
        raise UsageError(
            "--tag runctl:protected=true: a workflow terminates its instances when it ends",
            hint="create protected instances with `runctl aws create` and use `aws train`",
        )
    require_bucket(settings)
    if not request.launch.iam_instance_profile:
        raise ConfigError(
            "workflow train needs an instance profile: without it the instances' SSM agent "
            "cannot register and no job can start",
            hint="run `runctl aws setup`, set aws.iam_instance_profile, or pass "
            "--iam-instance-profile",
        )
    ids = _unique_job_ids(prepared.project, count)
    return [
        _job(request.train, index + 1, ids[index], grid[index] if grid else {}, count)
        for index in range(count)
    ]


def _job(
    template: TrainRequest, index: int, job_id: str, values: dict[str, str], count: int
) -> PlannedJob:
    swept = " ".join(f"{key}={value}" for key, value in values.items())
    train = replace(
        template,
        job_id=job_id,
        args=[*template.args, *(f"--{key}={value}" for key, value in values.items())],
        # The instance terminates itself when its job ends, even if this workflow is gone.
        terminate_on_finish=True,
        stop_on_finish=False,
    )
    if count > 1:
        train = replace(
            train,
            output_s3=_per_job(template.output_s3, job_id),
            checkpoint_s3=_per_job(template.checkpoint_s3, job_id),
        )
    return PlannedJob(index, count, f"#{index}" + (f" {swept}" if swept else ""), job_id, train)


def _per_job(uri: str | None, job_id: str) -> str | None:
    return f"{as_prefix(uri)}{job_id}/" if uri else None


def _unique_job_ids(project: str, count: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        job_id = new_job_id(project)
        if job_id not in ids:
            ids.append(job_id)
    return ids
