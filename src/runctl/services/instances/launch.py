"""Launching one instance: request checks, the launch spec, and the placement strategy.

Strategy (the original tool's spot path waited for a request state that does not exist; this one
uses RunInstances with ``InstanceMarketOptions`` and reads the answer): spot in every zone that
offers the type, cheapest first (the given subnet's zone first, then subnets of the same VPC in
other zones), then on-demand the same way unless fallback is off. Capacity refusals move to the
next placement; quota refusals skip the rest of that market; anything else stops. After every
failed attempt runctl looks for an instance carrying that attempt's client token and terminates
it, so a failed launch leaves nothing behind.

Idempotency: every launch carries ``runctl:request``, a key derived from the request (or the
user's ``--client-token``). Re-running the same create within :data:`REUSE_WINDOW` (any time, with
an explicit token) returns the instance the first run launched instead of launching another, and
each RunInstances call carries a ``ClientToken`` derived from that key so AWS itself refuses a
double launch of the same attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING

from runctl.aws.ec2 import (
    LIVE_STATES,
    BlockDevice,
    Ec2,
    Instance,
    InstanceTypeInfo,
    LaunchRejected,
    LaunchTokenReused,
    ProfileNotReady,
    RunSpec,
)
from runctl.errors import CapacityError, UsageError
from runctl.polling import Timing, poll_until
from runctl.services import tags as tagging
from runctl.services.instances.amis import ImageChoice, choose_image, is_accelerated
from runctl.services.instances.placement import Placement, plan_placements, suggest_instance_types

if TYPE_CHECKING:
    from runctl.aws.ssm import Ssm

REUSE_WINDOW = 600.0
DEFAULT_ROOT_GB = 30
DEFAULT_GPU_ROOT_GB = 100
DATA_DEVICE = "/dev/sdf"
#: A new instance profile can be unknown to EC2 for ~10 s; retry that long, no longer.
PROFILE_RETRIES = 6
PROFILE_RETRY_SECONDS = 3.0
#: Refusals that concern the whole market (a quota), not one zone.
MARKET_CODES = frozenset(
    {
        "MaxSpotInstanceCountExceeded",
        "SpotInstanceLimitExceeded",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
    }
)
INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9._:/=+@-]{1,64}$")


@dataclass(frozen=True)
class LaunchRequest:
    """What the user asked for; every field already resolved from flags and config."""

    instance_type: str
    project: str
    user: str
    spot: bool = False
    spot_max_price: float | None = None
    fallback: bool = True
    ami_id: str | None = None
    ami_source: str = "--ami-id"
    key_name: str | None = None
    security_group: str | None = None
    subnet_id: str | None = None
    root_volume_gb: int | None = None
    data_volume_gb: int | None = None
    iam_instance_profile: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    job_id: str | None = None
    client_token: str | None = None
    force: bool = False
    max_instances: int = 10
    remote_root: str = "/opt/runctl"


@dataclass
class Attempt:
    """One placement tried (or skipped), and what came of it."""

    market: str
    availability_zone: str | None
    subnet_id: str | None
    outcome: str
    code: str | None = None
    message: str | None = None
    instance_id: str | None = None
    spot_price: float | None = None
    cleaned_up: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = self.availability_zone or "any zone"
        detail = f": {self.code}" if self.code else ""
        return f"{self.market} in {where} -> {self.outcome}{detail}"


@dataclass
class LaunchResult:
    """The instance launched (None for a dry run), what was tried, and what to warn about."""

    instance: Instance | None
    instance_type: InstanceTypeInfo
    image: ImageChoice | None
    attempts: list[Attempt]
    request_key: str
    reused: bool = False
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)


class NoCapacityError(CapacityError):
    """Every placement was refused; carries the attempts so JSON output can list them."""

    def __init__(self, message: str, *, attempts: list[Attempt], hint: str, resource: str):
        super().__init__(message, hint=hint, resource=resource)
        self.attempts = attempts

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["attempts"] = [vars(a) for a in self.attempts]
        return data


Events = Callable[[str], None]


def validate_request(request: LaunchRequest) -> None:
    """Check the request before any AWS call; UsageError (exit 2) on the first problem."""
    if not INSTANCE_TYPE_RE.match(request.instance_type):
        raise UsageError(
            f"{request.instance_type!r} is not an instance type", hint="e.g. t3.micro, g5.xlarge"
        )
    if request.spot_max_price is not None and (not request.spot or request.spot_max_price <= 0):
        raise UsageError(
            "--spot-max-price needs --spot and a price above 0 (USD per hour)",
            hint="e.g. --spot --spot-max-price 0.5",
        )
    for label, size in (
        ("--root-volume-size", request.root_volume_gb),
        ("--data-volume-size", request.data_volume_gb),
    ):
        if size is not None and not 1 <= size <= 16384:
            raise UsageError(f"{label} {size}: must be between 1 and 16384 GB")
    if request.ami_id and not re.match(r"^ami-[0-9a-f]{8,17}$", request.ami_id):
        raise UsageError(f"{request.ami_id!r} is not an AMI id (ami-...)")
    if request.security_group and not request.security_group.startswith("sg-"):
        raise UsageError(f"--security-group {request.security_group!r}: give the group id (sg-...)")
    if request.subnet_id and not request.subnet_id.startswith("subnet-"):
        raise UsageError(f"--subnet-id {request.subnet_id!r}: give the id (subnet-...)")
    if request.client_token is not None and not TOKEN_RE.match(request.client_token):
        raise UsageError(
            "--client-token: 1 to 64 characters of letters, digits and ._:/=+@-",
            resource=request.client_token,
        )


def resolve_instance_type(ec2: Ec2, name: str) -> InstanceTypeInfo:
    """DescribeInstanceTypes for ``name``; UsageError with the nearest valid names on a typo."""
    info = ec2.describe_instance_type(name)
    if info is not None:
        return info
    names = sorted({t for t, _ in ec2.describe_instance_type_offerings()})
    close = suggest_instance_types(name, names)
    raise UsageError(
        f"instance type {name!r} does not exist in {ec2.region}",
        hint=f"did you mean {', '.join(close)}?"
        if close
        else "see `aws ec2 describe-instance-types`",
        resource=name,
    )


def request_key(request: LaunchRequest, region: str) -> str:
    """The idempotency key: the user's client token, or a hash of everything that was asked."""
    if request.client_token:
        return request.client_token
    fields = {
        "region": region,
        **{k: v for k, v in vars(request).items() if k not in ("force", "max_instances")},
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
    return f"r-{digest[:24]}"


def attempt_token(key: str, placement: Placement, generation: int, window: int) -> str:
    """The ClientToken of one RunInstances call: same request, placement and window, same token."""
    raw = f"{key}|{placement.market}|{placement.availability_zone}|{placement.subnet_id}"
    digest = hashlib.sha256(f"{raw}|{generation}|{window}".encode()).hexdigest()
    return f"runctl-{digest[:40]}"


def find_reusable(
    ec2: Ec2, key: str, now: datetime, *, explicit: bool
) -> tuple[Instance | None, int]:
    """An instance an identical earlier request launched, and how many such launches exist.

    Only pending/running instances launched within :data:`REUSE_WINDOW` count, or any live one
    when the user gave the token explicitly.
    """
    found = ec2.describe_instances(filters={f"tag:{tagging.REQUEST}": [key]})
    states = LIVE_STATES if explicit else ("pending", "running")
    reusable = [
        i for i in found if i.state in states and (explicit or _age_seconds(i, now) <= REUSE_WINDOW)
    ]
    reusable.sort(key=lambda i: _age_seconds(i, now))
    return (reusable[0] if reusable else None), len(found)


def check_instance_limit(ec2: Ec2, limit: int) -> None:
    """CapacityError (exit 5) when ``limit`` runctl-managed instances are already running."""
    running = ec2.describe_instances(
        filters={**tagging.managed_filters(), "instance-state-name": ["pending", "running"]}
    )
    if len(running) >= limit:
        raise CapacityError(
            f"{len(running)} runctl-managed instances are already running in {ec2.region} "
            f"(aws.max_instances = {limit})",
            hint="terminate some (`runctl resources list`), raise aws.max_instances, "
            "or pass --force",
        )


def block_devices(
    request: LaunchRequest, info: InstanceTypeInfo, choice: ImageChoice
) -> tuple[BlockDevice, ...]:
    """The root volume on the AMI's real root device (gp3) and the optional data volume."""
    image = choice.image
    size = request.root_volume_gb or (
        DEFAULT_GPU_ROOT_GB if is_accelerated(info) else DEFAULT_ROOT_GB
    )
    if image.root_volume_gb and size < image.root_volume_gb:
        if request.root_volume_gb:
            raise UsageError(
                f"--root-volume-size {size}: AMI {image.image_id} needs at least "
                f"{image.root_volume_gb} GB",
                resource=image.image_id,
            )
        size = image.root_volume_gb
    devices = [BlockDevice(image.root_device_name, size)]
    if request.data_volume_gb:
        devices.append(BlockDevice(DATA_DEVICE, request.data_volume_gb))
    return tuple(devices)


def render_user_data(request: LaunchRequest) -> str:
    """The bootstrap script: runctl's root directory and the data volume, nothing else.

    Values are shell-quoted (the root) or integers, whatever the config held: the script runs
    as root at boot.
    """
    template = resources.files("runctl").joinpath("data/user-data.sh").read_text("utf-8")
    return template.replace("__REMOTE_ROOT__", shlex.quote(request.remote_root)).replace(
        "__DATA_VOLUME_GB__", str(int(request.data_volume_gb or 0))
    )


def launch_instance(
    ec2: Ec2,
    ssm: Ssm,
    request: LaunchRequest,
    *,
    dry_run: bool = False,
    confirm_running: bool = False,
    timeout: float = 600.0,
    timing: Timing | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_event: Events | None = None,
) -> LaunchResult:
    """Launch one instance for ``request`` (or, with ``dry_run``, check that it would be allowed).

    With ``confirm_running`` each launch is watched until it leaves ``pending``: an instance that
    AWS terminates at once for lack of capacity counts as a failed attempt. Returns the
    LaunchResult. Raises UsageError (bad request or type), AuthError (dry run denied),
    NoCapacityError (every placement refused; nothing left running), CapacityError (instance
    limit), and the translated AWS error for anything else, after cleaning up.
    """
    emit = on_event or (lambda _message: None)
    validate_request(request)
    info = resolve_instance_type(ec2, request.instance_type)
    started = now()
    key = request_key(request, ec2.region)
    existing, generation = find_reusable(ec2, key, started, explicit=bool(request.client_token))
    if existing is not None:
        attempt = Attempt(
            existing.lifecycle,
            existing.availability_zone,
            existing.subnet_id,
            "reused",
            instance_id=existing.instance_id,
            message="an identical create already launched it",
        )
        return LaunchResult(existing, info, None, [attempt], key, reused=True, dry_run=dry_run)
    if not request.force:
        check_instance_limit(ec2, request.max_instances)
    choice = choose_image(ec2, ssm, info, ami_id=request.ami_id, source=request.ami_source)
    result = LaunchResult(None, info, choice, [], key, dry_run=dry_run)
    if not request.iam_instance_profile:
        result.warnings.append(
            "no instance profile: SSM and training will not work on this instance "
            "(run `runctl aws setup`, or pass --iam-instance-profile)"
        )
    placements = plan_placements(ec2, request, info)
    base = RunSpec(
        instance_type=request.instance_type,
        image_id=choice.image.image_id,
        client_token="",
        block_devices=block_devices(request, info, choice),
        tags={**_tags(request, started), tagging.REQUEST: key},
        user_data=render_user_data(request),
        security_group_ids=(request.security_group,) if request.security_group else (),
        key_name=request.key_name,
        iam_instance_profile=request.iam_instance_profile,
    )
    if dry_run:
        first = placements[0]
        ec2.check_run_instances(_spec_for(base, first, request, "dry-run"))
        result.attempts.append(
            Attempt(
                first.market,
                first.availability_zone,
                first.subnet_id,
                "allowed",
                spot_price=first.spot_price,
            )
        )
        return result
    window = 0 if request.client_token else int(started.timestamp() // REUSE_WINDOW)
    tokens: list[str] = []
    try:
        for placement in placements:
            token = attempt_token(key, placement, generation, window)
            launched = _try_placement(
                ec2,
                _spec_for(base, placement, request, token),
                placement,
                key,
                tokens,
                result.attempts,
                emit,
                confirm_running=confirm_running,
                timeout=timeout,
                timing=timing,
            )
            if launched is not None:
                result.instance = launched
                return result
    except KeyboardInterrupt:
        _clean_up(ec2, key, tokens)
        raise
    raise _no_capacity(request, ec2.region, result.attempts)


def _try_placement(
    ec2: Ec2,
    spec: RunSpec,
    placement: Placement,
    key: str,
    tokens: list[str],
    attempts: list[Attempt],
    emit: Events,
    *,
    confirm_running: bool,
    timeout: float,
    timing: Timing | None,
) -> Instance | None:
    record = Attempt(
        placement.market,
        placement.availability_zone,
        placement.subnet_id,
        "",
        spot_price=placement.spot_price,
    )
    skipped = {a.market for a in attempts if a.code in MARKET_CODES}
    if placement.market in skipped:
        return None
    if placement.too_expensive(spec.spot_max_price):
        record.outcome, record.code = "skipped", "SpotMaxPriceTooLow"
        record.message = f"spot price {placement.spot_price} is above --spot-max-price"
        attempts.append(record)
        return None
    tokens.append(spec.client_token)
    emit(f"launching {spec.instance_type} ({placement.describe()})")
    try:
        instance = _run_when_profile_ready(ec2, spec, timing)
    except LaunchRejected as exc:
        record.outcome, record.code, record.message = "no-capacity", exc.code, exc.aws_message
        record.cleaned_up = _clean_up(ec2, key, [spec.client_token])
        attempts.append(record)
        emit(f"{placement.describe()}: {exc.code}")
        return None
    except LaunchTokenReused:
        instance = _launched_with(ec2, key, spec.client_token)
    except BaseException:
        _clean_up(ec2, key, [spec.client_token])
        raise
    if confirm_running:
        instance = _settle(ec2, instance, timeout, timing)
    if instance.state in ("shutting-down", "terminated"):
        record.outcome = "no-capacity"
        record.code = instance.state_reason_code or instance.state
        record.message = instance.state_reason or "terminated at launch"
        record.instance_id = instance.instance_id
        attempts.append(record)
        emit(f"{placement.describe()}: {record.code}")
        return None
    record.outcome, record.instance_id = "launched", instance.instance_id
    attempts.append(record)
    return instance


def _run_when_profile_ready(ec2: Ec2, spec: RunSpec, timing: Timing | None) -> Instance:
    """RunInstances, retried while a just-created instance profile propagates through IAM."""
    timing = timing or Timing()
    for _ in range(PROFILE_RETRIES):
        try:
            return ec2.run_instances(spec)
        except ProfileNotReady:
            timing.sleep(PROFILE_RETRY_SECONDS)
    return ec2.run_instances(spec)


def _spec_for(base: RunSpec, placement: Placement, request: LaunchRequest, token: str) -> RunSpec:
    spot = placement.market == "spot"
    return replace(
        base,
        client_token=token,
        spot=spot,
        spot_max_price=request.spot_max_price if spot else None,
        availability_zone=placement.availability_zone,
        subnet_id=placement.subnet_id,
    )


def _tags(request: LaunchRequest, created: datetime) -> dict[str, str]:
    return tagging.resource_tags(
        project=request.project,
        user=request.user,
        name=request.name or f"runctl-{request.project}",
        created=created,
        job=request.job_id,
        extra=request.tags,
    )


def _settle(ec2: Ec2, instance: Instance, timeout: float, timing: Timing | None) -> Instance:
    """Watch a new instance until it leaves ``pending`` (or ``timeout`` passes)."""
    if instance.state != "pending":
        return instance

    def check() -> Instance | None:
        current = ec2.describe_instance(instance.instance_id)
        return None if current.state == "pending" else current

    return poll_until(check, timeout=timeout, timing=timing) or instance


def _launched_with(ec2: Ec2, key: str, token: str) -> Instance:
    for instance in ec2.describe_instances(filters={f"tag:{tagging.REQUEST}": [key]}):
        if instance.client_token == token:
            return instance
    raise LaunchTokenReused(token)


def _clean_up(ec2: Ec2, key: str, tokens: list[str]) -> list[str]:
    """Terminate any live instance launched with one of ``tokens``; returns their ids."""
    if not tokens:
        return []
    leftovers = [
        i.instance_id
        for i in ec2.describe_instances(filters={f"tag:{tagging.REQUEST}": [key]})
        if i.client_token in tokens and i.state in LIVE_STATES
    ]
    if leftovers:
        ec2.terminate_instances(leftovers)
    return leftovers


def _no_capacity(request: LaunchRequest, region: str, attempts: list[Attempt]) -> NoCapacityError:
    tried = "; ".join(a.describe() for a in attempts) or "no zone offers it"
    if request.spot and not request.fallback:
        hint = "drop --no-fallback to fall back to on-demand, or try another type or region"
    else:
        hint = "try another instance type or region, or retry later"
    return NoCapacityError(
        f"no capacity for {request.instance_type} in {region}: tried {tried}; "
        "nothing was left running",
        attempts=attempts,
        hint=hint,
        resource=request.instance_type,
    )


def _age_seconds(instance: Instance, now: datetime) -> float:
    created = instance.tags.get(tagging.CREATED)
    start: datetime | None = instance.launch_time
    if created:
        with contextlib.suppress(ValueError):
            start = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if start is None:
        return float("inf")
    return (now - start).total_seconds()
