"""The graceful job step before ``aws stop`` / ``aws terminate``: checkpoint, then act.

Through SSM the instance-side control stops the running job the way a spot notice would:
SIGTERM to the script, ``RUNCTL_GRACE_SECONDS`` to finish, SIGKILL if needed, the final
checkpoint committed, status ``stopped``. It answers with the committed checkpoint's id, which
the stop/terminate output reports. With no job running the step returns at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from runctl.errors import WaitTimeoutError, WrongStateError
from runctl.services.instances.lifecycle import GracefulJobStop, GracefulStopResult

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

    from runctl.aws.ec2 import Instance
    from runctl.aws.ssm import Ssm

STOP_TIMEOUT_SECONDS = 150.0


def ssm_graceful_stop(
    ssm_client: SSMClient,
    ssm: Ssm,
    *,
    remote_root: str,
    timeout_seconds: float = STOP_TIMEOUT_SECONDS,
    notify: Callable[[str], None] = lambda _: None,
) -> GracefulJobStop:
    """A graceful step that stops the instance's running job through SSM before it goes down.

    Raises WaitTimeoutError when the job did not commit its checkpoint in time (nothing is
    stopped then: re-run, or pass --force to stop without a final checkpoint).
    """

    def step(instance: Instance) -> GracefulStopResult | None:
        from runctl.aws.ssm_commands import run_shell
        from runctl.services.jobs.commands import parse_command_json, stop_job_command

        if instance.state != "running":
            return None
        agent = ssm.describe_instance_information([instance.instance_id]).get(instance.instance_id)
        if agent is None or not agent.online:
            return GracefulStopResult(
                None,
                f"SSM is not online on {instance.instance_id}: no graceful checkpoint step",
            )
        notify(f"asking the job on {instance.instance_id} to checkpoint and stop")
        try:
            result = run_shell(
                ssm_client,
                instance.instance_id,
                stop_job_command(timeout_seconds=timeout_seconds, remote_root_default=remote_root),
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
        job_id = answer.get("job_id")
        if answer.get("timed_out"):
            raise WaitTimeoutError(
                f"job {job_id} on {instance.instance_id} did not commit its checkpoint within "
                f"{timeout_seconds:.0f}s; the instance was left running",
                hint="re-run the command, or pass --force to act without a final checkpoint",
                resource=instance.instance_id,
            )
        if not answer.get("running") and not answer.get("stopped"):
            return None
        checkpoint = answer.get("checkpoint_id")
        message = (
            f"job {job_id} stopped; checkpoint {checkpoint} committed"
            if checkpoint
            else f"job {job_id} stopped; it had no checkpoint to commit"
        )
        return GracefulStopResult(
            str(job_id) if job_id else None,
            message,
            str(checkpoint) if checkpoint else None,
        )

    return step
