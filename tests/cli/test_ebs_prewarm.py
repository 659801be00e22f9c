"""``runctl aws ebs pre-warm``: the volume really fills from S3 on an instance in its zone, and a
temporary instance never outlives the command: not on success, not when the copy fails, not on
Ctrl-C while it boots."""

from __future__ import annotations

import contextlib
import json
import signal
from pathlib import Path

from tests.cli.aws_helpers import ok_json, run
from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cli.spot_helpers import finish, live_instance_ids, spawn, wait_until
from tests.cloud.harness import Cloud

SOURCE = f"s3://{BUCKET}/datasets/mnist/"
FILES = {f"train/shard-{i}.bin": bytes([i]) * (200_000 + i) for i in range(5)} | {
    "labels.csv": b"id,label\n1,7\n"
}


def prewarm_project(cloud: Cloud, root: Path) -> Path:
    """A project whose config names the harness profile, and the dataset in S3 (the instance
    role may read it, as after `runctl aws setup --grant ... --read-only`)."""
    make_project(root, {})
    text = (
        (root / ".runctl.toml")
        .read_text()
        .replace("[aws]\n", '[aws]\niam_instance_profile = "runctl-harness"\n')
    )
    (root / ".runctl.toml").write_text(text)
    s3 = cloud.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    for key, data in FILES.items():
        s3.put_object(Bucket=BUCKET, Key=f"datasets/mnist/{key}", Body=data)
    cloud.create_instance_profile()
    cloud.allow_s3(SOURCE, read_only=True)
    return root


def new_volume(zone: str = "us-east-1b") -> str:
    volume_id: str = ok_json("aws", "ebs", "create", "--size", "4", "--availability-zone", zone)[
        "volume_id"
    ]
    return volume_id


def test_prewarm_on_a_temporary_instance_fills_the_volume_and_terminates_it(
    cloud_env: Cloud, project: Path
) -> None:
    cloud = cloud_env
    prewarm_project(cloud, project)
    volume_id = new_volume()
    doc = ok_json("aws", "ebs", "pre-warm", volume_id, SOURCE, "--snapshot")
    assert set(doc) == {
        "volume_id", "source", "instance_id", "temporary", "files", "bytes", "copy_seconds",
        "mb_per_s", "wall_seconds", "mount", "snapshot_id", "terminated",
    }  # fmt: skip
    assert doc["temporary"] is True
    assert doc["files"] == len(FILES)
    assert doc["bytes"] == sum(len(v) for v in FILES.values())
    assert doc["mb_per_s"] > 0 and doc["copy_seconds"] > 0 and doc["wall_seconds"] > 0
    assert doc["terminated"] == [doc["instance_id"]]
    assert live_instance_ids(cloud) == []
    launched = cloud.client("ec2").describe_instances(InstanceIds=[doc["instance_id"]])
    instance = launched["Reservations"][0]["Instances"][0]
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1b"
    data = cloud.volume_dir(volume_id) / "data"
    for key, content in FILES.items():
        assert (data / key).read_bytes() == content
    volume = cloud.client("ec2").describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert volume["State"] == "available"
    tags = {t["Key"]: t["Value"] for t in volume["Tags"]}
    assert tags["runctl:prewarmed"] and tags["runctl:prewarm-source"] == SOURCE
    snapshot = cloud.client("ec2").describe_snapshots(SnapshotIds=[doc["snapshot_id"]])
    assert snapshot["Snapshots"][0]["VolumeId"] == volume_id
    assert (cloud.volumes.snapshot_dir(doc["snapshot_id"]) / "data/labels.csv").exists()


def test_prewarm_also_takes_the_original_spelling_and_a_given_instance(
    cloud_env: Cloud, project: Path
) -> None:
    cloud = cloud_env
    prewarm_project(cloud, project)
    host = ready_instance(cloud, az="us-east-1b")
    volume_id = new_volume()
    doc = ok_json("aws", "ebs", "pre-warm", volume_id, "--s3-source", SOURCE,
                  "--instance-id", host)  # fmt: skip
    assert doc["temporary"] is False and doc["instance_id"] == host and doc["terminated"] == []
    assert cloud.state(host) == "running"  # the user's instance is left alone, volume mounted
    assert (cloud.sandbox(host) / "mnt/data/labels.csv").read_bytes() == FILES["labels.csv"]
    again = ok_json("aws", "ebs", "pre-warm", volume_id, SOURCE)  # fills where it is attached
    assert again["instance_id"] == host and again["files"] == 0  # a sync: nothing new to copy


def test_a_failed_copy_still_terminates_the_temporary_instance(
    cloud_env: Cloud, project: Path
) -> None:
    cloud = cloud_env
    prewarm_project(cloud, project)
    volume_id = new_volume()
    result = run("aws", "ebs", "pre-warm", volume_id, "s3://no-such-bucket/runctl/data/")
    assert result.exit_code != 0
    assert "pre-warm of" in result.stderr and "no-such-bucket" in result.stderr
    assert "terminated the temporary instance" in result.stderr
    assert len(cloud.calls("RunInstances")) == 1
    assert live_instance_ids(cloud) == []


def test_a_role_that_may_not_read_the_source_launches_nothing(
    cloud_env: Cloud, project: Path
) -> None:
    cloud = cloud_env
    prewarm_project(cloud, project)
    volume_id = new_volume()
    result = run("aws", "ebs", "pre-warm", volume_id, f"s3://{BUCKET}/private/")
    assert result.exit_code == 4, result.stderr
    assert "aws setup --grant" in result.stderr
    assert not cloud.calls("RunInstances")


def test_ctrl_c_while_the_temporary_instance_boots_terminates_it(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    prewarm_project(cloud, project)
    volume_id = new_volume()
    cloud.ssm_registration_delay = 120  # the instance runs, but its agent stays offline
    proc = spawn(cloud, project, shared_cache, "aws", "ebs", "pre-warm", volume_id, SOURCE,
                 "--output", "json")  # fmt: skip
    wait_until(lambda: live_instance_ids(cloud), what="the temporary instance")
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    assert code == 130, err
    assert "terminated the temporary instance" in err
    assert live_instance_ids(cloud) == []
    assert json.loads(out or "null") is None
