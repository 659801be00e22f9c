"""Incomplete multipart uploads: list them under a prefix and abort them.

A multipart upload whose uploader was killed (SIGKILL, a spot instance gone mid-commit) is never
completed nor aborted: its parts stay stored and billed, and no listing of objects shows them.
``ListMultipartUploads`` finds them; ``AbortMultipartUpload`` frees their parts. runctl uses this
for ``s3 cleanup --incomplete``, for ``resources cleanup`` (under ``runctl/``), and before the
next checkpoint commit of a job (under the job's ``blobs/``, whose uploads only runctl starts).
``min_age`` spares uploads younger than that, which may still be in progress elsewhere. See
https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpu-abort-incomplete-mpu-lifecycle-config.html

Shipped to instances: standard library, botocore and :mod:`runctl.aws.s3` only, Python 3.9.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from runctl.aws.errors import error_code
from runctl.aws.s3 import S3Uri, s3_errors, translate_s3
from runctl.errors import RunctlError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class IncompleteUpload:
    """One multipart upload that was started and never completed nor aborted."""

    bucket: str
    key: str
    upload_id: str
    initiated: datetime

    @property
    def uri(self) -> S3Uri:
        return S3Uri(self.bucket, self.key)

    def to_dict(self) -> dict[str, str]:
        return {
            "uri": str(self.uri),
            "upload_id": self.upload_id,
            "initiated": self.initiated.isoformat(),
        }


@dataclass
class AbortReport:
    """What :func:`abort_incomplete_uploads` found under ``prefix`` and did about it.

    ``aborted`` lists what was aborted (with ``dry_run``: what would be), ``spared`` the uploads
    younger than ``min_age``, ``failed`` the uploads S3 refused to abort, with its message.
    """

    prefix: S3Uri
    dry_run: bool = False
    aborted: list[IncompleteUpload] = field(default_factory=list)
    spared: list[IncompleteUpload] = field(default_factory=list)
    failed: list[tuple[IncompleteUpload, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "prefix": str(self.prefix),
            "dry_run": self.dry_run,
            "aborted": [u.to_dict() for u in self.aborted],
            "spared": [u.to_dict() for u in self.spared],
            "failed": [{**u.to_dict(), "message": message} for u, message in self.failed],
        }


def iter_incomplete_uploads(client: S3Client, prefix: S3Uri) -> Iterator[IncompleteUpload]:
    """Every incomplete multipart upload whose key starts with ``prefix.key``, page by page.

    Raises NotFoundError when the bucket does not exist, AuthError when listing is denied.
    """
    paginator = client.get_paginator("list_multipart_uploads")
    with s3_errors("ListMultipartUploads", str(prefix)):
        for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key):
            for item in page.get("Uploads", ()):
                initiated = item["Initiated"]
                if initiated.tzinfo is None:  # botocore gives aware times; be sure
                    initiated = initiated.replace(tzinfo=timezone.utc)  # noqa: UP017 (3.9)
                yield IncompleteUpload(prefix.bucket, item["Key"], item["UploadId"], initiated)


def abort_upload(client: S3Client, upload: IncompleteUpload) -> None:
    """Abort one multipart upload; an upload that is already gone counts as aborted."""
    try:
        client.abort_multipart_upload(
            Bucket=upload.bucket, Key=upload.key, UploadId=upload.upload_id
        )
    except ClientError as exc:
        if error_code(exc) == "NoSuchUpload":
            return  # completed or aborted meanwhile
        raise translate_s3(exc, "AbortMultipartUpload", str(upload.uri)) from exc
    except BotoCoreError as exc:
        raise translate_s3(exc, "AbortMultipartUpload", str(upload.uri)) from exc


def split_by_age(
    uploads: Iterable[IncompleteUpload], min_age: timedelta | None, now: datetime
) -> tuple[list[IncompleteUpload], list[IncompleteUpload]]:
    """(old enough to abort, too young), each in the order given."""
    old: list[IncompleteUpload] = []
    young: list[IncompleteUpload] = []
    for upload in uploads:
        young_enough = min_age is not None and now - upload.initiated < min_age
        (young if young_enough else old).append(upload)
    return old, young


def abort_uploads(
    client: S3Client, uploads: Iterable[IncompleteUpload]
) -> tuple[list[IncompleteUpload], list[tuple[IncompleteUpload, str]]]:
    """Abort each upload; (aborted, [(refused, S3's message)])."""
    aborted: list[IncompleteUpload] = []
    failed: list[tuple[IncompleteUpload, str]] = []
    for upload in uploads:
        try:
            abort_upload(client, upload)
        except RunctlError as err:
            failed.append((upload, err.message))
        else:
            aborted.append(upload)
    return aborted, failed


def abort_incomplete_uploads(
    client: S3Client,
    prefix: S3Uri,
    *,
    min_age: timedelta | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> AbortReport:
    """Abort every incomplete multipart upload under ``prefix`` initiated at least ``min_age``
    ago (all of them when None). With ``dry_run``, only list what would be aborted.

    Returns the AbortReport; an upload S3 refuses to abort is reported in ``failed``, not
    raised. Raises what listing raises (NotFoundError: no bucket; AuthError: denied).
    """
    report = AbortReport(prefix, dry_run=dry_run)
    moment = now or datetime.now(timezone.utc)  # noqa: UP017 (3.9)
    old, report.spared = split_by_age(iter_incomplete_uploads(client, prefix), min_age, moment)
    if dry_run:
        report.aborted = old
    else:
        report.aborted, report.failed = abort_uploads(client, old)
    return report
