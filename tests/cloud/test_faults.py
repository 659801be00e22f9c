"""Tests of injected faults: throttling, capacity errors, S3 uploads cut off, downloads held."""

from __future__ import annotations

import threading

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from tests.cloud.harness import Cloud

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def test_ec2_throttling(cloud: Cloud) -> None:
    cloud.throttle("DescribeInstances", times=2)
    ec2 = cloud.client("ec2", config=NO_RETRY)
    with pytest.raises(ClientError) as err:
        ec2.describe_instances()
    assert err.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    retrying = cloud.client(
        "ec2", config=Config(retries={"total_max_attempts": 3, "mode": "standard"})
    )
    retrying.describe_instances()
    assert len(cloud.calls("DescribeInstances")) == 3


def test_json_protocol_throttling(cloud: Cloud) -> None:
    cloud.throttle("DescribeInstanceInformation", times=1, service="ssm")
    ssm = cloud.client("ssm", config=NO_RETRY)
    with pytest.raises(ClientError) as err:
        ssm.describe_instance_information()
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    ssm.describe_instance_information()
    cloud.throttle("GetParameter", times=1)
    with pytest.raises(ClientError) as err:
        ssm.get_parameter(Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64")
    assert err.value.response["Error"]["Code"] == "ThrottlingException"


def test_query_and_s3_throttling(cloud: Cloud) -> None:
    cloud.throttle("ListRoles", times=1)
    with pytest.raises(ClientError) as err:
        cloud.client("iam", config=NO_RETRY).list_roles()
    assert err.value.response["Error"]["Code"] == "Throttling"
    cloud.throttle("ListBuckets", times=1)
    with pytest.raises(ClientError) as err:
        cloud.client("s3", config=NO_RETRY).list_buckets()
    assert err.value.response["Error"]["Code"] == "SlowDown"


def _launch(cloud: Cloud, az: str | None = None, spot: bool = True, **kw: object) -> str:
    ec2 = cloud.client("ec2", config=NO_RETRY)
    params: dict[str, object] = {
        "ImageId": cloud.amis["dl-ubuntu"],
        "InstanceType": "g5.xlarge",
        "MinCount": 1,
        "MaxCount": 1,
        **kw,
    }
    if spot:
        params["InstanceMarketOptions"] = {"MarketType": "spot"}
    if az:
        params["Placement"] = {"AvailabilityZone": az}
    instance_id: str = ec2.run_instances(**params)["Instances"][0]["InstanceId"]
    return instance_id


def test_spot_capacity_in_chosen_zones(cloud: Cloud) -> None:
    cloud.insufficient_capacity(azs=["us-east-1a", "us-east-1b"])
    for az in ("us-east-1a", "us-east-1b", None):
        with pytest.raises(ClientError) as err:
            _launch(cloud, az)
        assert err.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert _launch(cloud, "us-east-1c").startswith("i-")
    assert _launch(cloud, "us-east-1a", spot=False).startswith("i-")
    subnet = next(
        s["SubnetId"]
        for s in cloud.client("ec2").describe_subnets()["Subnets"]
        if s["AvailabilityZone"] == "us-east-1b"
    )
    with pytest.raises(ClientError):
        _launch(cloud, SubnetId=subnet)
    cloud.clear_faults()
    assert _launch(cloud, "us-east-1a").startswith("i-")


def test_capacity_everywhere_and_on_demand(cloud: Cloud) -> None:
    cloud.insufficient_capacity(spot_only=False, instance_types=["p4d.24xlarge"], times=1)
    with pytest.raises(ClientError) as err:
        _launch(cloud, "us-east-1d", spot=False, InstanceType="p4d.24xlarge")
    message = err.value.response["Error"]["Message"]
    assert "We currently do not have sufficient p4d.24xlarge capacity" in message
    assert "(us-east-1d)" in message
    assert _launch(cloud, "us-east-1d", spot=False, InstanceType="p4d.24xlarge")
    assert _launch(cloud, "us-east-1d", spot=False)


def test_a_zone_with_room_for_some_instances(cloud: Cloud) -> None:
    cloud.insufficient_capacity(azs=["us-east-1a"], after=2)
    assert _launch(cloud, "us-east-1a").startswith("i-")
    assert _launch(cloud, "us-east-1b").startswith("i-")  # another zone uses none of the room
    assert _launch(cloud, "us-east-1a").startswith("i-")
    with pytest.raises(ClientError) as err:
        _launch(cloud, "us-east-1a")
    assert err.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"


def test_capacity_errors_are_retried_by_default_clients(cloud: Cloud) -> None:
    cloud.insufficient_capacity(times=1)
    ec2 = cloud.client("ec2", config=Config(retries={"total_max_attempts": 2, "mode": "standard"}))
    ec2.run_instances(
        ImageId=cloud.amis["al2023"],
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        InstanceMarketOptions={"MarketType": "spot"},
    )
    assert len(cloud.calls("RunInstances")) == 2


def test_s3_upload_cut_once_is_retried(cloud: Cloud) -> None:
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="data")
    cloud.cut_s3_upload("ckpt/", times=1, after_bytes=1000)
    s3.put_object(Bucket="data", Key="ckpt/step-1.pt", Body=b"x" * 300_000)
    assert s3.get_object(Bucket="data", Key="ckpt/step-1.pt")["ContentLength"] == 300_000
    puts = [c for c in cloud.calls("PutObject") if c.key == "ckpt/step-1.pt"]
    assert len(puts) == 2


