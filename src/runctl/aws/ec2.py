"""Typed wrapper around the EC2 API: one method per operation, dataclasses out.

Raw response dicts stop here. Pagination happens inside; every call runs under
:func:`~runctl.aws.errors.aws_errors` so failures arrive as runctl errors naming the operation and
the resource. Capacity refusals from RunInstances come out as :class:`LaunchRejected`, carrying the
AWS error code, so the launch strategy can decide where to try next.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from runctl.aws.errors import aws_errors, error_code, translate
from runctl.errors import AuthError, AwsError, CapacityError, NotFoundError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

#: RunInstances error codes that mean "no capacity or quota for this request", not "bad request".
LAUNCH_CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientFreeAddressesInSubnet",
        "Unsupported",
        "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded",
        "SpotInstanceLimitExceeded",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
    }
)
LIVE_STATES = ("pending", "running", "stopping", "stopped")


class LaunchTokenReused(AwsError):
    """RunInstances saw this client token before with other parameters: already launched."""

    def __init__(self, client_token: str):
        super().__init__(f"client token {client_token} was already used", resource=client_token)
        self.client_token = client_token


class ProfileNotReady(NotFoundError):
    """EC2 does not know the instance profile: mistyped, or just created (IAM is eventually
    consistent, so a new profile takes a few seconds to become usable)."""

    def __init__(self, profile: str, message: str):
        super().__init__(
            f"EC2 does not know instance profile {profile}: {message}",
            hint="check the name (`runctl aws setup` creates runctl-instance); "
            "a profile created seconds ago may need a moment more",
            resource=profile,
        )


class LaunchRejected(CapacityError):
    """RunInstances was refused for capacity or quota; ``code`` is AWS's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} ({code})", hint="try another type, zone or region")
        self.code = code
        self.aws_message = message


@dataclass(frozen=True)
class InstanceTypeInfo:
    """What DescribeInstanceTypes says about one instance type."""

    name: str
    vcpus: int
    memory_mib: int
    architectures: tuple[str, ...]
    gpus: int = 0
    gpu_model: str | None = None
    accelerators: int = 0


@dataclass(frozen=True)
class Image:
    """An AMI."""

    image_id: str
    name: str
    creation_date: str
    root_device_name: str
    architecture: str
    owner_id: str | None = None
    root_volume_gb: int | None = None


@dataclass(frozen=True)
class AvailabilityZone:
    name: str
    zone_id: str | None
    state: str
    zone_type: str | None


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    availability_zone: str
    available_ips: int = 0


@dataclass(frozen=True)
class SpotPrice:
    instance_type: str
    availability_zone: str
    usd_per_hour: float
    timestamp: datetime


@dataclass(frozen=True)
class Instance:
    """One EC2 instance as DescribeInstances reports it."""

    instance_id: str
    instance_type: str
    state: str
    lifecycle: str
    availability_zone: str | None
    image_id: str | None
    launch_time: datetime | None
    private_ip: str | None = None
    public_ip: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    iam_instance_profile_arn: str | None = None
    subnet_id: str | None = None
    vpc_id: str | None = None
    key_name: str | None = None
    client_token: str | None = None
    spot_request_id: str | None = None
    state_reason_code: str | None = None
    state_reason: str | None = None
    volume_ids: tuple[str, ...] = ()

    @property
    def name(self) -> str | None:
        return self.tags.get("Name")


@dataclass(frozen=True)
class StateChange:
    instance_id: str
    previous: str
    current: str


@dataclass(frozen=True)
class BlockDevice:
    """One EBS volume created at launch."""

    device_name: str
    size_gb: int
    volume_type: str = "gp3"
    delete_on_termination: bool = True


