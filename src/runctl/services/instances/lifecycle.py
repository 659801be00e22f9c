"""Instance lifecycle: start, stop, terminate, status and waiting for "ready".

Every state is handled: stopping a stopped instance succeeds without a call, starting a
terminated one is a wrong-state error (exit 8), a one-time spot instance cannot be stopped (AWS
refuses; runctl says so and suggests terminate). Stop and terminate first give a running job the
chance to checkpoint through the :data:`GracefulJobStop` step they are given, unless forced.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runctl.errors import UsageError, WaitTimeoutError, WrongStateError
from runctl.polling import Timing, poll_until
from runctl.services import tags as tagging

if TYPE_CHECKING:
    from runctl.aws.ec2 import Ec2, Instance
    from runctl.aws.ssm import Ssm
    from runctl.services.instances.prices import PriceBook

INSTANCE_ID_RE = re.compile(r"^i-([0-9a-f]{8}|[0-9a-f]{17})$")
GONE = ("shutting-down", "terminated")


@dataclass(frozen=True)
class GracefulStopResult:
    """What the graceful job step did before a stop or terminate."""

    job_id: str | None
    message: str
    checkpoint: str | None = None
    #: The job's final state (``stopped``, or ``cancelled`` for ``jobs cancel``), when known.
    state: str | None = None


#: The step that lets a running job commit its checkpoint before its instance stops:
#: :meth:`runctl.services.jobs.session.JobSession.graceful_stop`.
GracefulJobStop = Callable[["Instance"], GracefulStopResult | None]


@dataclass
class ActionResult:
    """The outcome of start/stop/terminate on one instance."""

    instance_id: str
    action: str
    previous_state: str
    state: str
    changed: bool
    message: str
    job_stop: GracefulStopResult | None = None


@dataclass
class Readiness:
    """Whether an instance is running with its SSM agent online."""

    instance_id: str
    state: str
    ssm_online: bool
    has_instance_profile: bool


def validate_instance_id(value: str) -> str:
    """Check an instance id's shape (``i-`` + 8 or 17 hex) before any AWS call (exit 2)."""
    if not INSTANCE_ID_RE.match(value):
        raise UsageError(
            f"{value!r} is not an instance id",
            hint="instance ids look like i-0123456789abcdef0",
            resource=value,
        )
    return value


def start_instance(
    ec2: Ec2,
    instance_id: str,
    *,
    wait: bool = False,
    timeout: float = 600.0,
    timing: Timing | None = None,
) -> ActionResult:
    """Start a stopped instance (waiting out ``stopping`` first); no-op when already running.

    Raises WrongStateError for a terminated or terminating instance.
    """
    instance = ec2.describe_instance(validate_instance_id(instance_id))
    previous = instance.state
    if previous in GONE:
        raise WrongStateError(
            f"instance {instance_id} is {previous} and cannot be started",
            hint="create a new one with `runctl aws create`",
            resource=instance_id,
        )
    if previous in ("pending", "running"):
        if wait:
            wait_for_state(ec2, instance_id, "running", timeout=timeout, timing=timing)
        return ActionResult(instance_id, "start", previous, previous, False, "already running")
    if previous == "stopping":
        wait_for_state(ec2, instance_id, "stopped", timeout=timeout, timing=timing)
    change = ec2.start_instances(instance_id)
    state = change.current
    if wait:
        state = wait_for_state(ec2, instance_id, "running", timeout=timeout, timing=timing).state
    return ActionResult(instance_id, "start", previous, state, True, "started")


def stop_instance(
    ec2: Ec2,
    instance_id: str,
    *,
    graceful: GracefulJobStop,
    force: bool = False,
    wait: bool = False,
    timeout: float = 600.0,
    timing: Timing | None = None,
) -> ActionResult:
    """Stop an instance after the graceful job step; no-op when stopped or stopping.

    Raises WrongStateError for a terminated, protected or one-time spot instance, UsageError
    for an instance runctl did not create (unless ``force``).
    """
    instance = ec2.describe_instance(validate_instance_id(instance_id))
    previous = instance.state
    check_may_act(instance, "stop", force=force)
    if previous in GONE:
        raise WrongStateError(
            f"instance {instance_id} is {previous}; there is nothing to stop",
            resource=instance_id,
        )
    if previous in ("stopped", "stopping"):
        if wait:
            wait_for_state(ec2, instance_id, "stopped", timeout=timeout, timing=timing)
        return ActionResult(instance_id, "stop", previous, previous, False, f"already {previous}")
    if is_one_time_spot(ec2, instance):
        raise WrongStateError(
            f"instance {instance_id} is a one-time spot instance, which AWS cannot stop",
            hint=f"terminate it instead: runctl aws terminate {instance_id}",
            resource=instance_id,
        )
    if previous == "pending":
        instance = wait_for_state(ec2, instance_id, "running", timeout=timeout, timing=timing)
    job = None if force else graceful(instance)
    change = ec2.stop_instances(instance_id)
    state = change.current
    if wait:
        state = wait_for_state(ec2, instance_id, "stopped", timeout=timeout, timing=timing).state
    return ActionResult(instance_id, "stop", previous, state, True, "stopping", job)