def test_s3_upload_cut_every_time_fails(cloud: Cloud) -> None:
    s3 = cloud.client("s3", config=Config(retries={"total_max_attempts": 3, "mode": "standard"}))
    s3.create_bucket(Bucket="data")
    cloud.cut_s3_upload("ckpt/", times=10, after_bytes=10)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError, ConnectionError)):
        s3.put_object(Bucket="data", Key="ckpt/a", Body=b"y" * 200_000)
    assert len(cloud.calls("PutObject")) == 3
    s3.put_object(Bucket="data", Key="other/a", Body=b"z")
    with pytest.raises(ClientError):
        s3.head_object(Bucket="data", Key="ckpt/a")


def test_s3_multipart_part_cut(cloud: Cloud, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="data")
    source = tmp_path / "big.bin"
    source.write_bytes(b"m" * (12 * 1024 * 1024))
    cloud.cut_s3_upload("big/", times=1, after_bytes=1024 * 1024)
    config = TransferConfig(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    s3.upload_file(str(source), "data", "big/file.bin", Config=config)
    assert s3.head_object(Bucket="data", Key="big/file.bin")["ContentLength"] == 12 * 1024 * 1024
    assert len(cloud.calls("UploadPart")) == 4


def test_s3_download_held_until_released_then_dropped(cloud: Cloud) -> None:
    s3 = cloud.client("s3", config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    s3.create_bucket(Bucket="data")
    body = bytes(range(256)) * 8192  # 2 MiB
    s3.put_object(Bucket="data", Key="held/x.bin", Body=body)
    s3.put_object(Bucket="data", Key="free/y.bin", Body=b"free")
    hold = cloud.hold_s3_download("held/", after_bytes=4096)
    got: list[bytes] = []
    failed: list[BaseException] = []

    def read() -> None:
        stream = s3.get_object(Bucket="data", Key="held/x.bin")["Body"]
        try:
            while chunk := stream.read(1024):
                got.append(chunk)
        except Exception as exc:  # the dropped connection, as botocore/urllib3 reports it
            failed.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    assert hold.reached.wait(timeout=60)
    # Other keys are served while the download is held.
    assert s3.get_object(Bucket="data", Key="free/y.bin")["Body"].read() == b"free"
    cloud.wait_for(lambda: len(b"".join(got)) == 4096)
    assert reader.is_alive()  # the held body never finishes by itself
    hold.release()
    reader.join(timeout=60)
    assert not reader.is_alive()
    assert failed and b"".join(got) == body[:4096]
    cloud.clear_faults()
    assert s3.get_object(Bucket="data", Key="held/x.bin")["Body"].read() == body
