"""Recovery with the laptop closed: on a spot notice, the dying instance's runner launches the
instance that will run the job's next attempt (``aws train --auto-resume --detach``).

Why this mechanism, and not an EC2 Auto Scaling group of one per job (docs/reference.md,
"Recovery with the laptop closed", has the long form):

- It needs no AWS resource beyond the instance: no group, launch template or scaling to create,
  pay nothing for, find and clean up, and nothing that outlives a job by mistake. A group would
  replace the instance after *every* termination, so ``aws terminate``, ``jobs cancel``, a
  finished job and ``--terminate-on-finish`` would each first have to detach or scale the group
  to 0 (TerminateInstanceInAutoScalingGroup with ShouldDecrementDesiredCapacity) -- a second
  source of truth about whether the job should run, racing the first.
- The runner already sees the notice (it must, to commit the final checkpoint), knows the job
  record, and has two minutes: RunInstances takes about a second, and the successor boots while
  the old instance is still committing, so the boot is hidden in the notice window.
- What it does not cover: an instance lost *without* a notice (hardware failure, a notice the
  runner never saw because it was dead). A group would. Such a job ends ``lost`` with its
  checkpoint committed, and ``jobs show`` says to resume it with ``checkpoint resume``.

The steps, all from the dying runner, none of which may stop the final commit:

1. ``attempt + 1 <= max_restarts`` or nothing is launched (the attempt number is the restart
   count across every instance);
2. the next attempt is **claimed**: ``attempts/<N+1>.json`` created with ``If-None-Match: *``
   (:class:`runctl.job.attempts.AttemptLog`); a lost race launches nothing;
3. RunInstances with what job.json's ``recovery`` recorded at the job's start (the laptop's own
   launch parameters, tags included, so the instance role's tag-scoped grant allows it): spot in
   another zone first, then the same zone, then on-demand; the user data is the bootstrap plus
   the start command of attempt N+1, its runtime bundle fetched by a presigned URL made *now*
   with the instance role (it lives :data:`PRESIGN_SECONDS`; the successor uses it at boot,
   seconds to minutes later -- a URL written at the job's start would long have expired);
4. the successor's runner waits (:func:`wait_for_previous`) until attempt N's status.json is
   final, or the notice's deadline has passed, and starts only if attempt N ended
   ``interrupted`` -- a job that succeeded, failed or was cancelled in the meantime ends exactly
   once, and the successor terminates itself.

Python 3.9, standard library and boto3 only (shipped in the runtime bundle).
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from runctl.job.attempts import AttemptClaimed, AttemptEntry, AttemptLog, aws_error_code
from runctl.job.record import JobRecord
from runctl.job.spec import (
    CANCELLED,
    INTERRUPTED,
    UTC,
    JobSpec,
    JobStatus,
    format_time,
    parse_time,
    runtime_key,
)

#: Placeholders of the successor's user data, filled on the instance (see :func:`user_data`).
URL_SLOT = "__RUNCTL_RUNTIME_URL__"
ATTEMPT_SLOT = "__RUNCTL_ATTEMPT__"
WAIT_UNTIL_SLOT = "__RUNCTL_WAIT_UNTIL__"
#: The successor's runtime URL: it is used at boot, within minutes of the launch.
PRESIGN_SECONDS = 15 * 60
#: How long after the notice's deadline a successor still waits for the last attempt's final
#: status (the old instance is gone by then; whatever it committed is what there is).
DEADLINE_MARGIN_SECONDS = 30.0
#: Capacity answers after which the next placement is tried.
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded",
        "InsufficientHostCapacity",
        "Unsupported",
    }
)
SUCCESSOR_OF = "runctl:successor-of"
CREATED = "runctl:created"


def user_data(template: str, runtime_url: str, attempt: int, wait_until: str) -> str:
    """The successor's user data: ``template`` (rendered by runctl at the job's start) with the
    runtime URL, the attempt and the deadline filled in, each quoted for bash."""
    return (
        template.replace(URL_SLOT, shlex.quote(runtime_url))
        .replace(ATTEMPT_SLOT, str(int(attempt)))
        .replace(WAIT_UNTIL_SLOT, shlex.quote(wait_until))
    )


def placements(recovery: dict[str, Any], zone: str | None) -> list[tuple[str, str | None]]:
    """(market, zone) in the order they are tried: spot in the other zones, spot here, then
    on-demand (when fallback is allowed); a job pinned to a subnet has one zone."""
    params = recovery.get("run_instances") or {}
    spot = "InstanceMarketOptions" in params
    order: list[tuple[str, str | None]] = []
    if spot:
        if params.get("SubnetId"):
            order.append(("spot", None))
        else:
            zones = [z for z in recovery.get("zones") or [] if z != zone]
            order += [("spot", z) for z in zones] + [("spot", zone)]
    if not spot or recovery.get("fallback", True):
        order.append(("on-demand", None))
    return order


def run_params(
    recovery: dict[str, Any],
    market: str,
    zone: str | None,
    *,
    token: str,
    name: str,
    predecessor: str,
    data: str,
) -> dict[str, Any]:
    """RunInstances parameters for one placement, from the job's recorded ``run_instances``."""
    params = dict(recovery["run_instances"])
    params["ClientToken"] = token
    params["UserData"] = data
    extra = [
        {"Key": "Name", "Value": name},
        {"Key": SUCCESSOR_OF, "Value": predecessor},
        {"Key": CREATED, "Value": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
    ]
    specs = []
    for spec in params.get("TagSpecifications") or []:
        if market != "spot" and spec["ResourceType"] == "spot-instances-request":
            continue
        own = [t for t in spec["Tags"] if t["Key"] not in {e["Key"] for e in extra}]
        specs.append({"ResourceType": spec["ResourceType"], "Tags": own + extra})
    params["TagSpecifications"] = specs
    if market != "spot":
        params.pop("InstanceMarketOptions", None)
    if zone and not params.get("SubnetId"):
        params["Placement"] = {"AvailabilityZone": zone}
    return params


class Succession:
    """Launches attempt N+1's instance on a spot notice; :meth:`on_notice` never raises."""

    def __init__(
        self,
        spec: JobSpec,
        attempt: int,
        instance_id: str,
        *,
        s3: Any,
        ec2: Callable[[], Any],
        zone: str | None,
        say: Callable[[str], None],
    ) -> None:
        location = spec.location
        assert location is not None
        self.spec = spec
        self.location = location
        self.attempt = attempt
        self.instance_id = instance_id
        self.s3 = s3
        self.ec2 = ec2
        self.zone = zone
        self.say = say
        self.log = AttemptLog(location, s3)
        self.launched: str | None = None
        self._client: Any = None

    def prepare(self) -> None:
        """Build the EC2 client now (loading its service model takes about a second), so that
        a notice does not wait for it; run in a background thread at the attempt's start."""
        with contextlib.suppress(Exception):
            self._client = self._client or self.ec2()

    def on_notice(self, deadline: datetime) -> None:
        """Claim the next attempt and launch its instance (everything that fails is logged)."""
        try:
            self.launched = self._launch(deadline)
        except Exception as exc:  # the final checkpoint matters more than the successor
            self.say(f"could not launch a successor: {type(exc).__name__}: {exc}")
            self._note(f"no successor: {exc}")

    def _launch(self, deadline: datetime) -> str | None:
        following = self.attempt + 1
        limit = self.spec.max_restarts
        if following > limit:
            self.say(f"not launching a successor: --max-restarts {limit} reached")
            self._note(f"no successor: --max-restarts {limit} reached")
            return None
        try:
            self.log.claim(AttemptEntry(attempt=following, launched_by=self.instance_id))
        except AttemptClaimed:
            self.say(f"attempt {following} is already claimed; not launching another instance")
            return None
        recovery = self.spec.recovery
        wait_until = format_time(deadline + timedelta(seconds=DEADLINE_MARGIN_SECONDS))
        data = user_data(recovery["user_data"], self._runtime_url(), following, wait_until)
        name = f"{self.spec.job_id}-a{following}"[:128]
        tried = []
        for market, zone in placements(recovery, self.zone):
            token = _token(self.spec.job_id, following, market, zone)
            params = run_params(recovery, market, zone, token=token, name=name,
                                predecessor=self.instance_id, data=data)  # fmt: skip
            try:
                client = self._client = self._client or self.ec2()
                raw = client.run_instances(**params)["Instances"][0]
            except Exception as exc:
                code = aws_error_code(exc)
                if code not in CAPACITY_CODES:
                    raise
                tried.append(f"{market} {zone or 'any zone'}: {code}")
                continue
            new_id = str(raw["InstanceId"])
            where = raw.get("Placement", {}).get("AvailabilityZone") or zone
            self.log.update(following, instance_id=new_id, availability_zone=where, market=market)
            self.say(f"launched {new_id} ({market}, {where}) for attempt {following}")
            self._note(f"attempt {following} on {new_id}")
            return new_id
        raise RuntimeError("no capacity: " + "; ".join(tried))

    def _runtime_url(self) -> str:
        """A presigned GET of the runtime bundle this runner runs from, for the successor."""
        recovery = self.spec.recovery
        from runctl.aws.s3_presign import presign_get_object

        return presign_get_object(
            self.s3,
            self.location.bucket,
            runtime_key(recovery["runtime_sha256"]),
            region=recovery.get("bucket_region") or self.spec.region or "us-east-1",
            expires=PRESIGN_SECONDS,
        )

    def _note(self, successor: str) -> None:
        try:
            self.log.update(self.attempt, successor=successor)
        except Exception as exc:
            self.say(f"could not record the successor in the attempt log: {exc}")


def wait_for_previous(
    record: JobRecord,
    attempt: int,
    wait_until: str,
    *,
    poll: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
) -> tuple[bool, str]:
    """Wait until attempt ``attempt - 1`` has its final status (or ``wait_until`` passed).

    Returns (True, why) when attempt ``attempt`` should run: the previous one ended
    ``interrupted``, or its instance is past its deadline without a final word; (False, why)
    when the job ended otherwise (succeeded, failed, cancelled) or another attempt took over.
    """
    deadline = parse_time(wait_until).timestamp()
    previous = attempt - 1
    while True:
        status = record.read_status()
        verdict = _verdict(status, previous)
        if verdict is not None:
            return verdict
        if now() >= deadline:
            return True, f"attempt {previous} did not report an end before {wait_until}"
        sleep(poll)


def _verdict(status: JobStatus | None, previous: int) -> tuple[bool, str] | None:
    if status is None:
        return None
    if status.attempt > previous:
        return False, f"attempt {status.attempt} already runs ({status.state})"
    if status.state == CANCELLED:
        return False, "the job was cancelled"
    if status.attempt < previous or not status.is_terminal:
        return None
    if status.state == INTERRUPTED:
        return True, f"attempt {previous} was interrupted"
    return False, f"attempt {previous} ended {status.state}; the job is over"


def _token(job_id: str, attempt: int, market: str, zone: str | None) -> str:
    digest = hashlib.sha256(f"{job_id}|{attempt}|{market}|{zone}".encode()).hexdigest()
    return f"runctl-{digest[:40]}"
