"""Launching instances: N of one spec, each through the placement strategy.

Strategy (the original tool's spot path waited for a request state that does not exist; this one
uses RunInstances with ``InstanceMarketOptions`` and reads the answer): spot in every zone that
offers the type, cheapest first (the given subnet's zone first, then subnets of the same VPC in
other zones), then on-demand the same way unless fallback is off. Capacity refusals move to the
next placement, which is not tried again in the same run; quota refusals skip the rest of that
market; anything else stops. After every failed attempt runctl looks for an instance carrying
that attempt's client token and terminates it, so a failed launch leaves nothing behind.

``count`` instances are placed one RunInstances call each, all through the same strategy: they
fill the cheapest spot zone that has capacity, spill over to the next zones, then to on-demand.
With ``confirm_running`` they are launched first and then watched together until they leave
``pending``; one that AWS terminates at once for lack of capacity counts as a failed attempt and
its slot is placed again elsewhere. When fewer than ``count`` can be placed, everything this run
launched is terminated and :class:`NoCapacityError` (exit 5) lists what was tried, unless
``allow_partial`` keeps what was placed.

Idempotency (:mod:`runctl.services.instances.launch_request`): every RunInstances call carries a
``ClientToken``; only an explicit ``--client-token`` returns instances an earlier run launched.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, TypeVar

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
from runctl.services.instances.launch_request import (
    LaunchRequest,
    attempt_token,
    check_instance_limit,
    launch_order,
    launched_by_token,
    request_key,
    resolve_instance_type,
    validate_request,
)
from runctl.services.instances.placement import Placement, plan_placements

if TYPE_CHECKING:
    from runctl.aws.ssm import Ssm

T = TypeVar("T")
DEFAULT_ROOT_GB = 30
DEFAULT_GPU_ROOT_GB = 100
DATA_DEVICE = "/dev/sdf"
#: A new instance profile (or its role) can stay unknown to EC2 for a while: IAM is eventually
#: consistent, and other tools wait up to about two minutes. Retry with backoff that long.
PROFILE_WAIT_SECONDS = 120.0
PROFILE_TIMING = Timing(interval=2.0, max_interval=20.0, backoff=2.0)
#: Refusals that concern the whole market (a quota), not one zone.
MARKET_CODES = frozenset(
    {
        "MaxSpotInstanceCountExceeded",
        "SpotInstanceLimitExceeded",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
    }
)
GONE_AT_LAUNCH = ("shutting-down", "terminated")


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
    """The instances launched (none for a dry run), what was tried, and what to warn about."""

    instances: list[Instance]
    instance_type: InstanceTypeInfo
    image: ImageChoice | None
    attempts: list[Attempt]
    request_key: str
    count: int = 1
    reused: bool = False
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def instance(self) -> Instance | None:
        """The first instance (the only one of a single launch)."""
        return self.instances[0] if self.instances else None


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
    """The bootstrap script: runctl's root directory and the data volume, nothing else."""
    return bootstrap_script(request.remote_root, request.data_volume_gb or 0)


def bootstrap_script(remote_root: str, data_volume_gb: int = 0) -> str:
    """``data/user-data.sh`` for ``remote_root`` and a data volume of ``data_volume_gb`` (0:
    none). Values are shell-quoted (the root) or integers, whatever the config held: the script
    runs as root at boot."""
    template = resources.files("runctl").joinpath("data/user-data.sh").read_text("utf-8")
    return template.replace("__REMOTE_ROOT__", shlex.quote(remote_root)).replace(
        "__DATA_VOLUME_GB__", str(int(data_volume_gb))
    )


