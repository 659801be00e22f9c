"""The S3 wrapper: ``s3://`` URIs, listing, object metadata, small reads/writes and deletes.

The rest of the engine: :mod:`~runctl.aws.s3_transfer` (files up and down through one
TransferManager), :mod:`~runctl.aws.s3_copy` (``cp``-style sources and destinations),
:mod:`~runctl.aws.s3_sync`, :mod:`~runctl.aws.s3_cleanup` (keep the newest N),
:mod:`~runctl.aws.s3_integrity` and :mod:`~runctl.aws.s3_digests` (verifying downloads),
:mod:`~runctl.aws.s3_paths` (the local side). Every function takes a boto3 S3 client so that the
CLI (through ``AwsContext``) and the instance-side runner (with its own client) share one engine.

This module and its ``s3_*`` siblings are shipped to EC2 instances, where only the standard
library, boto3, botocore and s3transfer exist and Python may be 3.9: they import nothing else from
runctl but :mod:`runctl.errors` and :mod:`runctl.aws.errors`, and use nothing newer than 3.9 at run
time (annotations are strings thanks to ``from __future__ import annotations``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import parse_timestamp

from runctl.aws.errors import DENIED, error_code, translate
from runctl.errors import AuthError, NotFoundError, RunctlError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SCHEME = "s3://"
DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys per request
# Bucket names: 3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending
# with a letter or digit; legacy us-east-1 buckets may also hold uppercase letters and underscores.
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$")
URI_HINT = "write it as s3://bucket/prefix, e.g. s3://my-bucket/data/"
LIST_HINT = "see what exists with `runctl s3 list s3://BUCKET/PREFIX`"
# The IAM action that allows each S3 API operation runctl makes (multipart steps are PutObject).
IAM_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObjects": "s3:DeleteObject",
    "DeleteObject": "s3:DeleteObject",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
}
BUCKET_ACTIONS = {"s3:ListBucket", "s3:ListBucketMultipartUploads"}


@dataclass(frozen=True)
class S3Uri:
    """A bucket and a key (or key prefix); ``str()`` gives back ``s3://bucket/key``."""

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, text: str) -> S3Uri:
        """Parse ``s3://bucket[/key]``; raise UsageError (exit 2) for anything malformed."""
        if not text.startswith(SCHEME):
            raise UsageError(f"{text!r} is not an S3 URI", hint=URI_HINT, resource=text)
        bucket, _, key = text[len(SCHEME) :].partition("/")
        if not bucket:
            raise UsageError(f"{text!r} names no bucket", hint=URI_HINT, resource=text)
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise UsageError(
                f"{bucket!r} in {text!r} is not a valid bucket name",
                hint="bucket names are 3-63 lowercase letters, digits, dots and hyphens",
                resource=text,
            )
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
            raise UsageError(
                f"the key in {text!r} holds control characters", hint=URI_HINT, resource=text
            )
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        """The last segment of the key (``b.txt`` for ``s3://bkt/a/b.txt``)."""
        return self.key.rstrip("/").rsplit("/", 1)[-1]

    @property
    def is_prefix(self) -> bool:
        """True for ``s3://bucket`` and ``s3://bucket/dir/``: a place, not an object."""
        return self.key == "" or self.key.endswith("/")

    def as_prefix(self) -> S3Uri:
        """The directory-like prefix ``key/`` (unchanged when empty or already ending in ``/``)."""
        return self if self.is_prefix else S3Uri(self.bucket, self.key + "/")

    def join(self, relative: str) -> S3Uri:
        """The URI of ``relative`` (a ``/``-separated path) under this prefix."""
        return S3Uri(self.bucket, self.as_prefix().key + relative)


def is_s3_uri(text: str) -> bool:
    """True when ``text`` is meant as an S3 location (it starts with ``s3://``)."""
    return text.startswith(SCHEME)


@dataclass(frozen=True)
class S3Object:
    """One object as listed: where it is, how big, when written, and what S3 knows of its content.

    ``etag`` keeps S3's quotes; ``checksum_algorithms`` are the algorithms S3 stored (``CRC32``).
    """

    bucket: str
    key: str
    size: int
    last_modified: datetime
    etag: str | None = None
    checksum_algorithms: tuple[str, ...] = ()

    @property
    def uri(self) -> S3Uri:
        return S3Uri(self.bucket, self.key)


