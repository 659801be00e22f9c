"""Data that follows capacity: ``aws train --data-volume`` mounts the volume and points
``RUNCTL_DATA_DIR`` at it; when a spot interruption's replacement lands in another zone, runctl
restores the volume there and the next attempt reads the same data; ``resources cleanup`` deletes
the copy once the job has ended and keeps the user's own volume."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.aws_helpers import ok_json, run
from tests.cli.jobs_helpers import make_project, ready_instance
from tests.cli.spot_helpers import finish, log_text, spawn, wait_until
from tests.cloud.harness import Cloud

TRAINER = """
import json, os, signal, sys, time
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
data = os.environ["RUNCTL_DATA_DIR"]
print("attempt", os.environ["RUNCTL_ATTEMPT"], "data_dir", data, flush=True)
print("dataset:", open(os.path.join(data, "dataset.txt")).read(), flush=True)
ckpt = os.environ["RUNCTL_CHECKPOINT_DIR"]
os.makedirs(ckpt, exist_ok=True)
path = os.path.join(ckpt, "state.json")
step = json.load(open(path))["step"] if os.path.exists(path) else 0
while step < 100:
    time.sleep(0.1)
    step += 1
    json.dump({"step": step}, open(path + ".tmp", "w"))
    os.replace(path + ".tmp", path)
    print("step", step, flush=True)
    if stop:
        sys.exit(143)
out = os.environ["RUNCTL_OUTPUT_DIR"]
json.dump({"data": open(os.path.join(data, "dataset.txt")).read(), "step": step},
          open(os.path.join(out, "result.json"), "w"))
"""


def test_a_replacement_in_another_zone_finds_the_data_volume_there(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    first = ready_instance(cloud, spot=True, az="us-east-1a")
    volume_id = ok_json("aws", "ebs", "create", "--size", "2", "--instance-id", first)["volume_id"]
    ok_json("aws", "ebs", "attach", volume_id, first)
    (cloud.sandbox(first) / "mnt/data/dataset.txt").write_text("the-mnist-shards")

    proc = spawn(cloud, project, shared_cache, "aws", "train", first, "train.py",
                 "--data-volume", volume_id, "--auto-resume", "--output", "json")  # fmt: skip
    wait_until(lambda: "step 10\n" in log_text(cloud, first), what="training on the first")
    assert "dataset: the-mnist-shards" in log_text(cloud, first)
    busy = run("aws", "ebs", "detach", volume_id)  # the job's data is there
    assert busy.exit_code == 8 and "is running on" in busy.stderr and "--force" in busy.stderr
    cloud.insufficient_capacity(azs="us-east-1a", spot_only=False)  # no room left in its zone
    cloud.interrupt(first, notice_seconds=3)
    code, out, err = finish(proc, timeout=180)
    assert code == 0, err
    doc = json.loads(out)
    assert [t["state"] for t in doc["timeline"]] == ["interrupted", "succeeded"]
    replacement = doc["instance_id"]
    placed = cloud.client("ec2").describe_instances(InstanceIds=[replacement])
    zone = placed["Reservations"][0]["Instances"][0]["Placement"]["AvailabilityZone"]
    assert zone != "us-east-1a"
    assert f"data volume {volume_id} is in us-east-1a" in err and "restoring snapshot" in err
    resumed = log_text(cloud, replacement)
    assert "attempt 1 data_dir" in resumed and "dataset: the-mnist-shards" in resumed

    volumes = cloud.client("ec2").describe_volumes()["Volumes"]
    copies = [
        v for v in volumes
        if {"Key": "runctl:source-volume", "Value": volume_id} in v.get("Tags", [])
    ]  # fmt: skip
    assert len(copies) == 1
    copy = copies[0]
    assert copy["AvailabilityZone"] == zone
    assert {"Key": "runctl:job", "Value": doc["job_id"]} in copy["Tags"]
    assert copy["Attachments"][0]["InstanceId"] == replacement

    listed = ok_json("resources", "list")
    assert {volume_id, copy["VolumeId"]} <= {v["volume_id"] for v in listed["volumes"]}
    assert listed["snapshots"] and listed["storage_month_usd"] > 0

    plan = ok_json("resources", "cleanup", "--dry-run")
    assert copy["VolumeId"] in plan["storage"]["volumes"]
    assert volume_id not in plan["storage"]["volumes"]
    assert "--include-volumes" in plan["storage"]["skipped"][volume_id]
    assert cloud.ec2_backend().volumes.get(copy["VolumeId"])  # a dry run deletes nothing
    done = ok_json("resources", "cleanup", "--yes")
    assert replacement in done["acted_on"]
    assert done["storage"]["volumes"] == [copy["VolumeId"]]
    assert len(done["storage"]["snapshots"]) == 1
    assert set(cloud.ec2_backend().volumes) >= {volume_id}
    assert copy["VolumeId"] not in cloud.ec2_backend().volumes
    everything = ok_json("resources", "cleanup", "--yes", "--include-volumes")
    assert everything["storage"]["volumes"] == [volume_id]


def test_train_with_a_data_volume_in_another_zone_is_refused_before_the_job_is_written(
    cloud_env: Cloud, project: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    instance_id = ready_instance(cloud, az="us-east-1a")
    volume_id = ok_json("aws", "ebs", "create", "--size", "1", "--availability-zone",
                        "us-east-1b")["volume_id"]  # fmt: skip
    result = run("aws", "train", instance_id, "train.py", "--data-volume", volume_id)
    assert result.exit_code == 8, result.stderr
    assert "us-east-1b" in result.stderr
    assert not [c for c in cloud.calls("PutObject", "s3") if (c.key or "").endswith("job.json")]
    bad = run("aws", "train", instance_id, "train.py", "--data-volume", "data")
    assert bad.exit_code == 2