def terminate_instance(
    ec2: Ec2,
    instance_id: str,
    *,
    graceful: GracefulJobStop,
    force: bool = False,
    wait: bool = False,
    timeout: float = 600.0,
    timing: Timing | None = None,
) -> ActionResult:
    """Terminate an instance after the graceful job step; no-op when already gone.

    Raises WrongStateError for an instance tagged ``runctl:protected=true``, UsageError for an
    instance runctl did not create (unless ``force``).
    """
    instance = ec2.describe_instance(validate_instance_id(instance_id))
    previous = instance.state
    if previous in GONE:
        if wait:
            wait_for_state(ec2, instance_id, "terminated", timeout=timeout, timing=timing)
        return ActionResult(
            instance_id, "terminate", previous, previous, False, f"already {previous}"
        )
    check_may_act(instance, "terminate", force=force)
    job = None if force or previous != "running" else graceful(instance)
    change = ec2.terminate_instances([instance_id])[0]
    state = change.current
    if wait:
        state = wait_for_state(ec2, instance_id, "terminated", timeout=timeout, timing=timing).state
    return ActionResult(instance_id, "terminate", previous, state, True, "terminating", job)


def describe_owner(instance: Instance) -> str:
    """What an instance is, for a person deciding about it: id, name, type, state, owner."""
    owner = "created by runctl" if tagging.is_managed(instance.tags) else "NOT created by runctl"
    return (
        f"{instance.instance_id} ({instance.name or 'no name'}, {instance.instance_type}, "
        f"{instance.state}, {owner})"
    )


def check_may_act(instance: Instance, action: str, *, force: bool) -> None:
    """Refuse to stop or terminate what is not runctl's to touch (docs/reference.md, "Safety").

    Raises WrongStateError for ``runctl:protected=true`` (never, not even with ``force``) and
    UsageError for an instance runctl did not create unless ``force``.
    """
    instance_id = instance.instance_id
    if tagging.is_protected(instance.tags):
        raise WrongStateError(
            f"instance {instance_id} is tagged runctl:protected=true; runctl will not {action} it",
            hint="remove the tag first if you really mean it",
            resource=instance_id,
        )
    if not force and not tagging.is_managed(instance.tags):
        raise UsageError(
            f"refusing to {action} {describe_owner(instance)}",
            hint=f"pass --force to {action} an instance runctl did not create",
            resource=instance_id,
        )


def wait_for_state(
    ec2: Ec2, instance_id: str, target: str, *, timeout: float, timing: Timing | None = None
) -> Instance:
    """Poll until the instance reaches ``target``.

    Raises WaitTimeoutError (exit 9) naming the state it is stuck in, WrongStateError when it
    went somewhere ``target`` cannot be reached from (terminated while waiting for running).
    """
    last: list[Instance] = []

    def check() -> Instance | None:
        current = ec2.describe_instance(instance_id)
        last[:] = [current]
        if current.state == target:
            return current
        if target != "terminated" and current.state in GONE:
            reason = f" ({current.state_reason})" if current.state_reason else ""
            raise WrongStateError(
                f"instance {instance_id} is {current.state}{reason} while waiting for {target}",
                resource=instance_id,
            )
        return None

    found = poll_until(check, timeout=timeout, timing=timing)
    if found is None:
        state = last[0].state if last else "unknown"
        raise WaitTimeoutError(
            f"instance {instance_id} is still {state} after {timeout:.0f}s (waiting for {target})",
            hint="wait longer with --timeout, or check the instance in the EC2 console",
            resource=instance_id,
        )
    return found


