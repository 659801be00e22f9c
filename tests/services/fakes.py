"""In-memory fakes of runctl's AWS wrappers, for service tests (no moto, no network)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from runctl.aws.ec2 import (
    LIVE_STATES,
    Image,
    Instance,
    InstanceTypeInfo,
    LaunchRejected,
    RunSpec,
    SpotPrice,
    StateChange,
    Subnet,
)
from runctl.aws.ec2 import AvailabilityZone as Zone
from runctl.aws.ssm import ManagedInstance
from runctl.errors import NotFoundError

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
TYPES = {
    "t3.micro": InstanceTypeInfo("t3.micro", 2, 1024, ("x86_64",)),
    "t4g.small": InstanceTypeInfo("t4g.small", 2, 2048, ("arm64",)),
    "g5.xlarge": InstanceTypeInfo("g5.xlarge", 4, 16384, ("x86_64",), gpus=1, gpu_model="A10G"),
    "c5.large": InstanceTypeInfo("c5.large", 2, 4096, ("x86_64", "i386")),
}
IMAGES = {
    "ami-al2023": Image(
        "ami-al2023", "al2023-ami-2023", "2025-01-15", "/dev/xvda", "x86_64", root_volume_gb=8
    ),
    "ami-al2023arm": Image(
        "ami-al2023arm", "al2023-arm", "2025-01-15", "/dev/xvda", "arm64", root_volume_gb=8
    ),
    "ami-dl-old": Image(
        "ami-dl-old",
        "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.4 (Ubuntu 22.04) 20241015",
        "2024-10-15",
        "/dev/sda1",
        "x86_64",
        root_volume_gb=75,
    ),
    "ami-dl-new": Image(
        "ami-dl-new",
        "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.5 (Ubuntu 22.04) 20250101",
        "2025-01-01",
        "/dev/sda1",
        "x86_64",
        root_volume_gb=75,
    ),
}
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


@dataclass
class FakeEc2:
    """EC2 as the services see it. ``refuse[(market, zone)] = code`` makes launches there fail;
    ``room[(market, zone)] = n`` lets n launches there succeed, then refuses for capacity."""

    region: str = "us-east-1"
    zones: list[str] = field(default_factory=lambda: list(ZONES))
    offered: list[str] | None = None
    refuse: dict[tuple[str, str], str] = field(default_factory=dict)
    room: dict[tuple[str, str], int] = field(default_factory=dict)
    spot_prices: dict[str, float] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    subnets: list[Subnet] = field(default_factory=list)
    spot_request_types: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    launched_state: str = "pending"
    leave_partial: set[tuple[str, str]] = field(default_factory=set)
    tokens_seen: dict[str, str] = field(default_factory=dict)
    now: datetime = NOW
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def describe_instance_type(self, name: str) -> InstanceTypeInfo | None:
        self.calls.append(("DescribeInstanceTypes", name))
        return TYPES.get(name)

    def describe_instance_type_offerings(
        self, *, location_type: str = "region", instance_type: str | None = None
    ) -> list[tuple[str, str]]:
        if location_type == "region":
            return [(t, self.region) for t in TYPES] + [
                ("t3.small", self.region),
                ("t3.nano", self.region),
            ]
        return [
            (instance_type or "", z)
            for z in (self.offered if self.offered is not None else self.zones)
        ]

    def describe_images(self, *, owners: Any, name_pattern: str, architecture: str) -> list[Image]:
        found = [
            i
            for i in IMAGES.values()
            if i.name.startswith("Deep") and i.architecture == architecture
        ]
        return sorted(found, key=lambda i: i.creation_date, reverse=True)

    def describe_image(self, image_id: str) -> Image:
        if image_id not in IMAGES:
            raise NotFoundError(f"AMI {image_id} does not exist", resource=image_id)
        return IMAGES[image_id]

    def describe_availability_zones(self) -> list[Zone]:
        return [Zone(z, None, "available", "availability-zone") for z in self.zones]

    def describe_subnets(self, *, subnet_ids: Any = (), vpc_id: str | None = None) -> list[Subnet]:
        if subnet_ids:
            return [s for s in self.subnets if s.subnet_id in subnet_ids]
        return [s for s in self.subnets if s.vpc_id == vpc_id]

    def describe_spot_price_history(
        self, instance_type: str, availability_zones: Any = ()
    ) -> dict[str, SpotPrice]:
        wanted = set(availability_zones) or set(self.spot_prices)
        return {
            z: SpotPrice(instance_type, z, p, NOW)
            for z, p in self.spot_prices.items()
            if z in wanted
        }

    def describe_instances(self, *, instance_ids: Any = (), filters: Any = None) -> list[Instance]:
        self.calls.append(("DescribeInstances", dict(filters or {})))
        found = [
            i for i in self.instances.values() if not instance_ids or i.instance_id in instance_ids
        ]
        for name, values in (filters or {}).items():
            if name == "instance-state-name":
                found = [i for i in found if i.state in values]
            elif name.startswith("tag:"):
                found = [i for i in found if i.tags.get(name[4:]) in values]
        return found

    def describe_instance(self, instance_id: str) -> Instance:
        if instance_id not in self.instances:
            raise NotFoundError(f"instance {instance_id} does not exist", resource=instance_id)
        return self.instances[instance_id]

    def add(self, state: str = "running", **kw: Any) -> Instance:
        instance_id = kw.pop("instance_id", None) or f"i-{next(self._ids):017x}"
        base: dict[str, Any] = {
            "instance_type": "t3.micro",
            "lifecycle": "on-demand",
            "availability_zone": "us-east-1a",
            "image_id": "ami-al2023",
            "launch_time": self.now,
            "tags": {"runctl:managed": "true"},
        }
        base.update(kw)
        instance = Instance(instance_id=instance_id, state=state, **base)
        self.instances[instance_id] = instance
        return instance

    def run_instances(self, spec: RunSpec) -> Instance:
        market = "spot" if spec.spot else "on-demand"
        zone = spec.availability_zone or self.zones[0]
        self.calls.append(("RunInstances", spec))
        if spec.client_token in self.tokens_seen:
            return self.instances[self.tokens_seen[spec.client_token]]
        if (market, zone) in self.leave_partial:
            self.add(
                "pending",
                tags=dict(spec.tags),
                client_token=spec.client_token,
                availability_zone=zone,
            )
        code = self.refuse.get((market, zone))
        if (market, zone) in self.room:
            self.room[(market, zone)] -= 1
            code = code or ("InsufficientInstanceCapacity" if self.room[(market, zone)] < 0 else "")
        if code:
            raise LaunchRejected(code, f"no {market} capacity in {zone}")
        instance = self.add(
            self.launched_state,
            instance_type=spec.instance_type,
            lifecycle="spot" if spec.spot else "on-demand",
            availability_zone=zone,
            image_id=spec.image_id,
            tags=dict(spec.tags),
            client_token=spec.client_token,
            subnet_id=spec.subnet_id,
        )
        self.tokens_seen[spec.client_token] = instance.instance_id
        return instance

    def check_run_instances(self, spec: RunSpec) -> None:
        self.calls.append(("RunInstances(dry-run)", spec))

    def set_state(self, instance_id: str, state: str, **kw: Any) -> None:
        self.instances[instance_id] = replace(self.instances[instance_id], state=state, **kw)

    def start_instances(self, instance_id: str) -> StateChange:
        self.calls.append(("StartInstances", instance_id))
        before = self.instances[instance_id].state
        self.set_state(instance_id, "pending")
        return StateChange(instance_id, before, "pending")

    def stop_instances(self, instance_id: str) -> StateChange:
        self.calls.append(("StopInstances", instance_id))
        before = self.instances[instance_id].state
        self.set_state(instance_id, "stopping")
        return StateChange(instance_id, before, "stopping")

    def terminate_instances(self, instance_ids: Any) -> list[StateChange]:
        self.calls.append(("TerminateInstances", list(instance_ids)))
        changes = []
        for instance_id in instance_ids:
            before = self.instances[instance_id].state
            self.set_state(instance_id, "shutting-down")
            changes.append(StateChange(instance_id, before, "shutting-down"))
        return changes

    def describe_spot_request_type(self, request_id: str) -> str | None:
        return self.spot_request_types.get(request_id)

    def live(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.state in LIVE_STATES]

    def launches(self) -> list[RunSpec]:
        return [spec for name, spec in self.calls if name == "RunInstances"]


@dataclass
class FakeSsm:
    parameters: dict[str, str] = field(
        default_factory=lambda: {
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64": "ami-al2023",
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64": "ami-al2023arm",
        }
    )
    online: set[str] = field(default_factory=set)

    def get_parameter(self, name: str) -> str:
        if name not in self.parameters:
            raise NotFoundError(f"parameter {name} not found", resource=name)
        return self.parameters[name]

    def describe_instance_information(self, instance_ids: Any) -> dict[str, ManagedInstance]:
        return {i: ManagedInstance(i, "Online") for i in instance_ids if i in self.online}


class FakeClock:
    """A monotonic clock that only moves when ``sleep`` is called."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
