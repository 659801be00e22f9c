"""Unfinished multipart uploads (list, abort, spare the young ones) and uploads that give up at a
deadline, against the harness's moto server; S3's refusal to abort through botocore's Stubber."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.stub import Stubber

from runctl.aws.s3 import S3Uri
from runctl.aws.s3_transfer import MB, TransferSettings, UploadItem, upload_files
from runctl.aws.s3_uploads import (
    IncompleteUpload,
    abort_incomplete_uploads,
    abort_uploads,
    iter_incomplete_uploads,
    split_by_age,
)
from runctl.errors import NotFoundError
from runctl.services.account.leftovers import clean_leftovers, find_leftovers
from runctl.services.account.resources import Scope
from tests.cloud.harness import Cloud

BUCKET = "uploads-bkt"


@pytest.fixture
def s3(cloud: Cloud) -> Any:
    client = cloud.client("s3", config=Config(max_pool_connections=32))
    client.create_bucket(Bucket=BUCKET)
    return client


def _start(s3: Any, key: str) -> str:
    upload_id: str = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"p" * 100)
    return upload_id


def _pending(s3: Any) -> list[str]:
    return sorted(u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def test_unfinished_uploads_under_a_prefix_are_listed_and_aborted(s3: Any) -> None:
    for key in ("ck/run-1/blobs/a", "ck/run-2/blobs/b", "ckx/c", "other/d"):
        _start(s3, key)

    listed = sorted(u.key for u in iter_incomplete_uploads(s3, S3Uri(BUCKET, "ck/")))
    preview = abort_incomplete_uploads(s3, S3Uri(BUCKET, "ck/"), dry_run=True)
    assert _pending(s3) == ["ck/run-1/blobs/a", "ck/run-2/blobs/b", "ckx/c", "other/d"]
    done = abort_incomplete_uploads(s3, S3Uri(BUCKET, "ck/"))

    assert listed == ["ck/run-1/blobs/a", "ck/run-2/blobs/b"]
    assert sorted(u.key for u in preview.aborted) == listed and preview.dry_run
    assert sorted(u.key for u in done.aborted) == listed and not done.failed
    assert _pending(s3) == ["ckx/c", "other/d"]
    assert done.to_dict()["aborted"][0]["uri"].startswith(f"s3://{BUCKET}/ck/run-")


def test_runctl_uploads_of_one_project_or_all(s3: Any) -> None:
    for key in ("runctl/demo/jobs/j/checkpoints/blobs/a", "runctl/other/code/b", "data/c"):
        _start(s3, key)

    one = find_leftovers(s3, [BUCKET], Scope("demo"), older_than=None)
    every = find_leftovers(s3, [BUCKET], Scope(), older_than=None)
    assert [u.key for u in one.uploads] == ["runctl/demo/jobs/j/checkpoints/blobs/a"]
    assert sorted(u.key for u in every.uploads) == [
        "runctl/demo/jobs/j/checkpoints/blobs/a",
        "runctl/other/code/b",
    ]
    clean_leftovers(s3, one, dry_run=False, min_age=timedelta(0))
    assert _pending(s3) == ["data/c", "runctl/other/code/b"]
    clean_leftovers(s3, every, dry_run=False, min_age=timedelta(0))
    assert _pending(s3) == ["data/c"]


def test_young_uploads_are_spared() -> None:
    now = datetime(2025, 1, 1, 12, tzinfo=UTC)
    old = IncompleteUpload("b", "k1", "u1", now - timedelta(hours=2))
    young = IncompleteUpload("b", "k2", "u2", now - timedelta(minutes=5))

    assert split_by_age([old, young], timedelta(hours=1), now) == ([old], [young])
    assert split_by_age([old, young], None, now) == ([old, young], [])


def test_an_abort_s3_refuses_is_reported_not_raised(s3: Any) -> None:
    upload = IncompleteUpload(BUCKET, "k", "u-1", datetime.now(UTC))
    gone = IncompleteUpload(BUCKET, "k2", "u-2", datetime.now(UTC))
    with Stubber(s3) as stub:
        stub.add_client_error("abort_multipart_upload", "AccessDenied", "no abort for you", 403)
        stub.add_client_error("abort_multipart_upload", "NoSuchUpload", "already gone", 404)
        aborted, failed = abort_uploads(s3, [upload, gone])

    assert aborted == [gone]  # already gone counts as aborted
    assert [(u.key, "permission denied" in message) for u, message in failed] == [("k", True)]


def test_listing_a_missing_bucket_is_not_found(s3: Any) -> None:
    with pytest.raises(NotFoundError):
        list(iter_incomplete_uploads(s3, S3Uri("no-such-bucket-here", "x/")))


def test_an_upload_in_flight_at_its_deadline_is_cancelled_and_aborted(
    s3: Any, tmp_path: Path
) -> None:
    settings = TransferSettings(multipart_threshold=8 * MB, multipart_chunksize=5 * MB)
    big = tmp_path / "big"
    big.write_bytes(b"b" * (20 * MB))
    later = tmp_path / "later"
    later.write_bytes(b"l" * 10)
    released = threading.Event()

    def stop() -> bool:  # the deadline passes once the big upload is under way
        if _pending(s3):
            released.set()
        return released.is_set()

    report = upload_files(
        s3,
        [UploadItem(big, S3Uri(BUCKET, "up/big"), 20 * MB)],
        settings=settings,
        progress=lambda _n: released.wait(30),  # hold the parts until then
        stop=stop,
    )
    after = upload_files(s3, [UploadItem(later, S3Uri(BUCKET, "up/later"), 10)], stop=lambda: True)

    assert report.abandoned == [f"s3://{BUCKET}/up/big"] and report.files == 0
    assert after.abandoned == [f"s3://{BUCKET}/up/later"] and after.files == 0
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="up/").get("Contents", []) == []
    assert _pending(s3) == []  # the cancelled multipart upload was aborted
