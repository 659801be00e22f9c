"""The pre-start check: does the instance role reach the job's S3 URIs? Asked of IAM
(SimulatePrincipalPolicy, served by the harness with the policies it enforces)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from runctl.aws.buckets import Buckets
from runctl.aws.ec2 import Ec2
from runctl.aws.iam import Iam
from runctl.errors import AuthError
from runctl.services.account.access import (
    check_instance_ecr_access,
    check_instance_s3_access,
    role_s3_access,
    s3_needs,
)
from runctl.services.account.setup import (
    DEFAULT_PROFILE,
    Grant,
    apply_setup,
    parse_grant,
    plan_setup,
)
from tests.cloud.harness import Cloud


def setup(cloud: Cloud, *grants: Grant) -> None:
    """``aws setup`` of the job bucket (and grants), as the CLI runs it."""
    plan = plan_setup(
        Iam(cloud.client("iam")),
        Buckets(cloud.client("s3")),
        bucket="job-bucket",
        region=cloud.region,
        grants=grants,
    )
    apply_setup(plan, dry_run=False)


def _instance(cloud: Cloud) -> tuple[Iam, object]:
    setup(cloud)
    instance_id = cloud.run_instance(profile=DEFAULT_PROFILE)
    return Iam(cloud.client("iam")), Ec2(cloud.client("ec2")).describe_instance(instance_id)


def test_data_outside_the_grant_is_refused_with_the_fix(cloud: Cloud) -> None:
    iam, instance = _instance(cloud)
    needs = s3_needs(
        data_s3="s3://team-data/datasets/mnist/",
        checkpoint_s3="s3://job-bucket/runctl/demo/ckpt/",
    )
    with pytest.raises(AuthError) as info:
        check_instance_s3_access(iam, instance, needs, region="us-east-1")  # type: ignore[arg-type]
    error = info.value
    assert error.exit_code == 4 and error.resource == "s3://team-data/datasets/mnist/"
    assert "--data-s3" in error.message and "runctl-instance-role" in error.message
    assert "s3:ListBucket is implicitDeny" in error.message
    assert "runctl aws setup --grant s3://team-data/datasets/mnist/ --read-only" in (
        error.hint or ""
    )

    setup(cloud, parse_grant("s3://team-data/datasets/", read_only=True))
    assert check_instance_s3_access(iam, instance, needs, region="us-east-1") == []  # type: ignore[arg-type]


def test_writing_under_a_read_only_grant_is_refused(cloud: Cloud) -> None:
    iam, instance = _instance(cloud)
    setup(cloud, parse_grant("s3://team-data/out/", read_only=True))
    needs = s3_needs(output_s3="s3://team-data/out/run1/")
    with pytest.raises(AuthError) as info:
        check_instance_s3_access(iam, instance, needs, region="us-east-1")  # type: ignore[arg-type]
    assert "may not write s3://team-data/out/run1/" in info.value.message
    assert info.value.hint is not None and "--read-only" not in info.value.hint
    setup(cloud, parse_grant("s3://team-data/out/", read_only=False))
    assert check_instance_s3_access(iam, instance, needs, region="us-east-1") == []  # type: ignore[arg-type]


def test_doctor_gets_every_verdict(cloud: Cloud) -> None:
    iam, _ = _instance(cloud)
    role = iam.get_role("runctl-instance-role")
    assert role is not None
    findings = role_s3_access(
        iam,
        role.arn,
        s3_needs(data_s3="s3://job-bucket/runctl/data/", output_s3="s3://elsewhere/x/"),
        region="us-east-1",
    )
    verdicts = {(f.need.option, f.action): f.allowed for f in findings}
    assert verdicts == {
        ("--data-s3", "s3:ListBucket"): True,
        ("--data-s3", "s3:GetObject"): True,
        ("--output-s3", "s3:ListBucket"): False,
        ("--output-s3", "s3:PutObject"): False,
    }


def test_no_permission_to_simulate_is_a_warning_not_a_refusal(cloud: Cloud) -> None:
    _, instance = _instance(cloud)
    # moto cannot refuse the caller's own IAM calls: the denial is stubbed.
    client = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with Stubber(client) as stub:
        stub.add_response(
            "get_instance_profile",
            {
                "InstanceProfile": {
                    "Path": "/",
                    "InstanceProfileName": "runctl-instance",
                    "InstanceProfileId": "AIPAEXAMPLEEXAMPLE01",
                    "Arn": "arn:aws:iam::123456789012:instance-profile/runctl-instance",
                    "CreateDate": "2025-01-01T00:00:00Z",
                    "Roles": [
                        {
                            "Path": "/",
                            "RoleName": "r",
                            "RoleId": "AROAEXAMPLEEXAMPLE01",
                            "Arn": "arn:aws:iam::123456789012:role/r",
                            "CreateDate": "2025-01-01T00:00:00Z",
                        }
                    ],
                }
            },
        )
        stub.add_response(
            "get_role",
            {
                "Role": {
                    "Path": "/",
                    "RoleName": "r",
                    "RoleId": "AROAEXAMPLEEXAMPLE01",
                    "Arn": "arn:aws:iam::123456789012:role/r",
                    "CreateDate": "2025-01-01T00:00:00Z",
                }
            },
        )
        stub.add_client_error("simulate_principal_policy", "AccessDenied", "no", 403)
        warnings = check_instance_s3_access(
            Iam(client),
            instance,  # type: ignore[arg-type]
            s3_needs(data_s3="s3://team-data/x/"),
            region="us-east-1",
        )
    assert len(warnings) == 1 and "could not check" in warnings[0]


def test_aws_setup_lets_instances_pull_runctl_images_and_nothing_else(cloud: Cloud) -> None:
    iam, instance = _instance(cloud)
    repository = f"arn:aws:ecr:us-east-1:{cloud.account_id}:repository/"
    granted = check_instance_ecr_access(
        iam,
        instance,
        repository + "runctl/demo",
        image="runctl/demo:1",  # type: ignore[arg-type]
    )
    assert granted == []
    with pytest.raises(AuthError) as info:
        check_instance_ecr_access(
            iam,
            instance,
            repository + "team/demo",
            image="team/demo:1",  # type: ignore[arg-type]
        )
    assert "may not pull team/demo:1: ecr:BatchGetImage is implicitDeny" in info.value.message
    assert "runctl aws setup" in (info.value.hint or "")
