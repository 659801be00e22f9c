"""``--stop-on-finish``/``--terminate-on-finish``, applied by the instance to itself.

AWS refuses to stop a spot instance of a one-time request (``UnsupportedOperation``); runctl
launches one-time spot instances. Logging that and carrying on would leave the instance running,
and billing, with nothing to do; so when a stop is refused that way the instance is terminated
instead, and the job's status says so. Any other failure is reported and left alone (the job
itself is done). Python 3.9-safe: this runs on the instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

STOP = "stop"
TERMINATE = "terminate"
ONE_TIME_SPOT_CODE = "UnsupportedOperation"


def finish_action(stop_on_finish: bool, terminate_on_finish: bool) -> str | None:
    """``terminate``, ``stop`` or None, from the job's flags (terminate wins)."""
    if terminate_on_finish:
        return TERMINATE
    if stop_on_finish:
        return STOP
    return None


def apply_finish_action(
    ec2: Any,
    instance_id: str,
    action: str,
    say: Callable[[str], None],
    before_terminate: Callable[[str], None] | None = None,
) -> str:
    """Stop or terminate ``instance_id``; returns what was done, as one line.

    A stop that AWS refuses because the instance is one-time spot becomes a terminate;
    ``before_terminate(note)`` is called first (the instance may be gone a moment later), so
    the caller can record the note where the user will look (status.json, the log).
    """
    say(f"{action}-on-finish: asking EC2 to {action} {instance_id}")
    try:
        if action == TERMINATE:
            ec2.terminate_instances(InstanceIds=[instance_id])
            return f"terminated {instance_id} (--terminate-on-finish)"
        ec2.stop_instances(InstanceIds=[instance_id])
        return f"stopped {instance_id} (--stop-on-finish)"
    except Exception as exc:  # botocore errors: report; the job itself is done
        if action == STOP and _error_code(exc) == ONE_TIME_SPOT_CODE:
            return _terminate_instead(ec2, instance_id, exc, say, before_terminate)
        say(f"could not {action} {instance_id}: {exc}")
        return f"could not {action} {instance_id}: {exc}"


def _terminate_instead(
    ec2: Any,
    instance_id: str,
    refused: BaseException,
    say: Callable[[str], None],
    before_terminate: Callable[[str], None] | None,
) -> str:
    note = (
        f"--stop-on-finish: AWS cannot stop {instance_id}, a one-time spot instance "
        f"({_error_message(refused)}); terminating it instead so it does not keep billing"
    )
    say(note)
    if before_terminate is not None:
        before_terminate(note)
    try:
        ec2.terminate_instances(InstanceIds=[instance_id])
    except Exception as exc:
        say(f"could not terminate {instance_id} either: {exc}; terminate it yourself")
        return f"{note}; the terminate failed too: {exc}"
    return note


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message") or _error_code(exc) or exc)