def wait_ready(
    ec2: Ec2,
    ssm: Ssm,
    instance_id: str,
    *,
    timeout: float = 600.0,
    timing: Timing | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> Readiness:
    """Wait until the instance is running and its SSM agent is online.

    Raises WaitTimeoutError saying what is missing (the instance profile, or the agent),
    WrongStateError when the instance stops or terminates meanwhile.
    """
    progress = on_progress or (lambda _message: None)
    seen: list[Readiness] = []

    def check() -> Readiness | None:
        instance = ec2.describe_instance(instance_id)
        if instance.state in (*GONE, "stopping", "stopped"):
            raise WrongStateError(
                f"instance {instance_id} is {instance.state}; it will not become ready",
                hint=f"start it with `runctl aws start {instance_id}`"
                if instance.state in ("stopping", "stopped")
                else "create a new one",
                resource=instance_id,
            )
        online = False
        if instance.state == "running":
            agent = ssm.describe_instance_information([instance_id]).get(instance_id)
            online = agent is not None and agent.online
        status = Readiness(
            instance_id, instance.state, online, instance.iam_instance_profile_arn is not None
        )
        seen[:] = [status]
        progress(
            f"{instance_id}: {instance.state}, SSM agent {'online' if online else 'not online'}"
        )
        return status if online else None

    ready = poll_until(check, timeout=timeout, timing=timing)
    if ready is not None:
        return ready
    raise _not_ready(instance_id, seen[0] if seen else None, timeout)


def _not_ready(instance_id: str, status: Readiness | None, timeout: float) -> WaitTimeoutError:
    after = f"after {timeout:.0f}s"
    if status is None or status.state != "running":
        state = status.state if status else "unknown"
        return WaitTimeoutError(
            f"instance {instance_id} is still {state} {after}",
            hint="wait longer with --timeout",
            resource=instance_id,
        )
    if not status.has_instance_profile:
        return WaitTimeoutError(
            f"instance {instance_id} is running but its SSM agent is not online {after}: "
            "it has no instance profile",
            hint="run `runctl aws setup` and create instances with --iam-instance-profile "
            "(or set aws.iam_instance_profile)",
            resource=instance_id,
        )
    return WaitTimeoutError(
        f"instance {instance_id} is running but its SSM agent is not online {after}",
        hint="check that the instance profile's role has AmazonSSMManagedInstanceCore and that "
        "the instance can reach the SSM endpoints; or wait longer with --timeout",
        resource=instance_id,
    )


@dataclass
class InstanceStatus:
    """Everything ``aws status`` shows about one instance."""

    instance_id: str
    name: str | None
    state: str
    instance_type: str
    lifecycle: str
    availability_zone: str | None
    launch_time: datetime | None
    uptime_seconds: float | None
    hourly_price_usd: float | None
    cost_so_far_usd: float | None
    price_source: str
    ssm_ping: str
    current_job: str | None
    private_ip: str | None
    public_ip: str | None
    managed: bool
    tags: dict[str, str]


def instance_status(
    ec2: Ec2,
    ssm: Callable[[], Ssm],
    prices: PriceBook,
    instance_id: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> InstanceStatus:
    """State, type, lifecycle, zone, uptime, cost so far (since the last start), SSM ping.

    ``ssm`` builds the SSM wrapper; it is called beside the EC2 call (building a client is
    mostly parsing its service model, which overlaps EC2's answer), and the SSM ping goes out
    only for a running instance, at the same time as the price lookup.
    """
    validate_instance_id(instance_id)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="status") as pool:
        agent = pool.submit(ssm)
        instance = ec2.describe_instance(instance_id)
        ping = None
        if instance.state == "running":
            ping = pool.submit(lambda: _ssm_ping(agent.result(), instance_id))
        quote = prices.for_instance(instance)
        ssm_ping = ping.result() if ping is not None else "n/a"
    uptime = uptime_seconds(instance, now())
    return InstanceStatus(
        instance_id=instance_id,
        name=instance.name,
        state=instance.state,
        instance_type=instance.instance_type,
        lifecycle=instance.lifecycle,
        availability_zone=instance.availability_zone,
        launch_time=instance.launch_time,
        uptime_seconds=uptime,
        hourly_price_usd=quote.usd_per_hour,
        cost_so_far_usd=quote.cost_for(uptime) if uptime is not None else None,
        price_source=quote.source,
        ssm_ping=ssm_ping,
        current_job=instance.tags.get(tagging.JOB),
        private_ip=instance.private_ip,
        public_ip=instance.public_ip,
        managed=tagging.is_managed(instance.tags),
        tags=dict(instance.tags),
    )


def _ssm_ping(ssm: Ssm, instance_id: str) -> str:
    agent = ssm.describe_instance_information([instance_id]).get(instance_id)
    return agent.ping_status if agent else "not registered"


def uptime_seconds(instance: Instance, now: datetime) -> float | None:
    """Seconds since the last start while running; None when not running."""
    if instance.state != "running" or instance.launch_time is None:
        return None
    return max((now - instance.launch_time).total_seconds(), 0.0)


def is_one_time_spot(ec2: Ec2, instance: Instance) -> bool:
    """True for a spot instance whose request is not ``persistent`` (AWS cannot stop those)."""
    if instance.lifecycle != "spot":
        return False
    if not instance.spot_request_id:
        return True
    return ec2.describe_spot_request_type(instance.spot_request_id) != "persistent"
