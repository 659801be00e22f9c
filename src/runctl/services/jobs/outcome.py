"""What became of a job: its verdict, the script's exit code, every attempt, the checkpoint.

The verdict is the one word a user and a script act on (docs/reference.md, "The job model"):
``succeeded``, ``failed`` (the script exited non-zero), ``interrupted`` (a spot notice, a stop or a
shutdown ended it with its checkpoint committed), ``lost`` (its instance vanished and the job never
reported an end), ``refused`` (it never started: busy instance, Python too old) or ``cancelled``.
``exit_code`` is always the script's own; runctl's exit code (0, or 7 for any other verdict) is the
process's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runctl.errors import JobFailedError
from runctl.job.spec import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    LOST,
    REFUSED,
    STOPPED,
    SUCCEEDED,
    JobStatus,
)

VERDICTS = (SUCCEEDED, FAILED, INTERRUPTED, LOST, REFUSED, CANCELLED)


def verdict_of(status: JobStatus | None, *, lost: bool = False) -> str | None:
    """The verdict for a job's last status (None while it has not ended)."""
    if lost:
        return LOST
    if status is None or not status.is_terminal:
        return None
    if status.state == STOPPED:  # `aws stop` / `jobs cancel`-style graceful stop: checkpointed
        return INTERRUPTED
    return status.state


@dataclass
class AttemptRecord:
    """One attempt of the job: where it ran, how it ended, the times that matter."""

    attempt: int
    instance_id: str
    lifecycle: str
    state: str
    exit_code: int | None = None
    started: str | None = None
    ended: str | None = None
    notice: str | None = None
    checkpoint_id: str | None = None
    notice_to_commit_seconds: float | None = None
    recovery_seconds: float | None = None


@dataclass
class JobOutcome:
    """How a followed job ended (``aws train --wait``, ``checkpoint resume --wait``)."""

    job_id: str
    job_uri: str
    instance_id: str
    script: str
    verdict: str
    state: str
    exit_code: int | None
    attempt: int
    checkpoint_id: str | None
    reason: str | None = None
    message: str | None = None
    timeline: list[AttemptRecord] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    gave_up: str | None = None
    #: The last status.json seen: which checkpoint the script started from, every fallback.
    status: JobStatus | None = None

    @property
    def succeeded(self) -> bool:
        return self.verdict == SUCCEEDED

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (stable keys)."""
        return {
            "job_id": self.job_id,
            "job_uri": self.job_uri,
            "instance_id": self.instance_id,
            "script": self.script,
            "verdict": self.verdict,
            "state": self.state,
            "exit_code": self.exit_code,
            "attempt": self.attempt,
            "attempts": len(self.timeline) or 1,
            "checkpoint_id": self.checkpoint_id,
            "reason": self.reason,
            "timeline": [dict(vars(entry)) for entry in self.timeline],
            "launched": list(self.launched),
            "terminated": list(self.terminated),
            "gave_up": self.gave_up,
            "restored_checkpoint": self.status.restored_checkpoint if self.status else None,
            "fallbacks": [vars(f) for f in self.status.fallbacks] if self.status else [],
        }

    def failure(self) -> JobFailedError | None:
        """The error to exit with (7) when the job did not succeed; None when it did."""
        if self.succeeded:
            return None
        message = self._failure_message()
        if self.gave_up:
            message += f"; gave up: {self.gave_up}"
        return JobFailedError(
            message,
            script_exit_code=self.exit_code,
            hint=self._failure_hint(),
            resource=self.job_id,
            details=self.to_dict(),
        )

    def _failure_message(self) -> str:
        job = self.job_id
        if self.verdict == FAILED and self.exit_code is None:
            return f"job {job} failed before its script ran: {self.message or self.reason}"
        if self.verdict == FAILED:
            return f"job {job} failed: the script exited with code {self.exit_code}"
        if self.verdict == LOST:
            return (
                f"job {job} was lost: its instance {self.instance_id} is gone and the job never "
                "reported an end"
            )
        why = f" ({self.reason})" if self.reason else ""
        saved = (
            f"; checkpoint {self.checkpoint_id} committed"
            if self.checkpoint_id
            else "; no checkpoint committed"
        )
        return f"job {job} ended {self.state}{why}{saved}"

    def _failure_hint(self) -> str:
        if self.verdict == FAILED:
            return f"read the log: runctl aws monitor {self.instance_id} --job {self.job_id}"
        return (
            f"continue from the last checkpoint on a new instance: runctl checkpoint resume "
            f"{self.job_uri} --instance-id NEW_ID, or re-run with --auto-resume"
        )
