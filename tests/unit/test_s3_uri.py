"""``s3://`` URI parsing: what is accepted, and a usage error (exit 2) for anything else."""

from __future__ import annotations

import pytest

from runctl.aws.s3 import S3Uri, is_s3_uri
from runctl.errors import ExitCode, UsageError


@pytest.mark.parametrize(
    ("text", "bucket", "key"),
    [
        ("s3://bucket", "bucket", ""),
        ("s3://bucket/", "bucket", ""),
        ("s3://bucket/a/b.txt", "bucket", "a/b.txt"),
        ("s3://my.bucket-1/dir/", "my.bucket-1", "dir/"),
        ("s3://bkt/key with space+ü", "bkt", "key with space+ü"),
        ("s3://Legacy_Bucket/k", "Legacy_Bucket", "k"),
    ],
)
def test_parse_accepts_well_formed_uris(text: str, bucket: str, key: str) -> None:
    uri = S3Uri.parse(text)
    assert (uri.bucket, uri.key) == (bucket, key)


@pytest.mark.parametrize(
    "text",
    [
        "bucket/key",
        "/local/path",
        "s3:/bucket/key",
        "S3://bucket/key",
        "s3://",
        "s3:///key",
        "s3://ab/key",
        "s3://-bucket/key",
        "s3://bucket-/key",
        "s3://a..b/key",
        "s3://bu cket/key",
        "s3://bucket/ke\x01y",
        "s3://" + "b" * 256,
    ],
)
def test_parse_refuses_malformed_uris_with_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        S3Uri.parse(text)
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.hint


def test_prefix_helpers() -> None:
    uri = S3Uri.parse("s3://bkt/data")
    assert not uri.is_prefix
    assert uri.as_prefix() == S3Uri("bkt", "data/")
    assert uri.join("a/b.txt") == S3Uri("bkt", "data/a/b.txt")
    assert S3Uri("bkt").join("x") == S3Uri("bkt", "x")
    assert S3Uri("bkt").is_prefix and S3Uri("bkt", "d/").is_prefix
    assert S3Uri("bkt", "a/b.txt").name == "b.txt"
    assert S3Uri("bkt", "a/dir/").name == "dir"
    assert str(S3Uri("bkt", "a b")) == "s3://bkt/a b"
    assert str(S3Uri.parse("s3://bkt")) == "s3://bkt/"


def test_is_s3_uri() -> None:
    assert is_s3_uri("s3://bkt/x")
    assert not is_s3_uri("./s3://x")
    assert not is_s3_uri("data")
