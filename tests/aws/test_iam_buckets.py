"""IAM and bucket wrappers: missing entities are None, buckets get the right LocationConstraint."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from runctl.aws.buckets import Buckets
from runctl.aws.iam import Iam
from runctl.errors import UsageError
from runctl.services.account.setup import EC2_TRUST, bucket_policy
from tests.cloud.harness import Cloud


def test_role_policy_and_profile_round_trip(cloud: Cloud) -> None:
    iam = Iam(cloud.client("iam"))
    assert iam.get_role("r1") is None and iam.get_instance_profile("p1") is None
    role = iam.create_role("r1", EC2_TRUST, description="d", tags={"runctl:managed": "true"})
    assert iam.get_role("r1") == role
    iam.attach_role_policy("r1", "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
    assert iam.list_attached_role_policies("r1") == [
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    ]
    assert iam.get_role_policy("r1", "inline") is None
    iam.put_role_policy("r1", "inline", bucket_policy("b1"))
    assert iam.get_role_policy("r1", "inline") == bucket_policy("b1")
    iam.create_instance_profile("p1", tags={})
    iam.add_role_to_instance_profile("p1", "r1")
    profile = iam.get_instance_profile("p1")
    assert profile is not None and profile.role_names == ("r1",)


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_bucket_is_created_in_its_region(region: str) -> None:
    with mock_aws():
        client = boto3.client("s3", region_name=region)
        buckets = Buckets(client)
        assert not buckets.head_bucket("b-runctl")
        buckets.create_bucket("b-runctl", region, tags={"runctl:managed": "true"})
        assert buckets.head_bucket("b-runctl")
        assert buckets.get_bucket_region("b-runctl") == region
        tags = client.get_bucket_tagging(Bucket="b-runctl")["TagSet"]
        assert {"Key": "runctl:managed", "Value": "true"} in tags
        block = client.get_public_access_block(Bucket="b-runctl")["PublicAccessBlockConfiguration"]
        assert block["BlockPublicAcls"] is True
        buckets.create_bucket("b-runctl", region, tags={})


def test_a_bucket_name_taken_elsewhere_is_a_usage_error() -> None:
    client = boto3.client(
        "s3", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with Stubber(client) as stub:
        stub.add_client_error("create_bucket", "BucketAlreadyExists", "taken", 409)
        with pytest.raises(UsageError, match="taken"):
            Buckets(client).create_bucket("taken-name", "eu-west-1", tags={})


@pytest.mark.parametrize(
    ("constraint", "region"),
    [(None, "us-east-1"), ("", "us-east-1"), ("EU", "eu-west-1"), ("eu-west-1", "eu-west-1")],
)
def test_legacy_bucket_locations_name_their_region(constraint: str | None, region: str) -> None:
    # moto cannot make an "EU" bucket (its endpoint refuses the legacy constraint); AWS still
    # answers EU for buckets made with it, so the answer is stubbed.
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    answer = {} if constraint is None else {"LocationConstraint": constraint}
    with Stubber(client) as stub:
        stub.add_response("get_bucket_location", answer, {"Bucket": "old-bucket"})
        assert Buckets(client).get_bucket_region("old-bucket") == region
