"""The harness's volume model (tests/cloud/volumes.py) and its block-device commands
(tests/cloud/ebs_tools.py), driven through the EC2 API and SSM as runctl drives them."""

from __future__ import annotations

from tests.cloud.harness import Cloud


def attach(cloud: Cloud, instance_id: str, device: str, zone: str = "us-east-1a") -> str:
    ec2 = cloud.client("ec2")
    volume_id: str = ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)
    return volume_id


def test_attached_volumes_appear_by_id_as_nvme_devices_in_attach_order(cloud: Cloud) -> None:
    instance_id = cloud.run_instance(az="us-east-1a")
    first = attach(cloud, instance_id, "/dev/sdh")
    second = attach(cloud, instance_id, "/dev/sdf")
    by_id = cloud.sandbox(instance_id) / "dev/disk/by-id"
    link = by_id / f"nvme-Amazon_Elastic_Block_Store_{first.replace('-', '')}"
    assert link.resolve().name == "nvme1n1"  # the requested /dev/sdh is nowhere
    second_link = by_id / f"nvme-Amazon_Elastic_Block_Store_{second.replace('-', '')}"
    assert second_link.resolve().name == "nvme2n1"
    assert not (cloud.sandbox(instance_id) / "dev/sdf").exists()
    cloud.client("ec2").detach_volume(VolumeId=first, InstanceId=instance_id)
    assert not link.exists() and second_link.exists()


def test_blank_volume_format_mount_write_and_busy_unmount(cloud: Cloud) -> None:
    instance_id = cloud.run_instance(az="us-east-1a")
    volume_id = attach(cloud, instance_id, "/dev/sdf")
    serial = volume_id.replace("-", "")
    dev = f"$RUNCTL_SYSTEM_ROOT/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{serial}"
    blank = cloud.run_command(instance_id, f'blkid -p "{dev}"')
    assert blank["ResponseCode"] == 2  # nothing on it
    script = (
        f'd=$(readlink -f "{dev}"); m="$RUNCTL_SYSTEM_ROOT/mnt/data"; mkdir -p "$m"\n'
        'mkfs.ext4 -q -L runctl-data "$d" && mount -t ext4 "$d" "$m" && echo hi > "$m/f.txt"\n'
        'blkid -o value -s TYPE "$d"; findmnt -rn -o TARGET --source "$d"'
    )
    done = cloud.run_command(instance_id, script)
    assert done["ResponseCode"] == 0, done["StandardErrorContent"]
    lines = done["StandardOutputContent"].split()
    assert lines[0] == "ext4" and lines[1].endswith("/mnt/data")
    assert (cloud.volume_dir(volume_id) / "data/f.txt").read_text() == "hi\n"
    busy = cloud.run_command(
        instance_id,
        'cd "$RUNCTL_SYSTEM_ROOT/mnt/data" && (sleep 30 &) ; sleep 0.2; '
        'umount "$RUNCTL_SYSTEM_ROOT/mnt/data"',
    )
    assert busy["ResponseCode"] == 32 and "target is busy" in busy["StandardErrorContent"]
    refused = cloud.run_command(instance_id, "mkfs.ext4 /dev/sda; mount /dev/sda /tmp")
    assert "not a block device" in refused["StandardErrorContent"]
    assert "wrong fs type" in refused["StandardErrorContent"]


def test_snapshots_copy_the_volume_at_that_moment(cloud: Cloud) -> None:
    ec2 = cloud.client("ec2")
    volume_id = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    data = cloud.volume_dir(volume_id) / "data"
    (data / "a.txt").write_text("before")
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    (data / "a.txt").write_text("after")
    restored = ec2.create_volume(AvailabilityZone="us-east-1c", SnapshotId=snapshot_id)
    copy = cloud.volume_dir(restored["VolumeId"]) / "data/a.txt"
    assert copy.read_text() == "before"
    ec2.delete_volume(VolumeId=volume_id)
    assert not cloud.volume_dir(volume_id).exists()


def test_delete_on_termination_volumes_go_with_the_instance_others_stay(cloud: Cloud) -> None:
    instance_id = cloud.run_instance(
        az="us-east-1a",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "DeleteOnTermination": True}},
            {"DeviceName": "/dev/sdg", "Ebs": {"VolumeSize": 2, "DeleteOnTermination": True}},
        ],
    )
    kept = attach(cloud, instance_id, "/dev/sdf")
    nodes = sorted(p.name for p in (cloud.sandbox(instance_id) / "dev").glob("nvme*n1"))
    assert nodes == ["nvme1n1", "nvme2n1"]  # the launch's data volume and the attached one
    backend = cloud.ec2_backend()
    launched = [v for v in backend.volumes if v != kept]
    cloud.client("ec2").terminate_instances(InstanceIds=[instance_id])
    assert cloud.volume_dir(kept).exists()
    assert not any(cloud.volume_dir(v).exists() for v in launched)
