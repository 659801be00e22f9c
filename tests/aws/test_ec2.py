"""The EC2 wrapper against the moto-based harness: request shapes, errors, and dataclasses out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.endpoint import Endpoint
from botocore.hooks import first_non_none_response
from botocore.stub import Stubber

from runctl.aws.ec2 import BlockDevice, Ec2, LaunchRejected, RunSpec
from runctl.aws.session import client_config
from runctl.errors import AuthError, NotFoundError
from runctl.services.instances.placement import plan_placements
from tests.cloud.harness import Cloud


def spec(cloud: Cloud, **kw: object) -> RunSpec:
    base: dict[str, object] = {
        "instance_type": "t3.micro",
        "image_id": cloud.amis["al2023"],
        "client_token": "token-1",
        "block_devices": (BlockDevice("/dev/xvda", 30), BlockDevice("/dev/sdf", 50)),
        "tags": {"runctl:managed": "true", "Name": "x"},
    }
    base.update(kw)
    return RunSpec(**base)  # type: ignore[arg-type]


def test_describe_instance_type_and_unknown_type(cloud: Cloud) -> None:
    ec2 = Ec2(cloud.client("ec2"))
    info = ec2.describe_instance_type("g5.xlarge")
    assert info is not None and info.gpus == 1 and info.architectures == ("x86_64",)
    graviton = ec2.describe_instance_type("t4g.small")
    assert graviton is not None and graviton.architectures == ("arm64",)
    assert ec2.describe_instance_type("t3.mciro") is None
    names = {t for t, _ in ec2.describe_instance_type_offerings()}
    assert "t3.micro" in names
    zones = {
        z
        for _, z in ec2.describe_instance_type_offerings(
            location_type="availability-zone", instance_type="t3.micro"
        )
    }
    assert "us-east-1a" in zones


def test_images_newest_first_with_real_root_device(cloud: Cloud) -> None:
    ec2 = Ec2(cloud.client("ec2"))
    images = ec2.describe_images(
        owners=["amazon"], name_pattern="Deep Learning*AMI*GPU PyTorch*", architecture="x86_64"
    )
    assert images and images[0].creation_date >= images[-1].creation_date
    assert images[0].image_id in (cloud.amis["dl-ubuntu"], cloud.amis["dl-al2023"])
    ubuntu = ec2.describe_image(cloud.amis["dl-ubuntu"])
    assert ubuntu.root_device_name == "/dev/sda1" and ubuntu.root_volume_gb == 75
    with pytest.raises(NotFoundError):
        ec2.describe_image("ami-0123456789abcdef0")


def test_run_instances_tags_instance_and_volumes_and_requires_imdsv2(cloud: Cloud) -> None:
    ec2 = Ec2(cloud.client("ec2"))
    instance = ec2.run_instances(
        spec(cloud, spot=True, availability_zone="us-east-1c", user_data="#!/bin/bash\ntrue\n")
    )
    assert instance.lifecycle == "spot" and instance.availability_zone == "us-east-1c"
    assert instance.client_token == "token-1"
    raw = cloud.client("ec2").describe_instances(InstanceIds=[instance.instance_id])
    desc = raw["Reservations"][0]["Instances"][0]
    assert desc["MetadataOptions"]["HttpTokens"] == "required"
    assert desc["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
    volumes = cloud.client("ec2").describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance.instance_id]}]
    )["Volumes"]
    assert sorted(v["Size"] for v in volumes) == [30, 50]
    assert all(v["VolumeType"] == "gp3" for v in volumes)
    assert all({"Key": "runctl:managed", "Value": "true"} in v["Tags"] for v in volumes)
    found = ec2.describe_instances(filters={"tag:runctl:managed": ["true"]})
    assert [i.instance_id for i in found] == [instance.instance_id]
    assert found[0].tags["Name"] == "x" and len(found[0].volume_ids) == 2


def _needs_retry_before_1_43_3(
    self: Endpoint,
    attempts: int,
    operation_model: Any,
    request_dict: Any,
    response: Any = None,
    caught_exception: Any = None,
) -> bool:
    """``Endpoint._needs_retry`` as botocore had it before 1.43.3: any answer that is not None
    (``False`` included) means "sleep that long, then retry"."""
    service_id = operation_model.service_model.service_id.hyphenize()
    responses = self._event_emitter.emit(
        f"needs-retry.{service_id}.{operation_model.name}",
        response=response,
        endpoint=self,
        operation=operation_model,
        attempts=attempts,
        caught_exception=caught_exception,
        request_dict=request_dict,
    )
    handler_response = first_non_none_response(responses)
    if handler_response is None:
        return False
    time.sleep(handler_response)
    return True


@pytest.mark.parametrize("botocore_retry", ["installed", "before-1.43.3"])
def test_capacity_refusal_is_one_request_whatever_the_botocore_version(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch, botocore_retry: str
) -> None:
    if botocore_retry == "before-1.43.3":
        monkeypatch.setattr(Endpoint, "_needs_retry", _needs_retry_before_1_43_3)
    ec2 = Ec2(cloud.client("ec2", config=None))
    # 40 refusals in a row: a client that retried them would get through and launch.
    cloud.insufficient_capacity(azs=["us-east-1a"], spot_only=False, times=40)
    with pytest.raises(LaunchRejected) as info:
        ec2.run_instances(spec(cloud, availability_zone="us-east-1a"))
    assert info.value.code == "InsufficientInstanceCapacity" and info.value.exit_code == 5
    assert len(cloud.calls("RunInstances")) == 1
    assert ec2.describe_instances() == []
    with pytest.raises(LaunchRejected):
        ec2.check_run_instances(spec(cloud, availability_zone="us-east-1a"))
    assert len(cloud.calls("RunInstances")) == 2


def test_throttled_run_instances_is_still_retried(cloud: Cloud) -> None:
    ec2 = Ec2(cloud.client("ec2", config=client_config()))
    cloud.throttle("RunInstances", times=2, service="ec2")
    instance = ec2.run_instances(spec(cloud))
    assert instance.state in ("pending", "running")
    assert len(cloud.calls("RunInstances")) == 3


def test_dry_run_is_allowed_or_names_the_missing_permission(cloud: Cloud) -> None:
    ec2 = Ec2(cloud.client("ec2"))
    ec2.check_run_instances(spec(cloud))
    assert ec2.describe_instances() == []
    with Stubber(ec2.client) as stub:
        stub.add_client_error(
            "run_instances",
            "UnauthorizedOperation",
            "Encoded authorization failure message: xyz",
            403,
        )
        with pytest.raises(AuthError) as info:
            ec2.check_run_instances(spec(cloud))
    assert "ec2:RunInstances" in info.value.message and info.value.exit_code == 4


def test_unknown_instance_is_not_found(cloud: Cloud) -> None:
    with pytest.raises(NotFoundError) as info:
        Ec2(cloud.client("ec2")).describe_instance("i-0123456789abcdef0")
    assert info.value.exit_code == 6 and "resources list" in (info.value.hint or "")


def test_lifecycle_calls_and_spot_prices(cloud: Cloud) -> None:
    ec2 = Ec2(cloud.client("ec2"))
    instance_id = cloud.run_instance(profile=None)
    assert ec2.stop_instances(instance_id).previous == "running"
    assert ec2.describe_instance(instance_id).state == "stopped"
    assert ec2.start_instances(instance_id).instance_id == instance_id
    [change] = ec2.terminate_instances([instance_id])
    assert change.current in ("shutting-down", "terminated")
    prices = ec2.describe_spot_price_history("t3.micro", ["us-east-1b"])
    assert list(prices) == ["us-east-1b"] and prices["us-east-1b"].usd_per_hour >= 0
    assert "us-east-1" in ec2.describe_regions()
    zones = [z.name for z in ec2.describe_availability_zones()]
    assert "us-east-1a" in zones


def test_subnets_by_id_and_vpc(cloud: Cloud) -> None:
    ec2 = Ec2(cloud.client("ec2"))
    default = ec2.describe_subnets(vpc_id=cloud.client("ec2").describe_vpcs()["Vpcs"][0]["VpcId"])
    assert default
    one = ec2.describe_subnets(subnet_ids=[default[0].subnet_id])
    assert one[0].availability_zone == default[0].availability_zone


@pytest.mark.parametrize(
    ("price", "text"),
    [(0.00003, "0.00003"), (0.5, "0.5"), (1.23456789, "1.23456789"), (12.0, "12.0")],
)
def test_spot_max_price_is_sent_as_plain_decimal_digits(
    cloud: Cloud, price: float, text: str
) -> None:
    client = cloud.client("ec2")
    sent: list[str] = []
    client.meta.events.register(
        "before-call.ec2.RunInstances",
        lambda params, **_: sent.append(
            params["body"]["InstanceMarketOptions.SpotOptions.MaxPrice"]
        ),
    )
    Ec2(client).run_instances(spec(cloud, spot=True, spot_max_price=price))
    assert sent == [text]


def test_spot_prices_are_the_current_ones_in_every_zone_however_quiet(cloud: Cloud) -> None:
    now = datetime.now(UTC)
    busy = {"us-east-1a": 0.05, "us-east-1b": 0.04}
    for zone, base in busy.items():
        changes = [(now - timedelta(hours=h), base + h / 100_000) for h in range(1, 151)]
        cloud.set_spot_price_history("t3.micro", zone, changes)
    # The cheapest zone's price last changed ten days ago: still its price now.
    cloud.set_spot_price_history(
        "t3.micro",
        "us-east-1c",
        [(now - timedelta(days=12), 0.02), (now - timedelta(days=10), 0.01)],
    )
    ec2 = Ec2(cloud.client("ec2"))
    prices = ec2.describe_spot_price_history("t3.micro")
    assert {z: p.usd_per_hour for z, p in prices.items()} == pytest.approx(
        {"us-east-1a": 0.05001, "us-east-1b": 0.04001, "us-east-1c": 0.01}
    )
    only = ec2.describe_spot_price_history("t3.micro", ["us-east-1c", "us-east-1b"])
    assert sorted(only) == ["us-east-1b", "us-east-1c"]

    @dataclass
    class Spot:
        spot: bool = True
        fallback: bool = False
        subnet_id: str | None = None
        availability_zone: str | None = None
        preferred_zone: str | None = None

    info = ec2.describe_instance_type("t3.micro")
    assert info is not None
    placements = plan_placements(ec2, Spot(), info)
    assert placements[0].availability_zone == "us-east-1c"
    assert placements[0].spot_price == pytest.approx(0.01)