@dataclass(frozen=True)
class RunSpec:
    """Everything one RunInstances call launches (exactly one instance)."""

    instance_type: str
    image_id: str
    client_token: str
    block_devices: tuple[BlockDevice, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    user_data: str | None = None
    spot: bool = False
    spot_max_price: float | None = None
    availability_zone: str | None = None
    subnet_id: str | None = None
    security_group_ids: tuple[str, ...] = ()
    key_name: str | None = None
    iam_instance_profile: str | None = None


class Ec2:
    """The EC2 operations runctl uses, on one regional client."""

    def __init__(self, client: EC2Client):
        self.client = client
        # AWS answers InsufficientInstanceCapacity with HTTP 500, which botocore's retry modes
        # retry with backoff; the launch strategy should try the next zone at once instead.
        # The handler raises rather than returning False: before botocore 1.43.3 any non-None
        # answer to needs-retry meant "retry after that many seconds", so False retried at once,
        # without limit. An exception ends the call the same way in every version.
        client.meta.events.register(
            "needs-retry.ec2.RunInstances",
            _stop_on_capacity,
            unique_id="runctl-no-retry-on-capacity",
        )

    @property
    def region(self) -> str:
        return str(self.client.meta.region_name)

    # -- instance types, images, zones ------------------------------------------------------------

    def describe_instance_type(self, name: str) -> InstanceTypeInfo | None:
        """The type's description, or None when AWS says no such type exists."""
        try:
            response = self.client.describe_instance_types(InstanceTypes=[name])  # type: ignore[list-item]
        except ClientError as exc:
            if error_code(exc) in ("InvalidInstanceType", "InvalidParameterValue"):
                return None
            raise translate(exc, "DescribeInstanceTypes", name) from exc
        types = response.get("InstanceTypes", [])
        return _instance_type(types[0]) if types else None

    def describe_instance_type_offerings(
        self, *, location_type: str = "region", instance_type: str | None = None
    ) -> list[tuple[str, str]]:
        """(instance type, location) pairs offered here; zones with ``availability-zone``."""
        filters = [{"Name": "instance-type", "Values": [instance_type]}] if instance_type else []
        pairs: list[tuple[str, str]] = []
        with aws_errors("DescribeInstanceTypeOfferings", instance_type):
            paginator = self.client.get_paginator("describe_instance_type_offerings")
            for page in paginator.paginate(LocationType=location_type, Filters=filters):  # type: ignore[arg-type]
                pairs.extend(
                    (o["InstanceType"], o["Location"]) for o in page["InstanceTypeOfferings"]
                )
        return pairs

    def describe_images(
        self, *, owners: Sequence[str], name_pattern: str, architecture: str
    ) -> list[Image]:
        """Available images matching ``name_pattern`` (``*`` wildcards), newest first."""
        with aws_errors("DescribeImages", name_pattern):
            response = self.client.describe_images(
                Owners=list(owners),
                Filters=[
                    {"Name": "name", "Values": [name_pattern]},
                    {"Name": "architecture", "Values": [architecture]},
                    {"Name": "state", "Values": ["available"]},
                ],
            )
        images = [_image(raw) for raw in response.get("Images", [])]
        return sorted(images, key=lambda image: image.creation_date, reverse=True)

    def describe_image(self, image_id: str) -> Image:
        """One image; NotFoundError when it does not exist here."""
        with aws_errors("DescribeImages", image_id):
            response = self.client.describe_images(ImageIds=[image_id])
        images = response.get("Images", [])
        if not images:
            raise NotFoundError(
                f"AMI {image_id} does not exist in {self.region}",
                hint="check --ami-id / aws.default_ami and the region (AMIs are regional)",
                resource=image_id,
            )
        return _image(images[0])

    def describe_availability_zones(self) -> list[AvailabilityZone]:
        """The region's zones that are available (local and wavelength zones left out)."""
        with aws_errors("DescribeAvailabilityZones", self.region):
            response = self.client.describe_availability_zones(
                Filters=[{"Name": "state", "Values": ["available"]}]
            )
        zones = [
            AvailabilityZone(
                name=raw["ZoneName"],
                zone_id=raw.get("ZoneId"),
                state=raw.get("State", "available"),
                zone_type=raw.get("ZoneType"),
            )
            for raw in response.get("AvailabilityZones", [])
        ]
        return [z for z in zones if z.zone_type in (None, "availability-zone")]

    def describe_subnets(
        self, *, subnet_ids: Sequence[str] = (), vpc_id: str | None = None
    ) -> list[Subnet]:
        """Subnets by id, or all subnets of a VPC."""
        kwargs: dict[str, Any] = {}
        if subnet_ids:
            kwargs["SubnetIds"] = list(subnet_ids)
        if vpc_id:
            kwargs["Filters"] = [{"Name": "vpc-id", "Values": [vpc_id]}]
        subnets: list[Subnet] = []
        with aws_errors("DescribeSubnets", ",".join(subnet_ids) or vpc_id):
            for page in self.client.get_paginator("describe_subnets").paginate(**kwargs):
                subnets.extend(
                    Subnet(
                        subnet_id=raw["SubnetId"],
                        vpc_id=raw["VpcId"],
                        availability_zone=raw["AvailabilityZone"],
                        available_ips=raw.get("AvailableIpAddressCount", 0),
                    )
                    for raw in page["Subnets"]
                )
        return subnets

    def describe_regions(self) -> list[str]:
        """Regions enabled for this account."""
        with aws_errors("DescribeRegions"):
            response = self.client.describe_regions()
        return sorted(r["RegionName"] for r in response.get("Regions", []))

    def describe_spot_price_history(
        self,
        instance_type: str,
        availability_zones: Iterable[str] = (),
        *,
        now: datetime | None = None,
    ) -> dict[str, SpotPrice]:
        """The Linux spot price of ``instance_type`` in effect ``now`` (default: the current
        time), per zone (only ``availability_zones`` when given).

        With StartTime = EndTime = now AWS returns, per zone and product, the last price change
        before that moment, i.e. the current price, however long ago it changed; every page is
        read. (Without StartTime it returns the whole history, newest first, and one page of it
        can miss a zone whose price has been quiet for days.)
        """
        wanted = set(availability_zones)
        moment = now or datetime.now(UTC)
        kwargs: dict[str, Any] = {
            "InstanceTypes": [instance_type],
            "ProductDescriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
            "StartTime": moment,
            "EndTime": moment,
        }
        if wanted:
            kwargs["Filters"] = [{"Name": "availability-zone", "Values": sorted(wanted)}]
        latest: dict[str, SpotPrice] = {}
        with aws_errors("DescribeSpotPriceHistory", instance_type):
            paginator = self.client.get_paginator("describe_spot_price_history")
            for page in paginator.paginate(**kwargs):
                for raw in page.get("SpotPriceHistory", []):
                    zone = raw.get("AvailabilityZone", "")
                    if wanted and zone not in wanted:
                        continue
                    price = SpotPrice(
                        instance_type=raw.get("InstanceType", instance_type),
                        availability_zone=zone,
                        usd_per_hour=float(raw.get("SpotPrice", "0")),
                        timestamp=raw["Timestamp"],
                    )
                    if zone not in latest or price.timestamp > latest[zone].timestamp:
                        latest[zone] = price
        return latest

    # -- instances --------------------------------------------------------------------------------

    def describe_instances(
        self,
        *,
        instance_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Instance]:
        """Instances by id and/or filters (``{"tag:runctl:managed": ["true"]}``), all pages."""
        kwargs: dict[str, Any] = {}
        if instance_ids:
            kwargs["InstanceIds"] = list(instance_ids)
        if filters:
            kwargs["Filters"] = [{"Name": k, "Values": list(v)} for k, v in filters.items()]
        instances: list[Instance] = []
        with aws_errors("DescribeInstances", ",".join(instance_ids) or None):
            for page in self.client.get_paginator("describe_instances").paginate(**kwargs):
                for reservation in page.get("Reservations", []):
                    instances.extend(_instance(raw) for raw in reservation.get("Instances", []))
        return instances

    def describe_instance(self, instance_id: str) -> Instance:
        """One instance; NotFoundError (exit 6) when it does not exist in this region."""
        try:
            found = self.describe_instances(instance_ids=[instance_id])
        except NotFoundError:
            found = []
        if not found:
            raise NotFoundError(
                f"instance {instance_id} does not exist in {self.region}",
                hint="check the id and --region; `runctl resources list` shows runctl's instances",
                resource=instance_id,
            )
        return found[0]

    def run_instances(self, spec: RunSpec) -> Instance:
        """Launch one instance; LaunchRejected when AWS has no capacity or quota for it."""
        try:
            response = self.client.run_instances(**run_instances_params(spec))
        except CapacityRefused as exc:
            raise LaunchRejected(exc.code, exc.aws_message) from exc
        except ClientError as exc:
            code = error_code(exc)
            if code in LAUNCH_CAPACITY_CODES:
                message = str(exc.response.get("Error", {}).get("Message") or code)
                raise LaunchRejected(code, message) from exc
            if code == "IdempotentParameterMismatch":
                raise LaunchTokenReused(spec.client_token) from exc
            _raise_if_profile_not_ready(exc, spec)
            raise translate(exc, "RunInstances", spec.instance_type) from exc
        return _instance(response["Instances"][0])

    def check_run_instances(self, spec: RunSpec) -> None:
        """RunInstances with DryRun: returns when the launch would be allowed.

        Raises AuthError naming the missing permission when it would be denied, or the
        translated error for anything else AWS rejects.
        """
        try:
            self.client.run_instances(DryRun=True, **run_instances_params(spec))
        except CapacityRefused as exc:
            raise LaunchRejected(exc.code, exc.aws_message) from exc
        except ClientError as exc:
            code = error_code(exc)
            if code == "DryRunOperation":
                return
            if code == "UnauthorizedOperation":
                raise AuthError(
                    f"permission denied: your identity may not launch {spec.instance_type} "
                    "(ec2:RunInstances, and iam:PassRole for the instance profile)",
                    hint="grant ec2:RunInstances (and iam:PassRole) or use another --profile; "
                    "`aws sts decode-authorization-message` explains the encoded reason",
                    resource=spec.instance_type,
                ) from exc
            if code in LAUNCH_CAPACITY_CODES:
                raise LaunchRejected(code, str(exc)) from exc
            _raise_if_profile_not_ready(exc, spec)
            raise translate(exc, "RunInstances (dry run)", spec.instance_type) from exc
        return

    def start_instances(self, instance_id: str) -> StateChange:
        with aws_errors("StartInstances", instance_id):
            raw = self.client.start_instances(InstanceIds=[instance_id])["StartingInstances"]
        return _state_change(raw[0])

    def stop_instances(self, instance_id: str) -> StateChange:
        with aws_errors("StopInstances", instance_id):
            raw = self.client.stop_instances(InstanceIds=[instance_id])["StoppingInstances"]
        return _state_change(raw[0])

    def terminate_instances(self, instance_ids: Sequence[str]) -> list[StateChange]:
        with aws_errors("TerminateInstances", ",".join(instance_ids)):
            raw = self.client.terminate_instances(InstanceIds=list(instance_ids))
        return [_state_change(item) for item in raw["TerminatingInstances"]]

    def create_tags(self, resource_ids: Sequence[str], tags: Mapping[str, str]) -> None:
        """Add or overwrite ``tags`` on the resources."""
        with aws_errors("CreateTags", ",".join(resource_ids)):
            self.client.create_tags(
                Resources=list(resource_ids),
                Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
            )

    def describe_spot_request_type(self, request_id: str) -> str | None:
        """``one-time`` or ``persistent`` for a spot request; None when AWS does not know it."""
        try:
            response = self.client.describe_spot_instance_requests(
                SpotInstanceRequestIds=[request_id]
            )
        except ClientError as exc:
            if "NotFound" in error_code(exc):
                return None
            raise translate(exc, "DescribeSpotInstanceRequests", request_id) from exc
        requests = response.get("SpotInstanceRequests", [])
        return str(requests[0].get("Type")) if requests else None


#: How EC2 words "I do not know this instance profile (yet)": ``Value (p) for parameter
#: iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name``, the same for ``.arn``,
#: and, while the role is not yet attached as far as EC2 can see, ``IAM Instance Profile "arn:..."
#: has no associated IAM Roles``; all InvalidParameterValue.
PROFILE_NOT_READY_RE = re.compile(r"iamInstanceProfile|instance profile", re.IGNORECASE)


def _raise_if_profile_not_ready(exc: ClientError, spec: RunSpec) -> None:
    """ProfileNotReady when RunInstances refused ``spec`` for its instance profile."""
    message = str(exc.response.get("Error", {}).get("Message") or "")
    if (
        spec.iam_instance_profile
        and error_code(exc) == "InvalidParameterValue"
        and PROFILE_NOT_READY_RE.search(message)
    ):
        raise ProfileNotReady(spec.iam_instance_profile, message) from exc


class CapacityRefused(Exception):
    """Raised inside botocore's retry check to end a RunInstances call refused for capacity."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} ({code})")
        self.code = code
        self.aws_message = message


def _stop_on_capacity(response: Any = None, **_: Any) -> None:
    """``needs-retry`` handler: a capacity refusal ends the call (raises) instead of a retry."""
    if not response:
        return
    parsed = response[1] if len(response) > 1 else {}
    error = (parsed or {}).get("Error", {})
    code = error.get("Code")
    if code in LAUNCH_CAPACITY_CODES:
        raise CapacityRefused(str(code), str(error.get("Message") or code))


# -- request and response shapes -------------------------------------------------------------------


def run_instances_params(spec: RunSpec) -> dict[str, Any]:
    """The RunInstances parameters of ``spec`` (also recorded in job.json for the instance-side
    recovery, which launches the successor with them; see runctl.remote.succession)."""
    tag_list = [{"Key": k, "Value": v} for k, v in spec.tags.items()]
    resource_types = ["instance", "volume"] + (["spot-instances-request"] if spec.spot else [])
    kwargs: dict[str, Any] = {
        "ImageId": spec.image_id,
        "InstanceType": spec.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "ClientToken": spec.client_token,
        # IMDSv2 only; hop limit 2 so containers on the instance can reach it.
        "MetadataOptions": {
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 2,
            "HttpEndpoint": "enabled",
        },
        "TagSpecifications": [{"ResourceType": rt, "Tags": tag_list} for rt in resource_types],
        "BlockDeviceMappings": [
            {
                "DeviceName": device.device_name,
                "Ebs": {
                    "VolumeSize": device.size_gb,
                    "VolumeType": device.volume_type,
                    "DeleteOnTermination": device.delete_on_termination,
                },
            }
            for device in spec.block_devices
        ],
    }
    if spec.user_data:
        kwargs["UserData"] = spec.user_data
    if spec.spot:
        spot_options: dict[str, Any] = {
            "SpotInstanceType": "one-time",
            "InstanceInterruptionBehavior": "terminate",
        }
        if spec.spot_max_price is not None:
            spot_options["MaxPrice"] = price_text(spec.spot_max_price)
        kwargs["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot_options}
    if spec.subnet_id:
        kwargs["SubnetId"] = spec.subnet_id
    elif spec.availability_zone:
        kwargs["Placement"] = {"AvailabilityZone": spec.availability_zone}
    if spec.security_group_ids:
        kwargs["SecurityGroupIds"] = list(spec.security_group_ids)
    if spec.key_name:
        kwargs["KeyName"] = spec.key_name
    if spec.iam_instance_profile:
        key = "Arn" if spec.iam_instance_profile.startswith("arn:") else "Name"
        kwargs["IamInstanceProfile"] = {key: spec.iam_instance_profile}
    return kwargs


def price_text(usd: float) -> str:
    """A price as AWS takes it: plain decimal digits, never rounded to zero nor in exponent form
    (``0.00003``, not ``0.0000`` or ``3e-05``)."""
    return format(Decimal(repr(float(usd))), "f")


def _instance_type(raw: Mapping[str, Any]) -> InstanceTypeInfo:
    gpus = raw.get("GpuInfo", {}).get("Gpus", [])
    accelerators = raw.get("InferenceAcceleratorInfo", {}).get("Accelerators", []) + raw.get(
        "NeuronInfo", {}
    ).get("NeuronDevices", [])
    return InstanceTypeInfo(
        name=raw["InstanceType"],
        vcpus=int(raw.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
        memory_mib=int(raw.get("MemoryInfo", {}).get("SizeInMiB", 0)),
        architectures=tuple(raw.get("ProcessorInfo", {}).get("SupportedArchitectures", [])),
        gpus=sum(int(g.get("Count", 0)) for g in gpus),
        gpu_model=gpus[0].get("Name") if gpus else None,
        accelerators=sum(int(a.get("Count", 0)) for a in accelerators),
    )


def _image(raw: Mapping[str, Any]) -> Image:
    root = raw.get("RootDeviceName") or "/dev/xvda"
    root_size = next(
        (
            m.get("Ebs", {}).get("VolumeSize")
            for m in raw.get("BlockDeviceMappings", [])
            if m.get("DeviceName") == root
        ),
        None,
    )
    return Image(
        image_id=raw["ImageId"],
        name=raw.get("Name", ""),
        creation_date=raw.get("CreationDate", ""),
        root_device_name=root,
        architecture=raw.get("Architecture", "x86_64"),
        owner_id=raw.get("OwnerId"),
        root_volume_gb=int(root_size) if root_size else None,
    )


def _instance(raw: Mapping[str, Any]) -> Instance:
    reason = raw.get("StateReason") or {}
    return Instance(
        instance_id=raw["InstanceId"],
        instance_type=raw.get("InstanceType", ""),
        state=raw.get("State", {}).get("Name", "unknown"),
        lifecycle=raw.get("InstanceLifecycle") or "on-demand",
        availability_zone=raw.get("Placement", {}).get("AvailabilityZone") or None,
        image_id=raw.get("ImageId"),
        launch_time=raw.get("LaunchTime"),
        private_ip=raw.get("PrivateIpAddress") or None,
        public_ip=raw.get("PublicIpAddress") or None,
        tags={t["Key"]: t.get("Value", "") for t in raw.get("Tags", []) or []},
        iam_instance_profile_arn=(raw.get("IamInstanceProfile") or {}).get("Arn"),
        subnet_id=raw.get("SubnetId") or None,
        vpc_id=raw.get("VpcId") or None,
        key_name=raw.get("KeyName") or None,
        client_token=raw.get("ClientToken") or None,
        spot_request_id=raw.get("SpotInstanceRequestId") or None,
        state_reason_code=reason.get("Code"),
        state_reason=reason.get("Message"),
        volume_ids=tuple(
            m["Ebs"]["VolumeId"] for m in raw.get("BlockDeviceMappings", []) if m.get("Ebs")
        ),
    )


def _state_change(raw: Mapping[str, Any]) -> StateChange:
    return StateChange(
        instance_id=raw["InstanceId"],
        previous=raw.get("PreviousState", {}).get("Name", "unknown"),
        current=raw.get("CurrentState", {}).get("Name", "unknown"),
    )
