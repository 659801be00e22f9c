"""What ``aws create`` asks for, checked before any AWS call, and the keys that make it idempotent.

Idempotency stays where AWS puts it (the RunInstances ``ClientToken``): every run of ``aws create``
launches new instances. Each invocation has a **request key** -- the user's ``--client-token``, or
a fresh random key -- carried by every instance it launches as the ``runctl:request`` tag, and each
RunInstances call carries a ``ClientToken`` derived from that key, the slot and the placement, so
botocore's retries of one call never launch twice. Only an explicit ``--client-token`` looks back:
the instances that token launched (every one of a ``--count N`` launch) are returned instead of
launching again (:func:`launched_by_token`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runctl.aws.ec2 import LIVE_STATES
from runctl.config import AwsSettings
from runctl.errors import CapacityError, UsageError
from runctl.services import tags as tagging
from runctl.services.instances.placement import Placement, suggest_instance_types

if TYPE_CHECKING:
    from runctl.aws.ec2 import Ec2, Instance, InstanceTypeInfo

INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9._:/=+@-]{1,64}$")
#: How many instances one ``aws create --count`` may ask for.
MAX_COUNT = 100


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
    #: Launch only in this zone (``aws create --volume``: where the volume is).
    availability_zone: str | None = None
    #: Try this zone first in each market (a replacement near the job's data volume).
    preferred_zone: str | None = None


def request_from_settings(
    settings: AwsSettings,
    instance_type: str,
    *,
    project: str,
    ami_from_flag: bool = False,
    spot_max_price: float | None = None,
    fallback: bool = True,
    root_volume_gb: int | None = None,
    data_volume_gb: int | None = None,
    tags: Mapping[str, str] | None = None,
    name: str | None = None,
    client_token: str | None = None,
    force: bool = False,
) -> LaunchRequest:
    """The launch request of ``aws create``: the resolved ``[aws]`` settings (flags already
    applied) plus what only the command line says. The configured spot price applies to spot
    launches only."""
    configured_price = settings.spot_max_price if settings.use_spot else None
    return LaunchRequest(
        instance_type=instance_type,
        project=project,
        user=tagging.current_user(),
        spot=settings.use_spot,
        spot_max_price=spot_max_price if spot_max_price is not None else configured_price,
        fallback=fallback,
        ami_id=settings.default_ami,
        ami_source="--ami-id" if ami_from_flag else "aws.default_ami",
        key_name=settings.key_name,
        security_group=settings.security_group,
        subnet_id=settings.subnet_id,
        root_volume_gb=root_volume_gb,
        data_volume_gb=data_volume_gb,
        iam_instance_profile=settings.iam_instance_profile,
        tags=dict(tags or {}),
        name=name,
        client_token=client_token,
        force=force,
        max_instances=settings.max_instances,
        remote_root=settings.remote_root,
    )


def validate_request(request: LaunchRequest, count: int = 1) -> None:
    """Check the request before any AWS call; UsageError (exit 2) on the first problem."""
    if not INSTANCE_TYPE_RE.match(request.instance_type):
        raise UsageError(
            f"{request.instance_type!r} is not an instance type", hint="e.g. t3.micro, g5.xlarge"
        )
    if not 1 <= count <= MAX_COUNT:
        raise UsageError(f"--count {count}: must be between 1 and {MAX_COUNT}")
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


def check_instance_limit(ec2: Ec2, limit: int, adding: int = 1) -> None:
    """CapacityError (exit 5) when ``adding`` more runctl-managed instances would take the
    running ones beyond ``limit`` (``aws.max_instances``)."""
    running = ec2.describe_instances(
        filters={**tagging.managed_filters(), "instance-state-name": ["pending", "running"]}
    )
    if len(running) + adding > limit:
        asked = f"; {adding} more asked for" if adding > 1 else ""
        raise CapacityError(
            f"{len(running)} runctl-managed instances are already running in {ec2.region} "
            f"(aws.max_instances = {limit}){asked}",
            hint="terminate some (`runctl resources list`), raise aws.max_instances, "
            "or pass --force",
        )


def request_key(request: LaunchRequest) -> str:
    """The invocation's key: the user's client token, or a fresh random one (every run of
    ``aws create`` without ``--client-token`` launches new instances)."""
    return request.client_token or f"r-{secrets.token_hex(12)}"


def attempt_token(key: str, placement: Placement, generation: int, slot: int) -> str:
    """The ClientToken of one RunInstances call: one per key, generation, slot and placement."""
    raw = f"{key}|{placement.market}|{placement.availability_zone}|{placement.subnet_id}"
    digest = hashlib.sha256(f"{raw}|{generation}|{slot}".encode()).hexdigest()
    return f"runctl-{digest[:40]}"


def launch_order(instance: Instance) -> tuple[float, str]:
    """How the instances of one launch are listed, the first time and on every rerun with its
    client token: by launch time, then id (instances launched in the same second)."""
    return (instance.launch_time.timestamp() if instance.launch_time else 0.0, instance.instance_id)


def launched_by_token(ec2: Ec2, key: str) -> tuple[list[Instance], int]:
    """The live instances (pending, running, stopping, stopped) launched with the client token
    ``key``, in :func:`launch_order`, and how many instances it ever launched (its generation:
    once they are all gone, a rerun derives new ClientTokens and launches afresh)."""
    found = ec2.describe_instances(filters={f"tag:{tagging.REQUEST}": [key]})
    live = sorted((i for i in found if i.state in LIVE_STATES), key=launch_order)
    return live, len(found)
