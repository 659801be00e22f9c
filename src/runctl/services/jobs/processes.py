"""``aws processes``: a snapshot of an instance's CPU, memory, disk, GPUs and job processes.

The snapshot script (:mod:`runctl.remote.procinfo`, stdlib only) is sent as a quoted heredoc, so
it works on an instance that never ran a job and has no runtime bundle.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from runctl.errors import RunctlError
from runctl.job.layout import DEFAULT_REMOTE_ROOT
from runctl.polling import Timing
from runctl.services.jobs.commands import snapshot_command

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


def instance_snapshot(
    ssm_client: SSMClient,
    instance_id: str,
    *,
    remote_root: str = DEFAULT_REMOTE_ROOT,
    timing: Timing | None = None,
) -> dict[str, Any]:
    """One snapshot of ``instance_id``; WrongStateError when SSM cannot reach it."""
    from runctl.aws.ssm_commands import run_shell

    timing = timing or Timing()
    result = run_shell(
        ssm_client,
        instance_id,
        snapshot_command(remote_root),
        timeout_seconds=60,
        comment="runctl processes",
        sleep=timing.sleep,
        clock=timing.clock,
    )
    if not result.ok:
        raise RunctlError(
            f"reading processes on {instance_id} failed: {result.stderr.strip()[-300:]}",
            resource=instance_id,
        )
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    data["instance_id"] = instance_id
    return data
