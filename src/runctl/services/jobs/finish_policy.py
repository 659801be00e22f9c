"""Whether a job's finish action can work on its instance, checked before the job starts.

AWS cannot stop a spot instance launched by a one-time request (``UnsupportedOperation``), and
one-time is what runctl launches; ``--stop-on-finish`` on such an instance would leave it running
after the job. The start path refuses the combination up front with the alternatives; the runner
on the instance terminates instead if it meets it anyway (:mod:`runctl.remote.finish`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runctl.errors import UsageError
from runctl.services.instances.lifecycle import is_one_time_spot

if TYPE_CHECKING:
    from runctl.aws.ec2 import Ec2, Instance


def check_finish_action(ec2: Ec2, instance: Instance, *, stop_on_finish: bool) -> None:
    """UsageError (exit 2) when ``--stop-on-finish`` names a one-time spot instance."""
    if not stop_on_finish or not is_one_time_spot(ec2, instance):
        return
    raise UsageError(
        f"--stop-on-finish cannot work on {instance.instance_id}: it is a one-time spot "
        "instance, which AWS cannot stop (it would keep running, and billing, after the job)",
        hint="use --terminate-on-finish (checkpoints and outputs stay in S3), leave the "
        "instance running, or train on an on-demand instance (`runctl aws create TYPE` "
        "without --spot)",
        resource=instance.instance_id,
    )
