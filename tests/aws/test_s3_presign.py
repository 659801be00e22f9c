"""Presigned GET URLs: SigV4 (never SigV2), signed for the bucket's region, short-lived."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config

from runctl.aws.s3_presign import presign_get_object


def _client(region: str, **kw: object) -> object:
    return boto3.client(
        "s3", region_name=region, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="s", **kw
    )


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_a_default_client_would_presign_sigv2_which_is_why_this_module_exists() -> None:
    url = _client("us-east-1").generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60
    )
    assert "AWSAccessKeyId" in _query(url)


@pytest.mark.parametrize("client_region", ["us-east-1", "eu-west-1", "ap-south-1"])
def test_url_is_sigv4_signed_for_the_bucket_region_and_expires_in_minutes(
    client_region: str,
) -> None:
    client = _client(client_region)
    url = presign_get_object(client, "bucket-x", "runctl/r.tar.gz", region="eu-west-1", expires=600)  # type: ignore[arg-type]
    parts = urlsplit(url)
    query = _query(url)
    assert parts.netloc == "bucket-x.s3.eu-west-1.amazonaws.com"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["600"]
    assert query["X-Amz-Credential"][0].split("/")[2:] == ["eu-west-1", "s3", "aws4_request"]


def test_url_is_what_a_client_in_the_bucket_region_would_presign() -> None:
    native = _client(
        "eu-central-1", config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
    )
    for _ in range(5):  # the two URLs carry the signing second: retry across a tick
        ours = presign_get_object(_client("us-east-1"), "b", "k", region="eu-central-1", expires=60)  # type: ignore[arg-type]
        theirs = native.generate_presigned_url(  # type: ignore[attr-defined]
            "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60
        )
        if _query(ours)["X-Amz-Date"] == _query(theirs)["X-Amz-Date"]:
            break
    assert ours == theirs


def test_other_buckets_and_later_requests_of_the_client_are_untouched() -> None:
    client = _client("us-east-1")
    presign_get_object(client, "b", "k", region="eu-west-1", expires=60)  # type: ignore[arg-type]
    after = client.generate_presigned_url(  # type: ignore[attr-defined]
        "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60
    )
    assert "AWSAccessKeyId" in _query(after)  # the handlers were removed again


def test_custom_endpoint_is_kept() -> None:
    client = _client("us-east-1", endpoint_url="http://127.0.0.1:9")
    url = presign_get_object(client, "b", "k", region="eu-west-1", expires=60)  # type: ignore[arg-type]
    assert url.startswith("http://127.0.0.1:9/b/k?")
    assert "/eu-west-1/s3/aws4_request" in _query(url)["X-Amz-Credential"][0]
