"""What a workflow did: each job's verdict, duration, cost and outputs, and what it terminated.

The workflow succeeds only when every job succeeded. Otherwise :meth:`WorkflowResult.failure`
is the error to exit with: the first job's own error when a job never reached a verdict (its
instance never became ready, its start was refused: that error's exit code), else exit 7 naming
the jobs that did not succeed. Either carries the whole result as its JSON document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runctl.errors import ExitCode, RunctlError

if TYPE_CHECKING:
    from runctl.services.jobs.cost import CostEstimate
    from runctl.services.jobs.outcome import JobOutcome
    from runctl.services.jobs.start import StartedJob
    from runctl.services.workflow.plan import PlannedJob


class WorkflowFailed(RunctlError):
    """Not every job of the workflow succeeded; the JSON document is the workflow's result."""

    def __init__(
        self, message: str, *, exit_code: ExitCode, hint: str | None, details: dict[str, Any]
    ) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code
        self.details = details

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), **self.details}


@dataclass
class WorkflowJob:
    """One job of the workflow as it went."""

    plan: PlannedJob
    instance_id: str | None = None
    started: StartedJob | None = None
    outcome: JobOutcome | None = None
    error: RunctlError | None = None
    outputs_dir: Path | None = None
    output_files: int = 0
    cost: CostEstimate | None = None
    #: Started and left running (``--detach``): it has no verdict yet.
    detached: bool = False

    @property
    def verdict(self) -> str | None:
        return self.outcome.verdict if self.outcome else None

    @property
    def succeeded(self) -> bool:
        """It succeeded; for a detached workflow, it started."""
        if self.error is not None:
            return False
        return self.detached or (self.outcome is not None and self.outcome.succeeded)

    def to_dict(self) -> dict[str, Any]:
        """One job in the workflow's JSON document (stable keys)."""
        outcome, cost = self.outcome, self.cost
        return {
            "index": self.plan.index,
            "label": self.plan.label,
            "job_id": self.plan.job_id,
            "job_uri": self.started.location.uri if self.started else None,
            "args": self.plan.args,
            "instance_id": outcome.instance_id if outcome else self.instance_id,
            "verdict": self.verdict,
            "state": outcome.state if outcome else ("running" if self.detached else None),
            "exit_code": outcome.exit_code if outcome else None,
            "attempts": len(outcome.timeline) if outcome else 0,
            "duration_seconds": cost.instance_seconds if cost else None,
            "cost_usd": cost.usd if cost else None,
            "price_source": cost.source if cost else None,
            "outputs_dir": str(self.outputs_dir) if self.outputs_dir else None,
            "output_files": self.output_files,
            "error": self.error.message if self.error else None,
            "detached": self.detached,
        }


@dataclass
class WorkflowResult:
    """The workflow's jobs, the instances it launched and those it terminated."""

    workflow_id: str
    jobs: list[WorkflowJob]
    launched: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    #: Instances of the workflow its last sweep could not terminate (none, normally).
    left_running: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return all(job.succeeded for job in self.jobs)

    def to_dict(self) -> dict[str, Any]:
        """``workflow train --output json`` (stable keys)."""
        costs = [job.cost.usd for job in self.jobs if job.cost and job.cost.usd is not None]
        return {
            "workflow_id": self.workflow_id,
            "succeeded": self.succeeded,
            "jobs": [job.to_dict() for job in self.jobs],
            "launched": list(self.launched),
            "terminated": list(dict.fromkeys(self.terminated)),
            "left_running": list(self.left_running),
            "cost_usd": round(sum(costs), 4) if costs else None,
        }

    def failure(self) -> WorkflowFailed | None:
        """The error to exit with when not every job succeeded; None when all did."""
        if self.succeeded:
            return None
        failed = [job for job in self.jobs if not job.succeeded]
        broken = next((job for job in failed if job.error is not None), None)
        said = ", ".join(f"{job.plan.label} {job.verdict or 'did not run'}" for job in failed)
        message = f"{len(failed)} of {len(self.jobs)} jobs did not succeed: {said}"
        if broken is not None and broken.error is not None:
            error = broken.error
            return WorkflowFailed(
                f"{message}; {broken.plan.label}: {error.message}",
                exit_code=error.exit_code,
                hint=error.hint,
                details=self.to_dict(),
            )
        first = failed[0]
        return WorkflowFailed(
            message,
            exit_code=ExitCode.JOB_FAILED,
            hint=f"read a job's log: runctl jobs logs {first.plan.job_id}",
            details=self.to_dict(),
        )
