"""``runctl doctor`` end to end against the harness: a broken account, then a good one.

moto's Service Quotas knows no EC2 quota: the harness answers GetServiceQuota for the quotas a
test sets (tests/cloud/quotas.py), as AWS answers it; IAM's SimulatePrincipalPolicy is the
harness's evaluation of the role's policies (tests/cloud/iam_authz.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.aws_helpers import ok_json, run
from tests.cloud.harness import Cloud

STANDARD_ON_DEMAND = "L-1216C47A"
STANDARD_SPOT = "L-34B43A08"


def checks(result_stdout: str) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in json.loads(result_stdout)["checks"]}


def test_doctor_names_missing_profile_and_exhausted_quota(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    cloud.set_service_quota("ec2", STANDARD_ON_DEMAND, 4)
    cloud.run_instance(instance_type="t3.medium", profile=None)  # 2 vCPUs of the 4
    result = run("doctor", "--instance-type", "t3.xlarge", "--output", "json")
    found = checks(result.stdout)
    assert found["credentials"]["status"] == "passed"
    assert found["region"]["status"] == "passed"
    assert found["bucket"]["status"] == "failed" and "aws setup" in found["bucket"]["fix"]
    profile = found["instance profile"]
    assert profile["status"] == "failed"
    assert "runctl-instance does not exist" in profile["detail"]
    quota = found["vcpu quota"]
    assert quota["status"] == "failed"
    assert "2 vCPUs in use" in quota["detail"] and "needs 4" in quota["detail"]
    assert STANDARD_ON_DEMAND in quota["fix"]
    assert found["ami"]["status"] == "passed"
    assert json.loads(result.stdout)["ok"] is False
    assert result.exit_code == 3  # the first failure (no bucket configured) is a config error

    text = run("doctor", "--instance-type", "t3.xlarge")
    assert text.exit_code == 3
    assert "✗ instance profile" in text.stdout and "fix: run `runctl aws setup`" in text.stdout
    assert "✓ credentials" in text.stdout


def test_doctor_passes_in_a_good_account(
    cloud_env: Cloud, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = cloud_env
    cloud.set_service_quota("ec2", STANDARD_ON_DEMAND, 64)
    ok_json("aws", "setup", "--bucket", "doctor-bucket")
    created = ok_json("aws", "create", "t3.micro", "--wait")
    result = run("doctor", "--output", "json")
    assert result.exit_code == 0, result.stdout
    found = checks(result.stdout)
    assert {name: c["status"] for name, c in found.items()} == {
        "credentials": "passed",
        "region": "passed",
        "bucket": "passed",
        "instance profile": "passed",
        "ssm policy": "passed",
        "bucket access": "passed",
        "recovery grant": "passed",
        "vcpu quota": "passed",
        "ami": "passed",
        "ssm": "passed",
    }
    assert "1 running instance(s) online" in found["ssm"]["detail"]
    assert "1 vCPUs" not in found["vcpu quota"]["detail"]  # t3.micro counts its 2 vCPUs
    assert created["instance_id"]


def test_doctor_spot_quota_and_unknown_quota(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    ok_json("aws", "setup", "--bucket", "doctor-bucket")
    unknown = checks(run("doctor", "-o", "json").stdout)["vcpu quota"]
    assert unknown["status"] == "unknown" and STANDARD_ON_DEMAND in unknown["detail"]
    cloud.set_service_quota("ec2", STANDARD_SPOT, 0)
    ok_json("config", "set", "aws.use_spot", "true")
    result = run("doctor", "-o", "json")
    spot = checks(result.stdout)["vcpu quota"]
    assert spot["status"] == "failed" and spot["detail"].startswith("spot ")
    assert result.exit_code == 5


def test_doctor_bucket_in_another_region(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    cloud.client("s3", region="eu-west-1").create_bucket(
        Bucket="far-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    workdir.joinpath(".runctl.toml").write_text('[aws]\ns3_bucket = "far-bucket"\n')
    bucket = checks(run("doctor", "-o", "json").stdout)["bucket"]
    assert bucket["status"] == "failed" and "is in eu-west-1" in bucket["detail"]


def test_doctor_without_credentials_fails_with_exit_4(
    cloud_env: Cloud, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    result = run("doctor", "-o", "json")
    found = checks(result.stdout)
    assert found["credentials"]["status"] == "failed"
    assert found["bucket"]["status"] == "skipped"
    assert result.exit_code == 4


def test_doctor_refuses_a_malformed_region_before_any_call(cloud_env: Cloud, workdir: Path) -> None:
    cloud_env.request_log.clear()
    result = run("doctor", "--region", "us east 1")
    assert result.exit_code == 2 and "is not a region name" in result.stderr
    assert list(cloud_env.request_log) == []
    # A well-formed name of no region: AWS has no endpoint there, moto answers a 500 page;
    # either way the check fails, says why, and the rest still runs.
    result = run("doctor", "--region", "xx-nowhere-9", "-o", "json")
    found = checks(result.stdout)
    assert found["region"]["status"] == "failed" and found["region"]["detail"]
    assert result.exit_code != 0


def test_doctor_names_a_role_without_the_recovery_grant(cloud_env: Cloud, workdir: Path) -> None:
    """A role set up before --detach existed (no runctl-recovery policy) fails one check, exit 4."""
    cloud = cloud_env
    cloud.set_service_quota("ec2", STANDARD_ON_DEMAND, 64)
    ok_json("aws", "setup", "--bucket", "doctor-bucket")
    iam = cloud.client("iam")
    role = iam.get_instance_profile(InstanceProfileName="runctl-instance")["InstanceProfile"]
    iam.delete_role_policy(RoleName=role["Roles"][0]["RoleName"], PolicyName="runctl-recovery")
    result = run("doctor", "--output", "json")
    found = checks(result.stdout)
    grant = found["recovery grant"]
    assert grant["status"] == "failed"
    assert "ec2:RunInstances" in grant["detail"] and "runctl-recovery" in grant["fix"]
    assert found["bucket access"]["status"] == "passed"
    assert result.exit_code == 4
