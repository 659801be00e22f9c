"""Bucket-level S3 operations ``aws setup`` needs: exists?, create (in the right region), guard,
and the bucket's lifecycle rules.

Object transfers live in ``runctl.aws.s3*``; this module only manages the bucket itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from runctl.aws.errors import aws_errors, error_code, translate
from runctl.errors import AuthError, RunctlError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class Buckets:
    """The bucket operations ``aws setup`` uses."""

    def __init__(self, client: S3Client):
        self.client = client

    def head_bucket(self, bucket: str) -> bool:
        return head_bucket(self.client, bucket)

    def get_bucket_region(self, bucket: str) -> str:
        return get_bucket_region(self.client, bucket)

    def create_bucket(self, bucket: str, region: str, *, tags: Mapping[str, str]) -> None:
        create_bucket(self.client, bucket, region, tags=tags)

    def get_lifecycle_rules(self, bucket: str) -> list[dict[str, Any]]:
        return get_lifecycle_rules(self.client, bucket)

    def put_lifecycle_rules(self, bucket: str, rules: list[dict[str, Any]]) -> None:
        put_lifecycle_rules(self.client, bucket, rules)


def head_bucket(client: S3Client, bucket: str) -> bool:
    """True when the bucket exists and is ours, False when it does not exist.

    Raises AuthError when it exists but belongs to another account (403).
    """
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return False
        if code in ("403", "AccessDenied", "Forbidden"):
            raise AuthError(
                f"bucket {bucket} exists but you may not use it (it may belong to another account)",
                hint="choose another name with --bucket",
                resource=bucket,
            ) from exc
        raise translate(exc, "HeadBucket", bucket) from exc
    return True


#: GetBucketLocation's legacy answers: none for us-east-1, ``EU`` for buckets made with the old
#: EU constraint (they live in eu-west-1). See the LocationConstraint values in
#: https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLocation.html
LEGACY_LOCATIONS = {"": "us-east-1", "EU": "eu-west-1"}


def region_of_location(constraint: str | None) -> str:
    """The region a GetBucketLocation ``LocationConstraint`` stands for."""
    value = constraint or ""
    return LEGACY_LOCATIONS.get(value, value)


def get_bucket_region(client: S3Client, bucket: str) -> str:
    """The bucket's region (``us-east-1`` for the empty LocationConstraint, ``eu-west-1`` for
    ``EU``)."""
    with aws_errors("GetBucketLocation", bucket):
        raw = client.get_bucket_location(Bucket=bucket)
    return region_of_location(raw.get("LocationConstraint"))


def create_bucket(client: S3Client, bucket: str, region: str, *, tags: Mapping[str, str]) -> None:
    """Create a private bucket in ``region``, tagged.

    us-east-1 takes no LocationConstraint; every other region needs its own name there.
    Raises UsageError when the name is taken by someone else.
    """
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        code = error_code(exc)
        if code == "BucketAlreadyExists":
            raise UsageError(
                f"bucket name {bucket} is taken (bucket names are global)",
                hint="choose another name with --bucket",
                resource=bucket,
            ) from exc
        if code != "BucketAlreadyOwnedByYou":
            raise translate(exc, "CreateBucket", bucket) from exc
    with aws_errors("PutPublicAccessBlock", bucket):
        client.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
    with aws_errors("PutBucketTagging", bucket):
        client.put_bucket_tagging(
            Bucket=bucket,
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
        )


def get_lifecycle_rules(client: S3Client, bucket: str) -> list[dict[str, Any]]:
    """The bucket's lifecycle rules as S3 returns them (empty when it has none)."""
    try:
        response = client.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) == "NoSuchLifecycleConfiguration":
            return []
        raise translate(exc, "GetBucketLifecycleConfiguration", bucket) from exc
    return [dict(rule) for rule in response.get("Rules", [])]


def put_lifecycle_rules(client: S3Client, bucket: str, rules: list[dict[str, Any]]) -> None:
    """Set the bucket's lifecycle rules: the whole configuration, so pass every rule to keep."""
    with aws_errors("PutBucketLifecycleConfiguration", bucket):
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={"Rules": rules},  # type: ignore[typeddict-item]
        )


def get_bucket_tags(client: S3Client, bucket: str) -> dict[str, str]:
    """The bucket's tags (empty when it has none)."""
    try:
        response = client.get_bucket_tagging(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) in ("NoSuchTagSet", "NoSuchTagSetError"):
            return {}
        raise translate(exc, "GetBucketTagging", bucket) from exc
    return {tag["Key"]: tag["Value"] for tag in response.get("TagSet", [])}


def list_buckets_tagged(client: S3Client, key: str, value: str) -> list[str]:
    """Names of the account's buckets tagged ``key=value`` (a bucket whose tags cannot be read
    -- another owner's policy, deleted meanwhile -- is left out)."""
    with aws_errors("ListBuckets"):
        names = [b["Name"] for b in client.list_buckets().get("Buckets", []) if "Name" in b]
    found = []
    for name in names:
        try:
            tags = get_bucket_tags(client, name)
        except RunctlError:
            continue
        if tags.get(key) == value:
            found.append(name)
    return sorted(found)
