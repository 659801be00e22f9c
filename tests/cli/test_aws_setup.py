"""``runctl aws setup`` and ``runctl aws prices`` end to end against the harness."""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.cli.aws_helpers import ok_json, run
from tests.cloud.harness import Cloud


def test_setup_creates_everything_once_and_writes_the_config(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    first = ok_json("aws", "setup", "--bucket", "my-runctl-bucket")
    assert first["changed"] is True and first["dry_run"] is False
    assert {s["action"] for s in first["steps"]} >= {"create"}
    iam = cloud.client("iam")
    role = iam.get_role(RoleName="runctl-instance-role")["Role"]
    assert "ec2.amazonaws.com" in json.dumps(role["AssumeRolePolicyDocument"])
    attached = iam.list_attached_role_policies(RoleName="runctl-instance-role")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonSSMManagedInstanceCore"]
    policy = iam.get_role_policy(RoleName="runctl-instance-role", PolicyName="runctl-bucket-access")
    assert "arn:aws:s3:::my-runctl-bucket/runctl/*" in json.dumps(policy["PolicyDocument"])
    profile = iam.get_instance_profile(InstanceProfileName="runctl-instance")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["runctl-instance-role"]
    cloud.client("s3").head_bucket(Bucket="my-runctl-bucket")
    config = tomllib.loads((workdir / ".runctl.toml").read_text())
    assert config["aws"] == {
        "s3_bucket": "my-runctl-bucket",
        "iam_instance_profile": "runctl-instance",
    }

    second = run("aws", "setup")
    assert second.exit_code == 0, second.stderr
    assert "nothing changed" in second.stderr
    again = ok_json("aws", "setup")
    assert again["changed"] is False and {s["action"] for s in again["steps"]} == {"ok"}


def test_instances_created_after_setup_come_online(cloud_env: Cloud, workdir: Path) -> None:
    ok_json("aws", "setup", "--bucket", "b-online")
    data = ok_json("aws", "create", "t3.micro", "--wait", "--timeout", "60")
    assert data["ssm_online"] is True and data["warnings"] == []


def test_setup_dry_run_changes_nothing(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    result = run("aws", "setup", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "dry run" in result.stderr and "create" in result.stdout
    assert cloud.client("iam").list_roles()["Roles"] == []
    assert cloud.client("s3").list_buckets()["Buckets"] == []
    assert not (workdir / ".runctl.toml").exists()
    planned = ok_json("aws", "setup", "--dry-run")
    assert planned["bucket"] == "runctl-123456789012-us-east-1" and planned["changed"] is False
    assert cloud.client("iam").list_roles()["Roles"] == []


def test_prices_table_and_spot(cloud_env: Cloud, workdir: Path) -> None:
    data = ok_json("aws", "prices", "t3.micro", "g5.xlarge", "--spot")
    rows = {r["instance_type"]: r for r in data["prices"]}
    assert rows["t3.micro"]["on_demand_usd"] == 0.0104
    assert "price table" in rows["g5.xlarge"]["on_demand_source"]
    assert rows["t3.micro"]["spot_zone"].startswith("us-east-1")
    everything = ok_json("aws", "prices")
    assert len(everything["prices"]) > 50


def test_grant_lets_the_instance_role_read_a_prefix_and_nothing_more(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="team-data")
    s3.put_object(Bucket="team-data", Key="datasets/mnist/a.npz", Body=b"a")
    s3.put_object(Bucket="team-data", Key="private/b.npz", Body=b"b")
    bad = run("aws", "setup", "--read-only")
    assert bad.exit_code == 2 and "--grant" in bad.stderr
    done = ok_json(
        "aws", "setup", "--bucket", "b-grant", "--grant", "s3://team-data/datasets/", "--read-only"
    )
    [step] = [s for s in done["steps"] if s["name"].startswith("runctl-grant-")]
    assert step["action"] == "create" and step["detail"] == "read-only s3://team-data/datasets/"
    instance_id = ok_json("aws", "create", "t3.micro", "--wait", "--timeout", "60")["instance_id"]

    role_s3 = cloud.role_client(instance_id, "s3")
    listed = role_s3.list_objects_v2(Bucket="team-data", Prefix="datasets/")["Contents"]
    assert [o["Key"] for o in listed] == ["datasets/mnist/a.npz"]
    assert role_s3.get_object(Bucket="team-data", Key="datasets/mnist/a.npz")["Body"].read() == b"a"
    for call in (
        lambda: role_s3.get_object(Bucket="team-data", Key="private/b.npz"),
        lambda: role_s3.put_object(Bucket="team-data", Key="datasets/new", Body=b"x"),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == "AccessDenied"
    again = ok_json("aws", "setup", "--grant", "s3://team-data/datasets/", "--read-only")
    assert again["changed"] is False


@contextmanager
def propagating_after_a_refusal(cloud: Cloud) -> Iterator[None]:
    """IAM takes seconds (at worst minutes) to propagate a new instance profile to EC2: keep it
    invisible until EC2 has refused it once (a second RunInstances means the first got its
    answer), then let it through. A fixed delay raced `aws setup` on a loaded machine."""
    cloud.profile_propagation_delay = 3600.0
    done = threading.Event()

    def release() -> None:
        cloud.wait_for(lambda: done.is_set() or len(cloud.calls("RunInstances")) >= 2, 600)
        cloud.profile_propagation_delay = 0.0

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    try:
        yield
    finally:
        done.set()
        releaser.join()


def test_create_right_after_setup_waits_for_the_instance_profile(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    with propagating_after_a_refusal(cloud):
        ok_json("aws", "setup", "--bucket", "b-propagation")
        dry = run("aws", "create", "t3.micro", "--dry-run", "--output", "json")
    assert dry.exit_code == 0, dry.stderr
    assert len(cloud.calls("RunInstances")) >= 2


def test_a_real_create_right_after_setup_is_retried_not_a_usage_error(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    with propagating_after_a_refusal(cloud):
        ok_json("aws", "setup", "--bucket", "b-propagation")
        created = run("aws", "create", "t3.micro", "--output", "json")
    assert created.exit_code == 0, created.stderr
    assert json.loads(created.stdout)["instance_id"].startswith("i-")
    assert len(cloud.calls("RunInstances")) >= 2


def test_setup_adds_the_abort_incomplete_uploads_rule_beside_existing_rules(
    cloud_env: Cloud, workdir: Path
) -> None:
    s3 = cloud_env.client("s3")
    ok_json("aws", "setup", "--bucket", "fresh-bucket")
    s3.create_bucket(Bucket="their-bucket")
    theirs = {"ID": "expire-tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}}
    theirs["Expiration"] = {"Days": 3}  # type: ignore[assignment]
    s3.put_bucket_lifecycle_configuration(
        Bucket="their-bucket",
        LifecycleConfiguration={"Rules": [theirs]},  # type: ignore[list-item]
    )

    added = ok_json("aws", "setup", "--bucket", "their-bucket")
    again = ok_json("aws", "setup", "--bucket", "their-bucket")

    expected = {
        "ID": "runctl-abort-incomplete-uploads",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }
    fresh = s3.get_bucket_lifecycle_configuration(Bucket="fresh-bucket")["Rules"]
    assert fresh == [expected]
    rules = s3.get_bucket_lifecycle_configuration(Bucket="their-bucket")["Rules"]
    assert sorted(r["ID"] for r in rules) == ["expire-tmp", "runctl-abort-incomplete-uploads"]
    assert next(r for r in rules if r["ID"] == "expire-tmp")["Expiration"] == {"Days": 3}
    lifecycle = [s for s in added["steps"] if s["resource"] == "bucket-lifecycle"]
    assert [s["action"] for s in lifecycle] == ["create"]
    assert "7 days" in lifecycle[0]["detail"]
    assert {s["action"] for s in again["steps"] if s["resource"] == "bucket-lifecycle"} == {"ok"}