def launch_instances(
    ec2: Ec2,
    ssm: Ssm,
    request: LaunchRequest,
    *,
    count: int = 1,
    allow_partial: bool = False,
    dry_run: bool = False,
    confirm_running: bool = False,
    timeout: float = 600.0,
    timing: Timing | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_event: Events | None = None,
) -> LaunchResult:
    """Launch ``count`` instances for ``request`` (or, with ``dry_run``, check that it would be
    allowed).

    Returns the LaunchResult. Raises UsageError (bad request or type), AuthError (dry run denied),
    NoCapacityError (fewer than ``count`` placed and not ``allow_partial``; nothing this run
    launched is left running), CapacityError (instance limit), and the translated AWS error for
    anything else, after cleaning up.
    """
    emit = on_event or (lambda _message: None)
    validate_request(request, count)
    info = resolve_instance_type(ec2, request.instance_type)
    started = now()
    key = request_key(request)
    existing, generation = launched_by_token(ec2, key) if request.client_token else ([], 0)
    if existing and (len(existing) >= count or dry_run):
        return _reused(existing, info, key, count, dry_run)
    if not request.force:
        check_instance_limit(ec2, request.max_instances, count - len(existing))
    choice = choose_image(ec2, ssm, info, ami_id=request.ami_id, source=request.ami_source)
    result = _reused(existing, info, key, count, dry_run)
    result.image, result.reused = choice, False
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
        dry_spec = _spec_for(base, first, request, "dry-run")
        when_profile_ready(lambda: ec2.check_run_instances(dry_spec), timing, emit)
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
    fleet = _Fleet(ec2, base, request, key, generation, result.attempts, emit, timing)
    try:
        fleet.fill(count - len(existing), placements, confirm_running=confirm_running,
                   timeout=timeout)  # fmt: skip
    except BaseException:
        fleet.clean_up()
        raise
    result.instances = sorted([*result.instances, *fleet.placed], key=launch_order)
    placed = len(result.instances)
    if placed == count:
        return result
    if allow_partial and fleet.placed:
        result.warnings.append(
            f"placed {placed} of {count} instances; no placement had capacity for the rest "
            "(--allow-partial keeps them)"
        )
        return result
    raise _no_capacity(request, ec2.region, result.attempts, count, placed, fleet.clean_up())


class _Fleet:
    """The instances one invocation places, the client tokens it used, and the placements that
    refused (not tried again in this run)."""

    def __init__(
        self,
        ec2: Ec2,
        base: RunSpec,
        request: LaunchRequest,
        key: str,
        generation: int,
        attempts: list[Attempt],
        emit: Events,
        timing: Timing | None,
    ) -> None:
        self.ec2, self.base, self.request, self.key = ec2, base, request, key
        self.generation = generation
        self.attempts = attempts
        self.emit = emit
        self.timing = timing
        self.tokens: list[str] = []
        self.placed: list[Instance] = []
        self.refused: set[Placement] = set()
        self.launched: dict[str, tuple[Placement, Attempt]] = {}
        self.slots = 0

    def fill(
        self, wanted: int, placements: list[Placement], *, confirm_running: bool, timeout: float
    ) -> None:
        """Place instances until ``wanted`` are placed or every placement refused."""
        while len(self.placed) < wanted:
            batch: list[Instance] = []
            for _ in range(wanted - len(self.placed)):
                instance = self._place_one(placements)
                if instance is None:
                    break
                batch.append(instance)
            if not batch:
                return
            for instance in self._settle(batch, timeout) if confirm_running else batch:
                self._accept(instance)

    def clean_up(self) -> list[str]:
        """Terminate every live instance this run launched; returns their ids."""
        return _clean_up(self.ec2, self.key, self.tokens)

    def _place_one(self, placements: list[Placement]) -> Instance | None:
        slot = self.slots
        self.slots += 1
        for placement in placements:
            if placement in self.refused:
                continue
            instance = self._try(placement, slot)
            if instance is not None:
                return instance
        return None

    def _try(self, placement: Placement, slot: int) -> Instance | None:
        token = attempt_token(self.key, placement, self.generation, slot)
        spec = _spec_for(self.base, placement, self.request, token)
        record = Attempt(
            placement.market,
            placement.availability_zone,
            placement.subnet_id,
            "",
            spot_price=placement.spot_price,
        )
        if placement.market in {a.market for a in self.attempts if a.code in MARKET_CODES}:
            self.refused.add(placement)
            return None
        if placement.too_expensive(spec.spot_max_price):
            record.outcome, record.code = "skipped", "SpotMaxPriceTooLow"
            record.message = f"spot price {placement.spot_price} is above --spot-max-price"
            self.attempts.append(record)
            self.refused.add(placement)
            return None
        self.tokens.append(token)
        self.emit(f"launching {spec.instance_type} ({placement.describe()})")
        try:
            instance = when_profile_ready(lambda: self.ec2.run_instances(spec), self.timing,
                                          self.emit)  # fmt: skip
        except LaunchRejected as exc:
            record.outcome, record.code, record.message = "no-capacity", exc.code, exc.aws_message
            record.cleaned_up = _clean_up(self.ec2, self.key, [token])
            self.attempts.append(record)
            self.refused.add(placement)
            self.emit(f"{placement.describe()}: {exc.code}")
            return None
        except LaunchTokenReused:
            instance = _launched_with(self.ec2, self.key, token)
        record.outcome, record.instance_id = "launched", instance.instance_id
        self.attempts.append(record)
        self.launched[instance.instance_id] = (placement, record)
        return instance

    def _settle(self, batch: list[Instance], timeout: float) -> list[Instance]:
        """Watch new instances together until none is ``pending`` (or ``timeout`` passes)."""
        current = {i.instance_id: i for i in batch}

        def check() -> list[Instance] | None:
            waiting = [i for i, inst in current.items() if inst.state == "pending"]
            if waiting:
                for instance in self.ec2.describe_instances(instance_ids=waiting):
                    current[instance.instance_id] = instance
            return None if any(i.state == "pending" for i in current.values()) else []

        poll_until(check, timeout=timeout, timing=self.timing)
        return list(current.values())

    def _accept(self, instance: Instance) -> None:
        if instance.state not in GONE_AT_LAUNCH:
            self.placed.append(instance)
            return
        placement, record = self.launched[instance.instance_id]
        record.outcome = "no-capacity"
        record.code = instance.state_reason_code or instance.state
        record.message = instance.state_reason or "terminated at launch"
        self.refused.add(placement)
        self.emit(f"{placement.describe()}: {record.code}")


