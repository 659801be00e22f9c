"""The EBS wrapper (runctl.aws.ebs) against the harness's moto, and the placement restriction a
volume puts on a launch."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from runctl.aws.ebs import Ebs, VolumeSpec
from runctl.aws.ec2 import Ec2
from runctl.errors import CapacityError, NotFoundError, WrongStateError
from runctl.services.instances.placement import plan_placements
from tests.cloud.harness import Cloud


def test_volume_lifecycle_is_typed_and_tagged(cloud: Cloud) -> None:
    ebs = Ebs(cloud.client("ec2"))
    created = ebs.create_volume(
        VolumeSpec("us-east-1b", 10, "gp3", iops=4000, throughput=250, tags={"Name": "data"})
    )
    volume = ebs.wait_volume(created.volume_id, "available")
    assert (volume.size_gb, volume.iops, volume.throughput) == (10, 4000, 250)
    assert volume.availability_zone == "us-east-1b" and volume.tags["Name"] == "data"
    instance_id = cloud.run_instance(az="us-east-1b")
    ebs.attach_volume(volume.volume_id, instance_id, "/dev/sdf")
    attached = ebs.wait_volume(volume.volume_id, "in-use", attached_to=instance_id)
    assert attached.attached_to == instance_id and attached.device == "/dev/sdf"
    snapshot = ebs.create_snapshot(volume.volume_id, description="d", tags={"k": "v"})
    done = ebs.wait_snapshot(snapshot.snapshot_id)
    assert done.state == "completed" and done.volume_id == volume.volume_id
    assert done.tags == {"k": "v"} and done.size_gb == 10
    assert [
        s.snapshot_id for s in ebs.describe_snapshots(filters={"volume-id": [volume.volume_id]})
    ] == [snapshot.snapshot_id]
    ebs.detach_volume(volume.volume_id, instance_id)
    assert ebs.wait_volume(volume.volume_id, "available").attached_to is None
    ebs.delete_volume(volume.volume_id)
    ebs.delete_snapshot(snapshot.snapshot_id)
    with pytest.raises(NotFoundError):
        ebs.describe_volume(volume.volume_id)
    with pytest.raises(NotFoundError):
        ebs.describe_snapshot(snapshot.snapshot_id)


def test_what_ec2_refuses_of_attach_arrives_as_wrong_state(cloud: Cloud) -> None:
    ebs = Ebs(cloud.client("ec2"))
    volume = ebs.create_volume(VolumeSpec("us-east-1a", 1))
    elsewhere = cloud.run_instance(az="us-east-1c")
    with pytest.raises(WrongStateError, match="ZoneMismatch"):
        ebs.attach_volume(volume.volume_id, elsewhere, "/dev/sdf")
    here = cloud.run_instance(az="us-east-1a")
    other = cloud.run_instance(az="us-east-1a")
    ebs.attach_volume(volume.volume_id, here, "/dev/sdf")
    with pytest.raises(WrongStateError, match="VolumeInUse"):
        ebs.attach_volume(volume.volume_id, other, "/dev/sdf")


@dataclass
class Request:
    spot: bool = True
    fallback: bool = True
    subnet_id: str | None = None
    availability_zone: str | None = None
    preferred_zone: str | None = None


def test_a_launch_can_be_held_to_one_zone_or_prefer_one(cloud: Cloud) -> None:
    ec2 = Ec2(cloud.client("ec2"))
    info = ec2.describe_instance_type("t3.micro")
    assert info is not None
    held = plan_placements(ec2, Request(availability_zone="us-east-1c"), info)
    assert {p.availability_zone for p in held} == {"us-east-1c"}
    assert [p.market for p in held] == ["spot", "on-demand"]
    preferred = plan_placements(ec2, Request(preferred_zone="us-east-1d"), info)
    spot = [p for p in preferred if p.market == "spot"]
    on_demand = [p for p in preferred if p.market == "on-demand"]
    assert spot[0].availability_zone == "us-east-1d"
    assert on_demand[0].availability_zone == "us-east-1d"
    assert preferred.index(on_demand[0]) > preferred.index(spot[-1])
    with pytest.raises(CapacityError):
        plan_placements(ec2, Request(availability_zone="us-east-1z"), info)
