"""``jobs cancel``: end one job for good, its checkpoint committed, its instance left running.

Through SSM the instance-side control stops that job the way ``aws stop`` does (SIGTERM, the
grace period, SIGKILL if needed, the final checkpoint committed) with the reason ``cancel``, so the
runner records it ``cancelled`` (:mod:`runctl.remote.control`). Only a job that has not ended and
whose instance is running can be cancelled; the instance itself is never stopped. A job that
recovers with the laptop closed can also be cancelled between attempts, while its successor
instance boots: it is recorded ``cancelled`` and the successor ends itself without starting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from runctl.errors import WrongStateError
from runctl.job.attempts import AttemptLog
from runctl.job.record import JobRecord
from runctl.job.spec import CANCELLED, INTERRUPTED, utc_now
from runctl.services.jobs.catalog import job_instance, read_job

if TYPE_CHECKING:
    from runctl.job.spec import JobLocation
    from runctl.services.jobs.session import JobSession


@dataclass
class CancelTarget:
    """A job that can be cancelled, and the running instance it runs on."""

    location: JobLocation
    instance_id: str
    state: str


@dataclass
class CancelResult:
    """What ``jobs cancel`` did."""

    job_id: str
    instance_id: str
    state: str
    checkpoint_id: str | None
    message: str
    instance_left_running: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "instance_id": self.instance_id,
            "state": self.state,
            "verdict": "cancelled" if self.state == "cancelled" else None,
            "checkpoint_id": self.checkpoint_id,
            "message": self.message,
            "instance_left_running": self.instance_left_running,
        }


def cancel_target(session: JobSession, location: JobLocation) -> CancelTarget:
    """The job and its running instance; WrongStateError (exit 8) when the job has ended, or
    its instance is gone or not running (nothing to cancel), NotFoundError when it does not
    exist."""
    spec, status = read_job(session, location)
    job_id = location.job_id
    if status is not None and status.state == INTERRUPTED and spec.recovery:
        successor = AttemptLog(location, session.s3).read(status.attempt + 1)
        if successor is not None:  # between attempts: the successor has not started yet
            return CancelTarget(location, successor.instance_id or "", INTERRUPTED)
    if status is not None and status.is_terminal:
        raise WrongStateError(
            f"job {job_id} has already ended ({status.state}); there is nothing to cancel",
            hint=f"see it with `runctl jobs show {job_id}`",
            resource=job_id,
        )
    instance = job_instance(session, spec, status)
    if instance is None or instance.state in ("shutting-down", "terminated"):
        where = f"its instance {instance.instance_id} is gone" if instance else "no instance has it"
        raise WrongStateError(
            f"job {job_id} is lost: {where}; there is nothing to cancel",
            hint=f"its committed checkpoint stays in {spec.checkpoint_uri}",
            resource=job_id,
        )
    if instance.state != "running":
        raise WrongStateError(
            f"job {job_id} cannot be cancelled: its instance {instance.instance_id} is "
            f"{instance.state}",
            hint=f"start it (`runctl aws start {instance.instance_id}`) or wait until it runs",
            resource=job_id,
        )
    return CancelTarget(location, instance.instance_id, status.state if status else "pending")


def cancel_job(session: JobSession, target: CancelTarget) -> CancelResult:
    """Cancel the job of ``target`` gracefully; WaitTimeoutError when it did not commit its
    checkpoint in time (it goes on), WrongStateError when it no longer runs there."""
    from runctl.services.jobs.graceful import stop_running_job

    job_id, instance_id = target.location.job_id, target.instance_id
    if target.state == INTERRUPTED:
        return _cancel_between_attempts(session, target)
    instance = session.ec2.describe_instance(instance_id)
    stopped = stop_running_job(session, instance, job_id=job_id, reason="cancel")
    if stopped is None or stopped.state is None:
        why = stopped.message if stopped is not None else "its runner is not alive there"
        raise WrongStateError(
            f"job {job_id} is not running on {instance_id}: {why}",
            hint=f"see what happened: runctl jobs show {job_id}",
            resource=job_id,
        )
    return CancelResult(job_id, instance_id, stopped.state, stopped.checkpoint, stopped.message)


def _cancel_between_attempts(session: JobSession, target: CancelTarget) -> CancelResult:
    """The job was interrupted and its successor instance is on its way (laptop-closed
    recovery): record it ``cancelled``. The successor's runner waits for exactly this status
    before it starts, finds the job cancelled, and terminates its own instance."""
    record = JobRecord(target.location, s3=session.s3)
    status = record.read_status()
    if status is None or status.state != INTERRUPTED:
        state = status.state if status else "unknown"
        raise WrongStateError(
            f"job {target.location.job_id} changed while cancelling it (now {state})",
            hint="run `runctl jobs cancel` again",
            resource=target.location.job_id,
        )
    now = utc_now()
    where = target.instance_id or "its successor"
    message = f"cancelled between attempts; {where} will not start attempt {status.attempt + 1}"
    record.write_status(
        replace(status, state=CANCELLED, reason="cancel", message=message, ended=now, updated=now)
    )
    return CancelResult(
        target.location.job_id, target.instance_id, CANCELLED, status.checkpoint_id, message,
        instance_left_running=False,
    )  # fmt: skip
