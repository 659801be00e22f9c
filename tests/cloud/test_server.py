"""Tests of the harness's server, environment, seeded images and moto settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.cloud.harness import Cloud

AL2023_PARAM = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


def test_endpoint_and_env(cloud: Cloud) -> None:
    assert cloud.endpoint.startswith("http://127.0.0.1:")
    env = cloud.env
    assert env["AWS_ENDPOINT_URL"] == cloud.endpoint
    assert env["AWS_ACCESS_KEY_ID"] == "testing"
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == "us-east-1"
    assert not os.path.exists(env["AWS_CONFIG_FILE"])
    assert not os.path.exists(env["AWS_SHARED_CREDENTIALS_FILE"])
    assert os.path.isdir(env["HOME"])


def test_cli_subprocess_reaches_moto(cloud: Cloud) -> None:
    code = (
        "import boto3, json\n"
        "ec2 = boto3.client('ec2')\n"
        "images = ec2.describe_images(Owners=['amazon'])['Images']\n"
        "print(json.dumps(sorted(i['ImageId'] for i in images)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=cloud.subprocess_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    ids = json.loads(done.stdout)
    assert cloud.amis["al2023"] in ids
    assert cloud.amis["dl-ubuntu"] in ids
    assert cloud.amis["ubuntu2204"] not in ids  # Canonical's, not amazon's
    assert [c.operation for c in cloud.request_log] == ["DescribeImages"]


def test_cloud_env_for_in_process_use(cloud_env: Cloud) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == cloud_env.endpoint
    sts = boto3.session.Session().client("sts")
    assert sts.get_caller_identity()["Account"] == cloud_env.account_id


def test_seeded_images(cloud: Cloud) -> None:
    ec2 = cloud.client("ec2")
    images = ec2.describe_images(
        Owners=["amazon"],
        Filters=[
            {
                "Name": "name",
                "Values": [
                    "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.5.1 (Ubuntu 22.04) *"
                ],
            },
            {"Name": "architecture", "Values": ["x86_64"]},
        ],
    )["Images"]
    assert len(images) == 3
    newest = max(images, key=lambda i: i["CreationDate"])
    assert newest["ImageId"] == cloud.amis["dl-ubuntu"]
    assert newest["Name"].endswith("20250101")
    assert newest["RootDeviceName"] == "/dev/sda1"
    assert newest["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 75
    assert newest["ImageOwnerAlias"] == "amazon"
    (al,) = ec2.describe_images(ImageIds=[cloud.amis["al2023"]])["Images"]
    assert al["Name"] == "al2023-ami-2023.6.20250115.0-kernel-6.1-x86_64"
    assert al["RootDeviceName"] == "/dev/xvda"
    assert al["OwnerId"] == "137112412989"
    (ubuntu,) = ec2.describe_images(ImageIds=[cloud.amis["ubuntu2404"]])["Images"]
    assert ubuntu["Name"] == "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250115"
    assert ubuntu["OwnerId"] == "099720109477"


def test_public_parameters_name_existing_images(cloud: Cloud) -> None:
    ssm = cloud.client("ssm")
    ec2 = cloud.client("ec2")
    value = ssm.get_parameter(Name=AL2023_PARAM)["Parameter"]["Value"]
    assert value == cloud.amis["al2023"]
    listed = ssm.get_parameters_by_path(Path="/aws/service/ami-amazon-linux-latest")
    for param in listed["Parameters"]:
        assert ec2.describe_images(ImageIds=[param["Value"]])["Images"]
    arm = ssm.get_parameter(Name=AL2023_PARAM.replace("x86_64", "arm64"))["Parameter"]["Value"]
    assert arm == cloud.amis["al2023-arm64"]
    dl = (
        "/aws/service/deeplearning/ami/x86_64/"
        "oss-nvidia-driver-gpu-pytorch-2.5-ubuntu-22.04/latest/ami-id"
    )
    assert ssm.get_parameter(Name=dl)["Parameter"]["Value"] == cloud.amis["dl-ubuntu"]


def test_moto_validation_is_on(cloud: Cloud) -> None:
    ec2 = cloud.client("ec2")
    base = {"MinCount": 1, "MaxCount": 1, "InstanceType": "t3.micro"}
    with pytest.raises(ClientError) as err:
        ec2.run_instances(ImageId="ami-0123456789abcdef0", **base)
    assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"
    with pytest.raises(ClientError) as err:
        ec2.run_instances(ImageId=cloud.amis["al2023"], **{**base, "InstanceType": "t9.huge"})
    assert err.value.response["Error"]["Code"].startswith("InvalidInstanceType")
    with pytest.raises(ClientError) as err:
        ec2.run_instances(ImageId=cloud.amis["al2023"], KeyName="missing", **base)
    assert err.value.response["Error"]["Code"] == "InvalidKeyPair.NotFound"
    iam = cloud.client("iam")
    policy = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
    assert policy["Policy"]["PolicyName"] == "AmazonSSMManagedInstanceCore"


def test_request_log_counts_s3_puts(cloud: Cloud) -> None:
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="runs")
    for step in range(3):
        s3.put_object(Bucket="runs", Key=f"ckpt/{step}", Body=b"x")
    puts = cloud.calls("PutObject", service="s3")
    assert [c.key for c in puts] == ["ckpt/0", "ckpt/1", "ckpt/2"]
    assert cloud.calls("CreateBucket")[0].key is None


def test_mock_aws_after_the_harness_is_unaffected() -> None:
    """Runs after cloud tests in this session: moto's global settings were restored."""
    from moto import mock_aws, settings

    assert settings.ENABLE_AMI_VALIDATION is bool(os.environ.get("MOTO_ENABLE_AMI_VALIDATION"))
    with mock_aws():
        ec2 = boto3.client(
            "ec2",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        if not settings.ENABLE_AMI_VALIDATION:
            ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)
        assert ec2.describe_images(Owners=["amazon"])["Images"]
