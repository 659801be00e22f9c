"""``runctl aws train`` end to end: the real CLI, the harness instance, its bare python3."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.aws_helpers import run
from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cloud.harness import Cloud

TRAIN = """
import json, os, sys
print("argv", json.dumps(sys.argv[1:]))
print("boto3?", __import__("importlib.util").util.find_spec("boto3") is not None)
data = os.environ["RUNCTL_DATA_DIR"]
print("data", sorted(os.listdir(data)))
out = os.environ["RUNCTL_OUTPUT_DIR"]
with open(os.path.join(out, "result.txt"), "w") as f:
    f.write("trained on " + os.environ["RUNCTL_INSTANCE_ID"])
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def test_train_wait_runs_the_script_and_ships_outputs(cloud_env: Cloud, project: Path) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAIN, "secret.pem": "nope", ".env": "A=1"})
    instance_id = ready_instance(cloud)
    s3 = cloud.client("s3")
    s3.put_object(Bucket=BUCKET, Key="datasets/mnist/part-0.npz", Body=b"x" * 10)
    cloud.allow_s3(f"s3://{BUCKET}/datasets/", read_only=True)  # as `aws setup --grant` would
    result = run(
        "aws", "train", instance_id, "train.py",
        "--data-s3", f"s3://{BUCKET}/datasets/mnist/",
        "--wait", "--output", "json",
        "--", "--epochs", "2", "a b", "$(whoami)",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["state"] == "succeeded"
    assert doc["exit_code"] == 0
    assert doc["instance_id"] == instance_id
    log = result.stderr
    assert 'argv ["--epochs", "2", "a b", "$(whoami)"]' in log
    assert "boto3? False" in log
    assert "data ['part-0.npz']" in log
    prefix = doc["job_uri"].removeprefix(f"s3://{BUCKET}/")
    out = s3.get_object(Bucket=BUCKET, Key=f"{prefix}outputs/result.txt")["Body"].read()
    assert out == f"trained on {instance_id}".encode()
    status = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix}status.json")["Body"].read())
    assert status["state"] == "succeeded"
    logged = s3.get_object(Bucket=BUCKET, Key=f"{prefix}logs/attempt-0.log")["Body"].read()
    assert b"argv" in logged
    code_keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="runctl/demo/code/")["Contents"]
    ]
    assert len(code_keys) == 1


def test_data_the_instance_role_may_not_read_names_the_grant_that_fixes_it(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"train.py": TRAIN})
    instance_id = ready_instance(cloud_env)
    cloud_env.client("s3").put_object(Bucket=BUCKET, Key="private/x.npz", Body=b"x")
    result = run(
        "aws", "train", instance_id, "train.py", "--data-s3", f"s3://{BUCKET}/private/", "--wait"
    )
    assert result.exit_code == 4, result.stderr
    assert f"runctl aws setup --grant s3://{BUCKET}/private/ --read-only" in result.stderr
    jobs = cloud_env.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runctl/demo/jobs/")
    assert jobs.get("KeyCount", 0) == 0  # refused before anything about the job was written


def test_stop_on_finish_on_a_one_time_spot_instance_is_refused_before_it_starts(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"train.py": TRAIN})
    instance_id = ready_instance(cloud_env, spot=True)
    result = run("aws", "train", instance_id, "train.py", "--stop-on-finish")
    assert result.exit_code == 2, result.stderr
    assert "one-time spot" in result.stderr and "--terminate-on-finish" in result.stderr
    jobs = cloud_env.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runctl/demo/jobs/")
    assert jobs.get("KeyCount", 0) == 0


def test_failing_script_exits_7_with_its_code(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": TRAIN})
    instance_id = ready_instance(cloud_env)
    result = run("aws", "train", instance_id, "train.py", "--env", "EXIT=3", "--wait", "-o", "json")
    assert result.exit_code == 7, result.stderr
    doc = json.loads(result.stdout)
    assert doc["state"] == "failed"
    assert doc["exit_code"] == 3 and doc["verdict"] == "failed"
    assert "exited with code 3" in result.stderr


def test_missing_script_exits_6_before_any_aws_call(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"training/train.py": TRAIN})
    before = len(cloud_env.request_log)
    result = run("aws", "train", "i-0123456789abcdef0", "training/trian.py")
    assert result.exit_code == 6
    assert "training/train.py" in result.stderr
    assert len(cloud_env.request_log) == before


def test_stopped_instance_exits_8_with_start_hint(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": TRAIN})
    instance_id = ready_instance(cloud_env)
    cloud_env.client("ec2").stop_instances(InstanceIds=[instance_id])
    cloud_env.wait_state(instance_id, "stopped")
    result = run("aws", "train", instance_id, "train.py")
    assert result.exit_code == 8
    assert f"runctl aws start {instance_id} --wait" in result.stderr


def test_no_instance_profile_exits_8_saying_why(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": TRAIN})
    instance_id = ready_instance(cloud_env, profile=None)
    result = run("aws", "train", instance_id, "train.py")
    assert result.exit_code == 8
    assert "no instance profile" in result.stderr


def test_unchanged_code_is_not_uploaded_twice(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": TRAIN})
    instance_id = ready_instance(cloud_env)
    first = run("aws", "train", instance_id, "train.py", "--wait", "-o", "json")
    assert first.exit_code == 0, first.stderr
    seen = len(cloud_env.request_log)
    second = run("aws", "train", instance_id, "train.py", "--wait", "-o", "json")
    assert second.exit_code == 0, second.stderr
    assert json.loads(first.stdout)["code_uploaded"] is True
    assert json.loads(second.stdout)["code_uploaded"] is False
    assert json.loads(second.stdout)["runtime_uploaded"] is False
    uploads = [
        call
        for call in cloud_env.request_log[seen:]
        if call.operation in ("PutObject", "CreateMultipartUpload", "UploadPart")
        and (call.key or "").startswith(("runctl/demo/code/", "runctl/runtime/"))
    ]
    assert uploads == []  # 0 bytes of code or runtime shipped the second time
