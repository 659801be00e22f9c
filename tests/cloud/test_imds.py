"""Tests of the per-instance IMDS: tokens, metadata, credentials, spot notices."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from botocore.credentials import InstanceMetadataProvider
from botocore.utils import InstanceMetadataFetcher

from tests.cloud.harness import Cloud
from tests.cloud.test_ssm import _alive


class Imds:
    """A tiny IMDSv2 client."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.token = self.put_token()

    def put_token(self, ttl: str | None = "60") -> str:
        headers = {} if ttl is None else {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
        req = urllib.request.Request(self.base + "/latest/api/token", method="PUT", headers=headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return str(resp.read().decode())

    def get(self, path: str, token: str | None = "") -> str:
        headers: dict[str, str] = {}
        if token is not None:
            headers["X-aws-ec2-metadata-token"] = self.token if token == "" else token
        req = urllib.request.Request(self.base + path, headers=headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return str(resp.read().decode())

    def status(self, path: str, token: str | None = "") -> int:
        try:
            self.get(path, token)
        except urllib.error.HTTPError as err:
            return int(err.code)
        return 200


def test_token_is_required(cloud: Cloud) -> None:
    imds = Imds(cloud.imds_endpoint(cloud.run_instance()))
    assert imds.status("/latest/meta-data/instance-id", token=None) == 401
    assert imds.status("/latest/meta-data/instance-id", token="bogus") == 401
    assert imds.status("/latest/meta-data/instance-id") == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        imds.put_token(ttl=None)
    assert err.value.code == 400
    with pytest.raises(urllib.error.HTTPError):
        imds.put_token(ttl="0")


def test_metadata(cloud: Cloud) -> None:
    iid = cloud.run_instance(instance_type="g5.xlarge", az="us-east-1c")
    imds = Imds(cloud.imds_endpoint(iid))
    assert imds.get("/latest/meta-data/instance-id") == iid
    assert imds.get("/latest/meta-data/instance-type") == "g5.xlarge"
    assert imds.get("/latest/meta-data/placement/availability-zone") == "us-east-1c"
    assert imds.get("/latest/meta-data/placement/availability-zone/") == "us-east-1c"
    assert imds.get("/latest/meta-data/placement/region") == "us-east-1"
    assert imds.get("/latest/meta-data/instance-life-cycle") == "on-demand"
    assert imds.get("/latest/meta-data/ami-id") == cloud.amis["al2023"]
    listing = imds.get("/latest/meta-data/").splitlines()
    assert "instance-id" in listing and "placement/" in listing and "iam/" in listing
    assert "spot/" not in listing
    doc = json.loads(imds.get("/latest/dynamic/instance-identity/document"))
    assert (doc["instanceId"], doc["region"]) == (iid, "us-east-1")
    assert imds.status("/latest/user-data") == 404
    spot = Imds(cloud.imds_endpoint(cloud.run_instance(spot=True)))
    assert spot.get("/latest/meta-data/instance-life-cycle") == "spot"


def test_user_data_is_served(cloud: Cloud) -> None:
    iid = cloud.run_instance(user_data="#!/bin/sh\ntrue\n")
    assert Imds(cloud.imds_endpoint(iid)).get("/latest/user-data") == "#!/bin/sh\ntrue\n"


def test_role_credentials_work_with_botocore(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    imds = Imds(cloud.imds_endpoint(iid))
    assert imds.get("/latest/meta-data/iam/security-credentials/") == "runctl-harness"
    creds = json.loads(imds.get("/latest/meta-data/iam/security-credentials/runctl-harness"))
    assert creds["Code"] == "Success" and creds["Type"] == "AWS-HMAC"
    assert creds["Expiration"].endswith("Z")
    info = json.loads(imds.get("/latest/meta-data/iam/info"))
    assert info["InstanceProfileArn"].endswith(":instance-profile/runctl-harness")

    fetcher = InstanceMetadataFetcher(
        timeout=2,
        num_attempts=1,
        config={"ec2_metadata_service_endpoint": cloud.imds_endpoint(iid)},
    )
    found = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
    assert found is not None
    frozen = found.get_frozen_credentials()
    assert frozen.access_key == creds["AccessKeyId"]
    sts = cloud.client(
        "sts",
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token,
    )
    arn = sts.get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::{cloud.account_id}:assumed-role/runctl-harness/{iid}"


def test_no_profile_no_credentials(cloud: Cloud) -> None:
    imds = Imds(cloud.imds_endpoint(cloud.run_instance(profile=None)))
    assert imds.status("/latest/meta-data/iam/security-credentials/") == 404


def test_spot_interruption_notice_then_termination(cloud: Cloud) -> None:
    iid = cloud.run_instance(spot=True)
    imds = Imds(cloud.imds_endpoint(iid))
    assert imds.status("/latest/meta-data/spot/instance-action") == 404
    cloud.run_command(iid, "setsid sleep 60 >/dev/null 2>&1 < /dev/null & echo $! > $HOME/pid")
    pid = int((cloud.sandbox(iid) / "pid").read_text())
    before = time.time()
    cloud.interrupt(iid, notice_seconds=1)
    notice = json.loads(imds.get("/latest/meta-data/spot/instance-action"))
    assert notice["action"] == "terminate"
    when = time.mktime(time.strptime(notice["time"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before - 1 <= when <= before + 3
    assert imds.get("/latest/meta-data/spot/termination-time") == notice["time"]
    assert cloud.state(iid) == "running"
    cloud.wait_state(iid, "terminated", timeout=5)
    cloud.wait_for(lambda: not _alive(pid), timeout=5)
    described = cloud.client("ec2").describe_instances(InstanceIds=[iid])
    instance = described["Reservations"][0]["Instances"][0]
    assert instance["StateReason"]["Code"] == "Server.SpotInstanceTermination"
    assert not cloud.sandbox(iid).exists()


def test_interrupt_at_once_and_only_spot(cloud: Cloud) -> None:
    iid = cloud.run_instance(spot=True)
    cloud.interrupt(iid, notice_seconds=0)
    assert cloud.state(iid) == "terminated"
    with pytest.raises(ValueError):
        cloud.interrupt(cloud.run_instance(), notice_seconds=0)


def test_rebalance_recommendation(cloud: Cloud) -> None:
    iid = cloud.run_instance(spot=True)
    imds = Imds(cloud.imds_endpoint(iid))
    path = "/latest/meta-data/events/recommendations/rebalance"
    assert imds.status(path) == 404
    cloud.rebalance(iid)
    assert "noticeTime" in json.loads(imds.get(path))
    assert cloud.state(iid) == "running"
