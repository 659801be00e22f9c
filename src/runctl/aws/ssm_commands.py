"""SSM Run Command: send a shell script to one instance and wait for its result.

Real SSM has a race right after SendCommand where GetCommandInvocation answers
``InvocationDoesNotExist`` (https://github.com/aws/aws-cli/issues/4096); the wait below treats it
as "pending" for a short while. Output comes back cut at 24,000 (stdout) and 8,000 (stderr)
characters, so callers that need more read in chunks by byte offset.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from runctl.aws.errors import aws_errors, error_code
from runctl.errors import WaitTimeoutError, WrongStateError
from runctl.polling import Timing, poll_until

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

STDOUT_LIMIT = 24_000
TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled", "Undeliverable", "Terminated"}


@dataclass(frozen=True)
class Invocation:
    """The result of one command on one instance."""

    command_id: str
    instance_id: str
    status: str
    response_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == "Success" and self.response_code == 0


def send_shell_command(
    ssm: SSMClient,
    instance_id: str,
    script: str,
    *,
    timeout_seconds: int = 600,
    comment: str = "runctl",
) -> str:
    """SendCommand with AWS-RunShellScript to one instance; returns the command id.

    Raises WrongStateError when SSM cannot deliver to the instance (stopped, terminated, or its
    agent is not registered).
    """
    try:
        with aws_errors("ssm:SendCommand", instance_id):
            response = ssm.send_command(
                InstanceIds=[instance_id],
                DocumentName="AWS-RunShellScript",
                Parameters={
                    "commands": [script],
                    "executionTimeout": [str(timeout_seconds)],
                },
                TimeoutSeconds=max(30, min(timeout_seconds, 2_592_000)),
                Comment=comment[:100],
            )
    except WrongStateError as err:
        raise WrongStateError(
            f"SSM cannot run commands on {instance_id}: the instance is not running or its "
            "SSM agent is not online",
            hint=f"check `runctl aws status {instance_id}`; start it with "
            f"`runctl aws start {instance_id} --wait`",
            resource=instance_id,
        ) from err
    return response["Command"]["CommandId"]


def get_invocation(ssm: SSMClient, command_id: str, instance_id: str) -> Invocation | None:
    """GetCommandInvocation; None while SSM does not know the invocation yet."""
    try:
        response = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    except ClientError as exc:
        if error_code(exc) == "InvocationDoesNotExist":
            return None
        with aws_errors("ssm:GetCommandInvocation", instance_id):
            raise
    return Invocation(
        command_id=command_id,
        instance_id=instance_id,
        status=response["Status"],
        response_code=int(response.get("ResponseCode", -1)),
        stdout=response.get("StandardOutputContent", ""),
        stderr=response.get("StandardErrorContent", ""),
    )


def wait_invocation(
    ssm: SSMClient,
    command_id: str,
    instance_id: str,
    *,
    timeout: float = 660.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Invocation:
    """Poll until the command reaches a terminal status; raises WaitTimeoutError after timeout."""

    def finished() -> Invocation | None:
        invocation = get_invocation(ssm, command_id, instance_id)
        return invocation if invocation is not None and invocation.status in TERMINAL else None

    timing = Timing(sleep=sleep, clock=clock, interval=0.1, max_interval=1.0)
    invocation = poll_until(finished, timeout=timeout, timing=timing)
    if invocation is None:
        raise WaitTimeoutError(
            f"SSM command {command_id} on {instance_id} did not finish in {timeout:.0f}s",
            resource=instance_id,
        )
    return invocation


def run_shell(
    ssm: SSMClient,
    instance_id: str,
    script: str,
    *,
    timeout_seconds: int = 600,
    comment: str = "runctl",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Invocation:
    """Send ``script`` and wait for it; returns the Invocation whatever its exit code."""
    command_id = send_shell_command(
        ssm, instance_id, script, timeout_seconds=timeout_seconds, comment=comment
    )
    return wait_invocation(
        ssm, command_id, instance_id, timeout=timeout_seconds + 60, sleep=sleep, clock=clock
    )


def cancel_command(ssm: SSMClient, command_id: str, instance_id: str) -> None:
    """CancelCommand for one instance (best effort: a command that already ended stays so)."""
    with aws_errors("ssm:CancelCommand", instance_id):
        ssm.cancel_command(CommandId=command_id, InstanceIds=[instance_id])
