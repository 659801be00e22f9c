"""The harness refuses what AWS refuses (tests.cloud.strict), with AWS's codes and wordings."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.cloud.harness import Cloud
from tests.cloud.test_imds import Imds


def _code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def _role_client(cloud: Cloud, instance_id: str, service: str) -> Any:
    """A client with the credentials the instance gets from its IMDS, read over HTTP."""
    imds = Imds(cloud.imds_endpoint(instance_id))
    base = "/latest/meta-data/iam/security-credentials/"
    role = imds.get(base).strip()
    creds = json.loads(imds.get(base + role))
    return cloud.client(
        service,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["Token"],
    )


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _bucket(cloud: Cloud, name: str = "strict-bucket", region: str | None = None) -> Any:
    s3 = cloud.client("s3", region=region)
    kwargs: dict[str, Any] = {"Bucket": name}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)
    return s3


def test_sigv2_presigned_urls_are_refused_and_sigv4_ones_work(cloud: Cloud) -> None:
    s3 = _bucket(cloud)
    s3.put_object(Bucket="strict-bucket", Key="k", Body=b"data")
    v2 = cloud.client("s3", config=Config(signature_version="s3"))
    status, body = _fetch(
        v2.generate_presigned_url("get_object", Params={"Bucket": "strict-bucket", "Key": "k"})
    )
    assert status == 400 and b"AWS4-HMAC-SHA256" in body and b"InvalidRequest" in body
    v4 = cloud.client("s3", config=Config(signature_version="s3v4"))
    url = v4.generate_presigned_url("get_object", Params={"Bucket": "strict-bucket", "Key": "k"})
    assert _fetch(url) == (200, b"data")


def test_a_presigned_url_for_another_region_than_the_buckets_is_refused(cloud: Cloud) -> None:
    cloud.seed_region("eu-west-1")
    s3 = _bucket(cloud, "eu-bucket", region="eu-west-1")
    s3.put_object(Bucket="eu-bucket", Key="k", Body=b"eu")
    wrong = cloud.client("s3", region="us-east-1", config=Config(signature_version="s3v4"))
    status, body = _fetch(
        wrong.generate_presigned_url("get_object", Params={"Bucket": "eu-bucket", "Key": "k"})
    )
    assert status == 400 and b"AuthorizationQueryParametersError" in body
    assert b"expecting 'eu-west-1'" in body
    right = cloud.client("s3", region="eu-west-1", config=Config(signature_version="s3v4"))
    url = right.generate_presigned_url("get_object", Params={"Bucket": "eu-bucket", "Key": "k"})
    assert _fetch(url) == (200, b"eu")


def test_instance_role_credentials_are_held_to_the_roles_policies(cloud: Cloud) -> None:
    s3 = _bucket(cloud)
    s3.put_object(Bucket="strict-bucket", Key="runctl/p/a.txt", Body=b"inside")
    s3.put_object(Bucket="strict-bucket", Key="datasets/d.txt", Body=b"outside")
    instance_id = cloud.run_instance()
    role_s3 = _role_client(cloud, instance_id, "s3")

    assert role_s3.get_object(Bucket="strict-bucket", Key="runctl/p/a.txt")["Body"].read() == (
        b"inside"
    )
    role_s3.put_object(Bucket="strict-bucket", Key="runctl/p/b.txt", Body=b"new")
    listed = role_s3.list_objects_v2(Bucket="strict-bucket", Prefix="runctl/")
    assert {o["Key"] for o in listed["Contents"]} == {"runctl/p/a.txt", "runctl/p/b.txt"}
    with pytest.raises(ClientError) as info:
        role_s3.get_object(Bucket="strict-bucket", Key="datasets/d.txt")
    assert _code(info) == "AccessDenied"
    assert "s3:GetObject" in str(info.value) and "datasets/d.txt" in str(info.value)
    with pytest.raises(ClientError) as info:
        role_s3.list_objects_v2(Bucket="strict-bucket", Prefix="datasets/")
    assert _code(info) == "AccessDenied"
    with pytest.raises(ClientError) as info:
        role_s3.head_object(Bucket="strict-bucket", Key="datasets/d.txt")
    assert _code(info) == "403"

    cloud.allow_s3("s3://strict-bucket/datasets/", read_only=True)
    assert role_s3.get_object(Bucket="strict-bucket", Key="datasets/d.txt")["Body"].read() == (
        b"outside"
    )
    with pytest.raises(ClientError) as info:
        role_s3.put_object(Bucket="strict-bucket", Key="datasets/new.txt", Body=b"x")
    assert _code(info) == "AccessDenied"
    # The tests' own keys are not held to any policy.
    s3.put_object(Bucket="strict-bucket", Key="datasets/new.txt", Body=b"x")


def test_instance_role_may_stop_only_runctl_managed_instances(cloud: Cloud) -> None:
    mine = cloud.run_instance(tags={"runctl:managed": "true"})
    other = cloud.run_instance()
    role_ec2 = _role_client(cloud, mine, "ec2")
    with pytest.raises(ClientError) as info:
        role_ec2.stop_instances(InstanceIds=[other])
    assert _code(info) == "UnauthorizedOperation" and "ec2:StopInstances" in str(info.value)
    assert cloud.state(other) == "running"
    role_ec2.terminate_instances(InstanceIds=[mine])
    assert cloud.state(mine) in ("shutting-down", "terminated")


def test_stopping_a_one_time_spot_instance_is_unsupported(cloud: Cloud) -> None:
    spot = cloud.run_instance(spot=True)
    ec2 = cloud.client("ec2")
    with pytest.raises(ClientError) as info:
        ec2.stop_instances(InstanceIds=[spot])
    assert _code(info) == "UnsupportedOperation" and "one-time Spot Instance request" in str(
        info.value
    )
    assert cloud.state(spot) == "running"
    on_demand = cloud.run_instance()
    ec2.stop_instances(InstanceIds=[on_demand])
    cloud.wait_state(on_demand, "stopped")


def test_user_data_over_16_kb_is_refused(cloud: Cloud) -> None:
    ec2 = cloud.client("ec2")
    params: dict[str, Any] = {
        "ImageId": cloud.amis["al2023"],
        "InstanceType": "t3.micro",
        "MinCount": 1,
        "MaxCount": 1,
    }
    limit = "#!/bin/bash\n" + "#" * (16 * 1024 - len("#!/bin/bash\n"))
    ec2.run_instances(UserData=limit, **params)
    with pytest.raises(ClientError) as info:
        ec2.run_instances(UserData=limit + "#", **params)
    assert _code(info) == "InvalidParameterValue" and "16384 bytes" in str(info.value)


def test_an_instance_profile_is_invisible_to_ec2_for_a_while(cloud: Cloud) -> None:
    cloud.profile_propagation_delay = 1.0
    iam, ec2 = cloud.client("iam"), cloud.client("ec2")
    iam.create_role(RoleName="fresh", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName="fresh")
    params: dict[str, Any] = {
        "ImageId": cloud.amis["al2023"],
        "InstanceType": "t3.micro",
        "MinCount": 1,
        "MaxCount": 1,
        "IamInstanceProfile": {"Name": "fresh"},
    }
    with pytest.raises(ClientError) as info:
        ec2.run_instances(**params)
    assert _code(info) == "InvalidParameterValue"
    assert "iamInstanceProfile.name is invalid" in str(info.value)
    iam.add_role_to_instance_profile(InstanceProfileName="fresh", RoleName="fresh")
    with pytest.raises(ClientError) as info:
        ec2.run_instances(**params)
    assert _code(info) == "InvalidParameterValue"
    assert "has no associated IAM Roles" in str(info.value)
    assert "iamInstanceProfile" not in str(info.value)
    started = time.monotonic()
    cloud.wait_for(lambda: _launches(ec2, params), timeout=10, interval=0.1)
    assert time.monotonic() - started < 10


def _launches(ec2: Any, params: dict[str, Any]) -> bool:
    try:
        ec2.run_instances(**params)
    except ClientError:
        return False
    return True


def test_send_command_parameters_over_the_document_limit_are_refused(cloud: Cloud) -> None:
    instance_id = cloud.run_instance()
    ssm = cloud.client("ssm", config=Config(retries={"total_max_attempts": 1}))
    ssm.send_command(
        InstanceIds=[instance_id],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["echo " + "x" * 60_000]},
    )
    with pytest.raises(ClientError) as info:
        ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName="AWS-RunShellScript",
            Parameters={"commands": ["echo " + "x" * 70_000]},
        )
    assert _code(info) == "InvalidParameters" and "65536" in str(info.value)


def test_an_executable_in_usr_local_bin_comes_first_on_the_instance_path(cloud: Cloud) -> None:
    instance_id = cloud.run_instance()
    path = cloud.install_executable(
        instance_id, "python3", "#!/bin/sh\necho 'Python 3.8.10 (fake)'\n"
    )
    assert path == cloud.sandbox(instance_id) / "usr/local/bin/python3"
    result = cloud.run_command(instance_id, "python3 --version; echo $PATH")
    version, search_path = result["StandardOutputContent"].splitlines()
    assert version == "Python 3.8.10 (fake)"
    assert search_path.split(":")[0] == str(cloud.sandbox(instance_id) / "usr/local/bin")
