"""The graceful job step before an instance stops or terminates: checkpoint, then act.

Through SSM the instance-side control stops the running job the way a spot notice would:
SIGTERM to the script, ``RUNCTL_GRACE_SECONDS`` to finish, SIGKILL if needed, the final
checkpoint committed, status ``stopped``. It answers with the committed checkpoint's id, which
the stop/terminate output reports. With no job running the step returns at once. Every stop and
terminate that runctl does (``aws stop|terminate``, ``resources stop-all|cleanup``) goes through
:meth:`runctl.services.jobs.session.JobSession.graceful_stop` unless ``--force`` skips it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runctl.errors import WaitTimeoutError, WrongStateError
from runctl.services.instances.lifecycle import GracefulStopResult

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance
    from runctl.services.jobs.session import JobSession

STOP_TIMEOUT_SECONDS = 150.0


def stop_running_job(
    session: JobSession,
    instance: Instance,
    *,
    timeout_seconds: float = STOP_TIMEOUT_SECONDS,
    job_id: str | None = None,
    reason: str = "stop",
) -> GracefulStopResult | None:
    """Stop the job running on ``instance`` (``job_id``, default: its current one) with its
    checkpoint committed; None when no such job runs there. ``reason`` ``cancel`` ends the job
    ``cancelled`` (``jobs cancel``) instead of ``stopped``.

    Raises WaitTimeoutError when the job did not commit its checkpoint in time (nothing is
    stopped then: re-run, or pass --force to stop without a final checkpoint).
    """
    from runctl.aws.ssm_commands import run_shell
    from runctl.services.jobs.commands import parse_command_json, stop_job_command

    instance_id = instance.instance_id
    if instance.state != "running":
        return None
    agent = session.ssm.describe_instance_information([instance_id]).get(instance_id)
    if agent is None or not agent.online:
        return GracefulStopResult(
            None, f"SSM is not online on {instance_id}: no graceful checkpoint step"
        )
    which = f"job {job_id}" if job_id else "the job"
    session.report.info(f"asking {which} on {instance_id} to checkpoint and stop")
    try:
        result = run_shell(
            session.ssm_client,
            instance_id,
            stop_job_command(
                job_id,
                timeout_seconds=timeout_seconds,
                remote_root_default=session.remote_root,
                reason=reason,
            ),
            timeout_seconds=int(timeout_seconds) + 30,
            comment="runctl graceful stop",
        )
    except WrongStateError:
        return None
    try:
        answer = parse_command_json(result.stdout)
    except ValueError:
        return GracefulStopResult(
            None, f"the graceful step failed: {result.stderr.strip()[-300:] or result.status}"
        )
    job_id = str(answer.get("job_id") or job_id or "") or None
    if answer.get("timed_out"):
        raise WaitTimeoutError(
            f"job {job_id} on {instance_id} did not commit its checkpoint within "
            f"{timeout_seconds:.0f}s; the instance was left running",
            hint="re-run the command, or pass --force to act without a final checkpoint",
            resource=instance_id,
        )
    if not answer.get("running") and not answer.get("stopped"):
        return None
    checkpoint = answer.get("checkpoint_id")
    state = str(answer.get("state") or ("cancelled" if reason == "cancel" else "stopped"))
    message = (
        f"job {job_id} {state}; checkpoint {checkpoint} committed"
        if checkpoint
        else f"job {job_id} {state}; it had no checkpoint to commit"
    )
    return GracefulStopResult(job_id, message, str(checkpoint) if checkpoint else None, state)