@dataclass
class S3Listing:
    """What lies under a prefix: sub-prefixes (non-recursive listings only) and objects."""

    uri: S3Uri
    prefixes: list[str] = field(default_factory=list)
    objects: list[S3Object] = field(default_factory=list)


def iam_grant(operation: str, resource: str | None) -> tuple[str, str] | None:
    """The IAM action and resource ARN that allow ``operation`` on ``resource`` (an ``s3://``
    URI), e.g. ``("s3:PutObject", "arn:aws:s3:::bkt/key")``; None when unknown."""
    action = IAM_ACTIONS.get(operation)
    if action is None or not resource or not is_s3_uri(resource):
        return None
    bucket, _, key = resource[len(SCHEME) :].partition("/")
    arn = f"arn:aws:s3:::{bucket}" if action in BUCKET_ACTIONS else f"arn:aws:s3:::{bucket}/{key}"
    return action, arn


def translate_s3(exc: BaseException, action: str, resource: str | None) -> RunctlError:
    """Translate a botocore failure of an S3 call into a RunctlError with an S3-specific hint.

    A HEAD request has no error body, so S3 answers a bare ``403``: that is access denied. A
    denial names the IAM action and the resource ARN to allow.
    """
    if isinstance(exc, ClientError) and error_code(exc) == "403":
        exc.response.setdefault("Error", {})["Code"] = "AccessDenied"
    err = translate(exc, action, resource)
    if isinstance(err, AuthError) and isinstance(exc, ClientError) and error_code(exc) in DENIED:
        grant = iam_grant(exc.operation_name, resource) or iam_grant(action, resource)
        if grant is not None:
            err.hint = (
                f"allow {grant[0]} on {grant[1]} for your IAM identity (its policy, and the "
                "bucket policy if there is one), or use another --profile"
            )
        return err
    if isinstance(err, NotFoundError) and isinstance(exc, ClientError):
        if error_code(exc) == "NoSuchBucket":
            bucket = S3Uri.parse(resource).bucket if resource and is_s3_uri(resource) else "?"
            return NotFoundError(
                f"bucket {bucket!r} does not exist ({action} on {resource})",
                hint="check the bucket name, or create it with `runctl aws setup --bucket NAME`",
                resource=resource,
            )
        return NotFoundError(
            f"{resource} does not exist ({action}: {error_code(exc)})",
            hint=LIST_HINT,
            resource=resource,
        )
    return err


@contextmanager
def s3_errors(action: str, resource: str | None = None) -> Iterator[None]:
    """Run S3 calls, translating botocore failures like ``aws_errors`` (plus S3's quirks)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate_s3(exc, action, resource) from exc


def parse_wire_timestamp(value: str) -> datetime:
    """An S3 timestamp as an aware datetime: the ISO 8601 form of listings
    (``2024-05-01T12:00:00.000Z``) without dateutil, anything else by botocore's parser."""
    if len(value) > 20 and value[10] == "T" and value.endswith("Z"):
        try:
            # timezone.utc, not datetime.UTC: this module must run on Python 3.9.
            return datetime.fromisoformat(value[:-1]).replace(tzinfo=timezone.utc)  # noqa: UP017
        except ValueError:
            pass
    parsed: datetime = parse_timestamp(value)
    return parsed


def use_fast_timestamps(client: S3Client) -> None:
    """Have ``client`` parse timestamps with :func:`parse_wire_timestamp`.

    botocore's default parser (dateutil) takes most of the time of parsing a 1,000-key listing
    page; this uses botocore's own parser-defaults hook. A client without one is left as it is.
    """
    factory = getattr(getattr(client, "_endpoint", None), "_response_parser_factory", None)
    if factory is not None and hasattr(factory, "set_parser_defaults"):
        factory.set_parser_defaults(timestamp_parser=parse_wire_timestamp)


def object_from_listing(bucket: str, item: Any) -> S3Object:
    """An S3Object from one ``Contents`` entry of ListObjectsV2."""
    return S3Object(
        bucket=bucket,
        key=item["Key"],
        size=int(item.get("Size", 0)),
        last_modified=item["LastModified"],
        etag=item.get("ETag"),
        checksum_algorithms=tuple(item.get("ChecksumAlgorithm") or ()),
    )