def when_profile_ready(
    call: Callable[[], T], timing: Timing | None = None, emit: Events | None = None
) -> T:
    """``call()`` (a RunInstances, real or dry run), retried with backoff for up to
    :data:`PROFILE_WAIT_SECONDS` while EC2 does not yet know the instance profile; then the
    last ProfileNotReady (exit 6) goes up."""
    timing = timing or Timing()
    deadline = timing.clock() + PROFILE_WAIT_SECONDS
    interval = PROFILE_TIMING.interval
    while True:
        try:
            return call()
        except ProfileNotReady as exc:
            remaining = deadline - timing.clock()
            if remaining <= 0:
                raise
            if emit is not None:
                emit(f"instance profile {exc.resource} is not visible to EC2 yet; retrying")
            timing.sleep(min(interval, remaining))
            interval = min(interval * PROFILE_TIMING.backoff, PROFILE_TIMING.max_interval)


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


def _reused(
    existing: list[Instance], info: InstanceTypeInfo, key: str, count: int, dry_run: bool
) -> LaunchResult:
    """The instances an earlier run with this client token launched, returned as they are."""
    attempts = [
        Attempt(
            i.lifecycle,
            i.availability_zone,
            i.subnet_id,
            "reused",
            instance_id=i.instance_id,
            message=f"launched earlier with client token {key}",
        )
        for i in existing
    ]
    return LaunchResult(
        list(existing), info, None, attempts, key, count=count, reused=bool(existing),
        dry_run=dry_run,
    )  # fmt: skip


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


def _no_capacity(
    request: LaunchRequest,
    region: str,
    attempts: list[Attempt],
    count: int,
    placed: int,
    terminated: list[str],
) -> NoCapacityError:
    tried = "; ".join(a.describe() for a in attempts if a.outcome != "reused")
    if request.spot and not request.fallback:
        hint = "drop --no-fallback to fall back to on-demand, or try another type or region"
    else:
        hint = "try another instance type or region, or retry later"
    if count > 1:
        hint += "; --allow-partial keeps the instances that could be placed"
        what = f"no capacity for {count} {request.instance_type} in {region} (placed {placed})"
    else:
        what = f"no capacity for {request.instance_type} in {region}"
    undone = f"; terminated {', '.join(terminated)}" if terminated else ""
    return NoCapacityError(
        f"{what}: tried {tried or 'no zone offers it'}{undone}; nothing was left running",
        attempts=attempts,
        hint=hint,
        resource=request.instance_type,
    )
