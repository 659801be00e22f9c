"""The one session factory: endpoints, region, retries, user agent, missing credentials."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runctl import __version__
from runctl.aws.session import MAX_ATTEMPTS, AwsContext
from runctl.cli.app import app
from runctl.errors import ConfigError
from tests.cloud.harness import Cloud
from tests.cloud.imds import StandaloneImds


def test_aws_endpoint_url_is_honoured(cloud_env: Cloud) -> None:
    s3 = AwsContext().s3()
    assert s3.meta.endpoint_url == cloud_env.endpoint
    s3.create_bucket(Bucket="endpoint-check")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["endpoint-check"]
    assert ("s3", "ListBuckets") in {(c.service, c.operation) for c in cloud_env.request_log}


def test_service_specific_endpoint_wins(cloud_env: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", cloud_env.endpoint)
    aws = AwsContext()
    assert aws.s3().meta.endpoint_url == cloud_env.endpoint
    assert aws.ec2().meta.endpoint_url == "http://127.0.0.1:9"
    aws.s3().list_buckets()


def test_user_agent_retries_and_timeouts(cloud_env: Cloud) -> None:
    ec2 = AwsContext().ec2()
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(request.headers["User-Agent"].decode())

    ec2.meta.events.register("before-send", capture)
    ec2.describe_regions()
    assert f"runctl/{__version__}" in seen[0]
    config = ec2.meta.config
    assert config.retries["mode"] == "standard"
    assert config.retries["total_max_attempts"] == MAX_ATTEMPTS
    assert config.connect_timeout and config.read_timeout


def test_throttling_is_retried_by_botocore(cloud_env: Cloud) -> None:
    cloud_env.throttle("DescribeRegions", 2)
    regions = AwsContext().ec2().describe_regions()["Regions"]
    assert regions
    assert len(cloud_env.calls("DescribeRegions")) == 3


def test_client_is_built_once_per_service(cloud_env: Cloud) -> None:
    aws = AwsContext()
    assert aws.s3() is aws.s3()


def test_region_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\nregion = ap-southeast-2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    assert AwsContext().region_name == "ap-southeast-2"
    assert AwsContext(config_region="eu-central-1").region_name == "eu-central-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-1")
    assert AwsContext(config_region="eu-central-1").region_name == "us-west-1"
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert AwsContext(config_region="eu-central-1").region_name == "us-west-2"
    assert AwsContext(region="sa-east-1", config_region="x").region_name == "sa-east-1"


def test_no_region_anywhere_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="no AWS region"):
        _ = AwsContext().region_name


def test_unknown_profile_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="nope"):
        _ = AwsContext(profile="nope").session


def test_missing_credentials_exit_4_with_how_to_configure(
    cloud_env: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(app, ["aws", "status", "i-0123456789abcdef0"])
    assert result.exit_code == 4, result.output
    assert "no AWS credentials" in result.stderr
    assert "aws configure" in result.stderr
    assert "Traceback" not in result.stderr


class _SlowRoleImds(StandaloneImds):
    """An IMDS that hands out role credentials, each answer taking longer than botocore's 1 s."""

    def metadata(self) -> dict[str, Any]:
        time.sleep(2)
        creds = {
            "Code": "Success",
            "Type": "AWS-HMAC",
            "AccessKeyId": "ASIAROLEFROMIMDS0000",
            "SecretAccessKey": "secret",
            "Token": "token",
            "Expiration": "2099-01-01T00:00:00Z",
        }
        return {
            **super().metadata(),
            "iam": {"security-credentials": {"runctl-instance": json.dumps(creds)}},
        }


def test_on_an_instance_a_slow_imds_still_gives_the_role_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A busy instance answers IMDS slowly: the runner waits for its role's credentials, where
    botocore's defaults (1 s, one attempt) would find none; a laptop keeps the quick give-up."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    imds = _SlowRoleImds()
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint)
    try:
        creds = AwsContext(on_instance=True).session.get_credentials()
        assert creds is not None and creds.access_key == "ASIAROLEFROMIMDS0000"
        assert AwsContext().session.get_credentials() is None
    finally:
        imds.close()