def iter_objects(client: S3Client, uri: S3Uri) -> Iterator[S3Object]:
    """Every object whose key starts with ``uri.key``, page by page (1,000 keys a request).

    Raises NotFoundError when the bucket does not exist, AuthError when access is denied.
    """
    paginator = client.get_paginator("list_objects_v2")
    with s3_errors("ListObjectsV2", str(uri)):
        for page in paginator.paginate(Bucket=uri.bucket, Prefix=uri.key):
            for item in page.get("Contents", ()):
                yield object_from_listing(uri.bucket, item)


def list_objects(client: S3Client, uri: S3Uri, *, recursive: bool = False) -> S3Listing:
    """Objects under ``uri.key``; without ``recursive``, one level (``/``-delimited) deep.

    The prefix is used as typed (``s3://b/da`` matches ``data/`` and ``dax``), as ``aws s3 ls``.
    """
    listing = S3Listing(uri=uri)
    if recursive:
        listing.objects = list(iter_objects(client, uri))
        return listing
    paginator = client.get_paginator("list_objects_v2")
    with s3_errors("ListObjectsV2", str(uri)):
        for page in paginator.paginate(Bucket=uri.bucket, Prefix=uri.key, Delimiter="/"):
            listing.prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
            listing.objects.extend(
                object_from_listing(uri.bucket, item) for item in page.get("Contents", ())
            )
    return listing


def head_object(client: S3Client, uri: S3Uri, **params: Any) -> dict[str, Any]:
    """The raw HeadObject response (checksums included); NotFoundError (exit 6) when missing."""
    with s3_errors("HeadObject", str(uri)):
        response = client.head_object(
            Bucket=uri.bucket, Key=uri.key, ChecksumMode="ENABLED", **params
        )
    return dict(response)


def stat_object(client: S3Client, uri: S3Uri) -> S3Object:
    """The object at ``uri`` with its size, time, ETag and stored checksum algorithms."""
    head = head_object(client, uri)
    return S3Object(
        bucket=uri.bucket,
        key=uri.key,
        size=int(head["ContentLength"]),
        last_modified=head["LastModified"],
        etag=head.get("ETag"),
        checksum_algorithms=tuple(
            name[len("Checksum") :]
            for name in head
            if name.startswith("Checksum") and name != "ChecksumType"
        ),
    )


def put_bytes(
    client: S3Client, uri: S3Uri, data: bytes, *, content_type: str | None = None
) -> None:
    """Write a small object (a manifest, a status file) in one checksummed PUT."""
    extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
    with s3_errors("PutObject", str(uri)):
        client.put_object(
            Bucket=uri.bucket, Key=uri.key, Body=data, ChecksumAlgorithm="CRC32", **extra
        )


def get_bytes(client: S3Client, uri: S3Uri) -> bytes:
    """Read a small object whole; NotFoundError (exit 6) when it does not exist."""
    with s3_errors("GetObject", str(uri)):
        response = client.get_object(Bucket=uri.bucket, Key=uri.key, ChecksumMode="ENABLED")
        return response["Body"].read()


def delete_objects(client: S3Client, bucket: str, keys: Iterable[str]) -> int:
    """Delete ``keys`` in batches of 1,000; return how many were deleted.

    Raises the first per-key failure S3 reports (as a RunctlError naming that key).
    """
    batch: list[str] = []
    deleted = 0
    for key in keys:
        batch.append(key)
        if len(batch) == DELETE_BATCH:
            deleted += _delete_batch(client, bucket, batch)
            batch = []
    if batch:
        deleted += _delete_batch(client, bucket, batch)
    return deleted


def _delete_batch(client: S3Client, bucket: str, keys: list[str]) -> int:
    where = str(S3Uri(bucket, keys[0]))
    with s3_errors("DeleteObjects", where):
        response = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
    errors = response.get("Errors") or []
    if errors:
        first = errors[0]
        failure = ClientError(
            {"Error": {"Code": first.get("Code", "Unknown"), "Message": first.get("Message", "")}},
            "DeleteObjects",
        )
        raise translate_s3(failure, "DeleteObjects", str(S3Uri(bucket, first.get("Key", ""))))
    return len(keys)
