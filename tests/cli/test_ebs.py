"""``runctl aws ebs`` end to end against the harness: volumes really attach, mount, format,
detach and move between instances (the harness's volume model, tests/cloud/volumes.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.aws_helpers import ok_json, run, tags_of
from tests.cli.jobs_helpers import make_project, ready_instance
from tests.cloud.harness import Cloud


def volume_beside(instance_id: str, size: int = 1) -> str:
    """A new volume of ``size`` GiB in the instance's zone (``aws ebs create --instance-id``)."""
    volume_id: str = ok_json(
        "aws", "ebs", "create", "--size", str(size), "--instance-id", instance_id
    )["volume_id"]
    return volume_id


def mounted(cloud: Cloud, instance_id: str, mount: str = "/mnt/data") -> Path:
    return cloud.sandbox(instance_id) / mount.lstrip("/")


def test_create_takes_the_zone_of_the_instance_and_tags_it(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    instance_id = ready_instance(cloud, az="us-east-1c")
    doc = ok_json("aws", "ebs", "create", "--size", "20", "--instance-id", instance_id,
                  "--preset", "dataset", "--name", "imagenet")  # fmt: skip
    assert doc["availability_zone"] == "us-east-1c"
    assert doc["zone_source"] == f"the zone of {instance_id}"
    raw = cloud.client("ec2").describe_volumes(VolumeIds=[doc["volume_id"]])["Volumes"][0]
    assert raw["AvailabilityZone"] == "us-east-1c"
    shape = (raw["Size"], raw["VolumeType"], raw["Iops"], raw["Throughput"])
    assert shape == (20, "gp3", 4000, 500)
    tags = tags_of(raw)
    assert tags["runctl:managed"] == "true" and tags["Name"] == "imagenet"
    assert tags["runctl:user"] and tags["runctl:project"] and tags["runctl:created"]
    # Created with its tags (CreateVolume's TagSpecifications), not tagged afterwards.
    assert not cloud.calls("CreateTags")


def test_create_without_a_zone_uses_a_real_zone(cloud_env: Cloud, workdir: Path) -> None:
    doc = ok_json("aws", "ebs", "create", "--size", "1")
    assert doc["availability_zone"] in cloud_env.availability_zones()
    assert doc["availability_zone"] != "us-east-1-1a"


def test_bad_input_is_refused_before_any_aws_call(cloud_env: Cloud, workdir: Path) -> None:
    for args in (
        ("create", "--size", "0"),
        ("create", "--size", "10", "--type", "st1"),
        ("create", "--size", "10", "--throughput", "800"),
        ("create", "--size", "10", "--type", "gp2", "--preset", "dataset"),
        ("create", "--size", "10", "--availability-zone", "us-east-1a", "--instance-id",
         "i-0123456789abcdef0"),
        ("attach", "vol-123", "i-0123456789abcdef0"),
        ("attach", "vol-0123456789abcdef0", "i-0123456789abcdef0", "--mount", "/etc"),
        ("pre-warm", "vol-0123456789abcdef0"),
        ("pre-warm", "vol-0123456789abcdef0", "bucket/data"),
    ):  # fmt: skip
        result = run("aws", "ebs", *args)
        assert result.exit_code == 2, (args, result.stderr)
    assert cloud_env.request_log == []


def test_attach_mount_write_detach_and_attach_elsewhere_sees_the_data(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    first = ready_instance(cloud, az="us-east-1b")
    second = ready_instance(cloud, az="us-east-1b")
    volume_id = volume_beside(first, 8)

    attached = ok_json("aws", "ebs", "attach", volume_id, first)
    assert attached["attached_now"] is True
    mount = attached["mount"]
    assert mount["mount"] == "/mnt/data" and mount["formatted"] is True
    # Found by volume id under /dev/disk/by-id: an NVMe name, not the requested /dev/sdf.
    assert attached["device"] == "/dev/sdf" and mount["device"].startswith("/dev/nvme")
    fstab = (cloud.sandbox(first) / "etc/fstab").read_text()
    assert f"UUID={mount['uuid']} /mnt/data ext4 defaults,nofail 0 2" in fstab

    cloud.run_command(first, 'printf hello > "$RUNCTL_SYSTEM_ROOT/mnt/data/sample.txt"')
    assert (mounted(cloud, first) / "sample.txt").read_text() == "hello"

    again = ok_json("aws", "ebs", "attach", volume_id, first)  # idempotent
    assert again["attached_now"] is False and again["mount"]["already_mounted"] is True

    detached = ok_json("aws", "ebs", "detach", volume_id)
    assert detached["detached"] is True and detached["unmounted"] == ["/mnt/data"]
    assert "/mnt/data" not in (cloud.sandbox(first) / "etc/fstab").read_text()
    assert not (mounted(cloud, first) / "sample.txt").exists()

    moved = ok_json("aws", "ebs", "attach", volume_id, second, "--mount", "/mnt/train")
    assert moved["mount"]["formatted"] is False  # the filesystem (and data) came along
    assert (mounted(cloud, second, "/mnt/train") / "sample.txt").read_text() == "hello"


def test_attach_in_another_zone_says_how_to_move_the_volume(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    instance_id = ready_instance(cloud, az="us-east-1a")
    volume_id = ok_json("aws", "ebs", "create", "--size", "1", "--availability-zone",
                        "us-east-1b")["volume_id"]  # fmt: skip
    result = run("aws", "ebs", "attach", volume_id, instance_id)
    assert result.exit_code == 8, result.stderr
    assert "us-east-1b" in result.stderr and "ebs snapshot" in result.stderr
    assert not cloud.calls("AttachVolume")


def test_delete_refuses_an_attached_volume_and_deletes_a_detached_one(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    instance_id = ready_instance(cloud)
    volume_id = volume_beside(instance_id)
    ok_json("aws", "ebs", "attach", volume_id, instance_id, "--no-mount")
    refused = run("aws", "ebs", "delete", volume_id, "--yes")
    assert refused.exit_code == 8, refused.stderr
    assert f"attached to {instance_id}" in refused.stderr and "ebs detach" in refused.stderr
    assert not cloud.calls("DeleteVolume")
    ok_json("aws", "ebs", "detach", volume_id)
    dry = ok_json("aws", "ebs", "delete", volume_id, "--dry-run")
    assert dry["deleted"] is False
    assert ok_json("aws", "ebs", "delete", volume_id, "--yes")["deleted"] is True
    assert not cloud.ec2_backend().volumes.get(volume_id)
    assert not cloud.volume_dir(volume_id).exists()


def test_delete_refuses_protected_and_foreign_volumes(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    protected = ok_json("aws", "ebs", "create", "--size", "1", "--tag",
                        "runctl:protected=true")["volume_id"]  # fmt: skip
    assert run("aws", "ebs", "delete", protected, "--yes").exit_code == 8
    foreign = cloud.client("ec2").create_volume(AvailabilityZone="us-east-1a", Size=1)
    result = run("aws", "ebs", "delete", foreign["VolumeId"], "--yes")
    assert result.exit_code == 2 and "--force" in result.stderr
    assert not cloud.calls("DeleteVolume")


def test_detach_refuses_while_a_process_holds_the_mount(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    instance_id = ready_instance(cloud)
    volume_id = volume_beside(instance_id)
    ok_json("aws", "ebs", "attach", volume_id, instance_id)
    cloud.run_command(
        instance_id,
        'cd "$RUNCTL_SYSTEM_ROOT/mnt/data" && setsid sleep 300 </dev/null >/dev/null 2>&1 &',
    )
    busy = run("aws", "ebs", "detach", volume_id)
    assert busy.exit_code == 8, busy.stderr
    assert "in use by" in busy.stderr and "sleep" in busy.stderr
    assert not cloud.calls("DetachVolume")
    forced = ok_json("aws", "ebs", "detach", volume_id, "--force")
    assert forced["detached"] is True


def test_snapshot_restore_copies_the_data_to_another_zone(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    source_host = ready_instance(cloud, az="us-east-1a")
    target_host = ready_instance(cloud, az="us-east-1c")
    volume_id = volume_beside(source_host, 2)
    ok_json("aws", "ebs", "attach", volume_id, source_host)
    (mounted(cloud, source_host) / "shard-0.bin").write_bytes(b"\x01" * 1000)
    snap = ok_json("aws", "ebs", "snapshot", volume_id, "--wait", "--description", "day 1")
    assert snap["state"] == "completed" and snap["volume_id"] == volume_id
    (mounted(cloud, source_host) / "later.txt").write_text("after the snapshot")
    listed = ok_json("aws", "ebs", "snapshot-list", "--volume", volume_id)["snapshots"]
    assert [s["snapshot_id"] for s in listed] == [snap["snapshot_id"]]

    restored = ok_json("aws", "ebs", "restore", snap["snapshot_id"], "--instance-id", target_host)
    assert restored["availability_zone"] == "us-east-1c" and restored["size_gb"] == 2
    ok_json("aws", "ebs", "attach", restored["volume_id"], target_host)
    data = mounted(cloud, target_host)
    assert (data / "shard-0.bin").read_bytes() == b"\x01" * 1000
    assert not (data / "later.txt").exists()

    listing = ok_json("aws", "ebs", "list")
    ids = {v["volume_id"]: v for v in listing["volumes"]}
    assert set(ids) == {volume_id, restored["volume_id"]}  # root volumes are left out
    row = ids[volume_id]
    assert row["attached_to"] == source_host and row["month_usd"] == 0.16
    assert listing["month_usd"] == 0.32


def test_volume_survives_termination_and_stop_start_remounts_it(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    instance_id = ready_instance(cloud)
    volume_id = volume_beside(instance_id)
    ok_json("aws", "ebs", "attach", volume_id, instance_id)
    (mounted(cloud, instance_id) / "keep.txt").write_text("kept")
    ec2 = cloud.client("ec2")
    ec2.stop_instances(InstanceIds=[instance_id])
    assert not (mounted(cloud, instance_id) / "keep.txt").exists()
    ec2.start_instances(InstanceIds=[instance_id])  # fstab's nofail line mounts it at boot
    assert (mounted(cloud, instance_id) / "keep.txt").read_text() == "kept"
    ec2.terminate_instances(InstanceIds=[instance_id])
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert volume["State"] == "available"
    assert (cloud.volume_dir(volume_id) / "data/keep.txt").read_text() == "kept"


def test_json_keys_of_the_volume_list_are_stable(cloud_env: Cloud, workdir: Path) -> None:
    ok_json("aws", "ebs", "create", "--size", "1")
    result = run("aws", "ebs", "list", "--output", "json")
    doc = json.loads(result.stdout)
    assert set(doc) == {"volumes", "month_usd"}
    assert {
        "volume_id", "name", "state", "size_gb", "volume_type", "iops", "throughput",
        "availability_zone", "attached_to", "device", "month_usd", "project", "job",
        "source_volume", "snapshot_id", "prewarmed", "managed", "protected", "created", "tags",
    } == set(doc["volumes"][0])  # fmt: skip
    text = run("aws", "ebs", "list")
    assert text.exit_code == 0 and "GiB" in text.stdout


def test_create_with_volume_launches_in_its_zone_and_mounts_it(
    cloud_env: Cloud, project: Path
) -> None:
    cloud = cloud_env
    make_project(project, {})
    volume_id = ok_json("aws", "ebs", "create", "--size", "1", "--availability-zone",
                        "us-east-1c")["volume_id"]  # fmt: skip
    cloud.create_instance_profile()
    doc = ok_json("aws", "create", "t3.micro", "--volume", volume_id, "--wait",
                  "--iam-instance-profile", "runctl-harness")  # fmt: skip
    assert doc["availability_zone"] == "us-east-1c"
    assert doc["volume"]["volume_id"] == volume_id
    assert doc["volume"]["mount"]["mount"] == "/mnt/data"
    assert mounted(cloud, doc["instance_id"]).is_symlink()
    clash = run("aws", "create", "t3.micro", "--volume", volume_id, "--data-volume-size", "5")
    assert clash.exit_code == 2
