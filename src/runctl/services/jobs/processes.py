"""``aws processes``: a snapshot of an instance's CPU, memory, disk, GPUs and job processes.

The snapshot script (:mod:`runctl.remote.procinfo`, stdlib only) is sent as a quoted heredoc, so
it works on an instance that never ran a job and has no runtime bundle.
"""

from __future__ import annotations

import json
import shlex
from importlib import resources
from typing import TYPE_CHECKING, Any

from runctl.errors import RunctlError
from runctl.job.layout import DEFAULT_REMOTE_ROOT, ROOT_ENV
from runctl.polling import Timing

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


def snapshot_command(remote_root_default: str = DEFAULT_REMOTE_ROOT) -> str:
    """Bash that prints one JSON snapshot of the machine and the current job's processes."""
    source = resources.files("runctl.remote").joinpath("procinfo.py").read_text("utf-8")
    return "\n".join(
        [
            f"root=${{{ROOT_ENV}:-}}",
            f'[ -n "$root" ] || root={shlex.quote(remote_root_default)}',
            "python3 - \"$root\" <<'RUNCTL_PROCINFO'",
            source.rstrip("\n"),
            "RUNCTL_PROCINFO",
        ]
    )


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
