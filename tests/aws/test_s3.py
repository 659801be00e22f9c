"""The S3 wrapper and transfer engine against the harness's moto server.

Faults moto cannot produce (a download cut mid-stream, a corrupted body, access denied) are
injected with botocore event hooks on the client handed to the engine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ResponseStreamingError

from runctl.aws.s3 import (
    S3Uri,
    delete_objects,
    get_bytes,
    iter_objects,
    list_objects,
    put_bytes,
    stat_object,
)
from runctl.aws.s3_cleanup import plan_cleanup, run_cleanup
from runctl.aws.s3_copy import download_path, plan_download, upload_path
from runctl.aws.s3_integrity import IntegrityError
from runctl.aws.s3_transfer import MB, DownloadItem, TransferSettings, download_objects
from runctl.errors import AuthError, ExitCode, NotFoundError, RunctlError, UsageError
from tests.cloud.harness import Cloud

BUCKET = "data-bkt"
SMALL_PARTS = TransferSettings(multipart_threshold=8 * MB, multipart_chunksize=5 * MB)


@pytest.fixture
def s3(cloud: Cloud) -> Any:
    client = cloud.client("s3", config=Config(max_pool_connections=32))
    client.create_bucket(Bucket=BUCKET)
    return client


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "top.txt": b"top",
        "a b/c+d.txt": b"spaces and plus",
        "ünï/cödé ✓.bin": os.urandom(3000),
        "deep/er/and/deeper/leaf": os.urandom(70_000),
        "empty": b"",
        "dir/empty-too": b"",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_round_trip_keeps_relative_paths_and_odd_names(s3: Any, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src")
    up = upload_path(s3, tmp_path / "src", S3Uri(BUCKET, "set"), recursive=True)
    assert (up.files, up.bytes) == (len(files), sum(map(len, files.values())))
    keys = sorted(o.key for o in iter_objects(s3, S3Uri(BUCKET, "set/")))
    assert keys == sorted(f"set/{rel}" for rel in files)
    down = download_path(s3, S3Uri(BUCKET, "set/"), tmp_path / "dst", recursive=True)
    assert (down.files, down.unverified) == (len(files), 0)
    assert tree(tmp_path / "dst") == files


def test_single_file_destinations_follow_cp(s3: Any, tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(b"weights")
    upload_path(s3, src, S3Uri(BUCKET, "models/"))
    upload_path(s3, src, S3Uri(BUCKET, "exact-key"))
    assert {o.key for o in iter_objects(s3, S3Uri(BUCKET))} == {"models/model.pt", "exact-key"}
    (tmp_path / "into").mkdir()
    download_path(s3, S3Uri(BUCKET, "models/model.pt"), tmp_path / "into")
    download_path(s3, S3Uri(BUCKET, "exact-key"), tmp_path / "renamed.pt")
    assert (tmp_path / "into" / "model.pt").read_bytes() == b"weights"
    assert (tmp_path / "renamed.pt").read_bytes() == b"weights"


def test_listing_pages_through_more_than_1000_keys(cloud: Cloud, s3: Any) -> None:
    backend = cloud.s3_backend()
    for i in range(1105):
        backend.put_object(BUCKET, f"many/{i:05d}", b"x")
    backend.put_object(BUCKET, "many/sub/one", b"y")
    assert len(list(iter_objects(s3, S3Uri(BUCKET, "many/")))) == 1106
    shallow = list_objects(s3, S3Uri(BUCKET, "many/"))
    assert (len(shallow.objects), shallow.prefixes) == (1105, ["many/sub/"])
    assert len(cloud.calls("ListObjectsV2")) >= 3
    deleted = delete_objects(s3, BUCKET, (o.key for o in iter_objects(s3, S3Uri(BUCKET))))
    assert deleted == 1106
    assert list(iter_objects(s3, S3Uri(BUCKET))) == []


def test_multipart_round_trip_is_checksummed_and_verified(
    cloud: Cloud, s3: Any, tmp_path: Path
) -> None:
    data = os.urandom(20 * MB + 12345)
    (tmp_path / "big.bin").write_bytes(data)
    upload_path(s3, tmp_path / "big.bin", S3Uri(BUCKET, "big.bin"), settings=SMALL_PARTS)
    assert len(cloud.calls("UploadPart")) == 5
    obj = stat_object(s3, S3Uri(BUCKET, "big.bin"))
    assert obj.etag is not None and obj.etag.endswith('-5"')
    assert "CRC32" in obj.checksum_algorithms
    cloud.request_log.clear()
    report = download_path(s3, obj.uri, tmp_path / "back.bin", settings=SMALL_PARTS)
    assert report.unverified == 0
    assert (tmp_path / "back.bin").read_bytes() == data
    # the composite checksum was recomputed from the parts: S3 told us the part size
    assert len(cloud.calls("HeadObject")) >= 2
    assert os.path.getmtime(tmp_path / "back.bin") == obj.last_modified.timestamp()


def test_object_without_checksum_is_verified_by_md5_etag(
    cloud: Cloud, s3: Any, tmp_path: Path
) -> None:
    cloud.s3_backend().put_object(BUCKET, "plain", b"no checksum here")
    report = download_path(s3, S3Uri(BUCKET, "plain"), tmp_path / "plain")
    assert report.unverified == 0
    assert (tmp_path / "plain").read_bytes() == b"no checksum here"


def test_recursive_download_makes_no_request_per_file_beyond_get(
    cloud: Cloud, s3: Any, tmp_path: Path
) -> None:
    for i in range(20):
        put_bytes(s3, S3Uri(BUCKET, f"p/{i}"), b"%d" % i)
    cloud.request_log.clear()
    download_path(s3, S3Uri(BUCKET, "p"), tmp_path, recursive=True)
    assert cloud.calls("HeadObject") == []
    assert len(cloud.calls("GetObject")) == 20


def test_unsafe_keys_are_skipped_not_written_outside(cloud: Cloud, s3: Any, tmp_path: Path) -> None:
    backend = cloud.s3_backend()
    backend.put_object(BUCKET, "d/ok", b"ok")
    backend.put_object(BUCKET, "d/../../escape", b"bad")
    backend.put_object(BUCKET, "d/folder/", b"")
    plan = plan_download(s3, S3Uri(BUCKET, "d/"), tmp_path / "out", recursive=True)
    assert [i.path for i in plan.items] == [tmp_path / "out" / "ok"]
    assert [(i.uri, i.reason) for i in plan.skipped] == [
        ("s3://data-bkt/d/../../escape", "its key cannot be a local path")
    ]


def test_small_object_round_trip_and_missing_things(s3: Any, tmp_path: Path) -> None:
    put_bytes(s3, S3Uri(BUCKET, "status.json"), b'{"state": "ok"}')
    assert get_bytes(s3, S3Uri(BUCKET, "status.json")) == b'{"state": "ok"}'
    with pytest.raises(NotFoundError) as missing_key:
        get_bytes(s3, S3Uri(BUCKET, "nope.json"))
    assert missing_key.value.hint
    with pytest.raises(NotFoundError) as missing_bucket:
        list(iter_objects(s3, S3Uri("no-such-bucket")))
    assert "no-such-bucket" in missing_bucket.value.message
    assert "runctl aws setup" in (missing_bucket.value.hint or "")
    with pytest.raises(NotFoundError) as missing_head:
        download_path(s3, S3Uri(BUCKET, "absent"), tmp_path / "x")
    assert "--recursive" in (missing_head.value.hint or "")
    with pytest.raises(NotFoundError):
        download_path(s3, S3Uri(BUCKET, "nothing/"), tmp_path, recursive=True)
    with pytest.raises(NotFoundError):
        upload_path(s3, tmp_path / "missing", S3Uri(BUCKET, "x"))
    (tmp_path / "f").write_bytes(b"f")
    with pytest.raises(NotFoundError) as upload_nobucket:
        upload_path(s3, tmp_path / "f", S3Uri("no-such-bucket", "f"))
    assert "f" in upload_nobucket.value.message
    with pytest.raises(UsageError):
        upload_path(s3, tmp_path, S3Uri(BUCKET, "dir/"))


# -- faults ---------------------------------------------------------------------------------


def denied(code: str) -> Callable[..., Any]:
    def handler(**_: Any) -> Any:
        status = 403
        http = SimpleNamespace(status_code=status, headers={}, content=b"")
        parsed = {
            "Error": {"Code": code, "Message": "Forbidden"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
        }
        return http, parsed

    return handler


@pytest.mark.parametrize(
    ("operation", "code"), [("HeadObject", "403"), ("GetObject", "AccessDenied")]
)
def test_access_denied_is_an_auth_error(s3: Any, tmp_path: Path, operation: str, code: str) -> None:
    put_bytes(s3, S3Uri(BUCKET, "secret"), b"s")
    s3.meta.events.register(f"before-call.s3.{operation}", denied(code))
    with pytest.raises(AuthError) as info:
        download_path(s3, S3Uri(BUCKET, "secret"), tmp_path / "secret")
    assert info.value.exit_code == ExitCode.AUTH
    assert "s3://data-bkt/secret" in info.value.message
    assert list(tmp_path.iterdir()) == []


class CutStream:
    """A response body that breaks after ``limit`` bytes, like a connection reset."""

    def __init__(self, body: Any, limit: int) -> None:
        self.body = body
        self.limit = limit
        self.seen = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.body.read(size)
        self.seen += len(data)
        if self.seen > self.limit:
            raise ResponseStreamingError(error="connection reset mid-stream")
        return data

    def close(self) -> None:
        self.body.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.body, name)


@pytest.fixture
def body_fault(s3: Any) -> Iterator[Callable[..., Callable[[], None]]]:
    """Installs a GetObject body fault; returns a function that lifts it."""
    handlers: list[Callable[..., None]] = []

    def lift() -> None:
        while handlers:
            s3.meta.events.unregister("after-call.s3.GetObject", handlers.pop())

    def install(*, limit: int) -> Callable[[], None]:
        def handler(parsed: dict[str, Any], **_: Any) -> None:
            if "Body" in parsed:
                parsed["Body"] = CutStream(parsed["Body"], limit)

        handlers.append(handler)
        s3.meta.events.register("after-call.s3.GetObject", handler)
        return lift

    yield install
    lift()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.is_file())


@pytest.mark.parametrize("size", [300_000, 12 * MB], ids=["single-get", "ranged"])
def test_download_cut_mid_stream_leaves_nothing_and_rerun_completes(
    s3: Any, tmp_path: Path, body_fault: Callable[..., Callable[[], None]], size: int
) -> None:
    data = os.urandom(size)
    (tmp_path / "src").write_bytes(data)
    upload_path(s3, tmp_path / "src", S3Uri(BUCKET, "blob"), settings=SMALL_PARTS)
    out = tmp_path / "out"
    out.mkdir()
    lift = body_fault(limit=100_000)
    with pytest.raises(RunctlError) as info:
        download_path(s3, S3Uri(BUCKET, "blob"), out / "blob", settings=SMALL_PARTS)
    assert "s3://data-bkt/blob" in info.value.message
    assert leftovers(out) == []
    lift()
    report = download_path(s3, S3Uri(BUCKET, "blob"), out / "blob", settings=SMALL_PARTS)
    assert (report.files, leftovers(out)) == (1, ["blob"])
    assert (out / "blob").read_bytes() == data


@pytest.mark.parametrize("size", [300_000, 12 * MB], ids=["single-get", "ranged"])
def test_corrupted_object_is_refused(cloud: Cloud, s3: Any, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "src").write_bytes(data)
    upload_path(s3, tmp_path / "src", S3Uri(BUCKET, "blob"), settings=SMALL_PARTS)
    stored = cloud.s3_backend().get_object(BUCKET, "blob")
    assert stored.etag  # moto caches the ETag; the checksum is stored: both now go stale
    stored.value = bytes([data[0] ^ 0xFF]) + data[1:]  # bit rot on the server
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RunctlError) as info:
        download_path(s3, S3Uri(BUCKET, "blob"), out / "blob", settings=SMALL_PARTS)
    assert "s3://data-bkt/blob" in info.value.message
    if size > SMALL_PARTS.multipart_threshold:
        assert isinstance(info.value, IntegrityError)
    else:
        assert "checksum" in info.value.message.lower()
    assert leftovers(out) == []


def test_upload_cut_off_leaves_no_object_and_rerun_completes(cloud: Cloud, tmp_path: Path) -> None:
    s3 = cloud.client("s3", config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    s3.create_bucket(Bucket=BUCKET)
    data = os.urandom(12 * MB)
    (tmp_path / "big").write_bytes(data)
    cloud.cut_s3_upload("up/", times=3, after_bytes=1024)
    with pytest.raises(RunctlError) as info:
        upload_path(s3, tmp_path / "big", S3Uri(BUCKET, "up/big"), settings=SMALL_PARTS)
    assert "s3://data-bkt/up/big" in info.value.message
    assert list(iter_objects(s3, S3Uri(BUCKET, "up/"))) == []
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    cloud.clear_faults()
    upload_path(s3, tmp_path / "big", S3Uri(BUCKET, "up/big"), settings=SMALL_PARTS)
    assert get_bytes(s3, S3Uri(BUCKET, "up/big")) == data


def test_cleanup_keeps_the_newest_entries(cloud: Cloud, s3: Any) -> None:
    backend = cloud.s3_backend()
    base = datetime(2024, 1, 1)
    for i, name in enumerate(["ckpt/a/1", "ckpt/a/2", "ckpt/b/1", "ckpt/c.txt", "ckpt/d/x/y"]):
        backend.put_object(BUCKET, name, b"x").last_modified = base + timedelta(minutes=i)
    plan = plan_cleanup(s3, S3Uri(BUCKET, "ckpt"), keep_last_n=2)
    assert [e.name for e in plan.keep] == ["d/", "c.txt"]
    assert [e.name for e in plan.delete] == ["b/", "a/"]
    assert run_cleanup(s3, plan) == 3
    left = sorted(o.key for o in iter_objects(s3, S3Uri(BUCKET)))
    assert left == ["ckpt/c.txt", "ckpt/d/x/y"]


def test_multipart_md5_etag_is_verified_from_the_stream(cloud: Cloud, tmp_path: Path) -> None:
    # Like objects on Ceph RGW: no stored checksum, only the multipart ETag. With ranges that
    # line up with the parts, the parts' MD5s are taken as they stream: no HEAD, no re-read.
    s3 = cloud.client("s3", config=Config(request_checksum_calculation="when_required"))
    s3.create_bucket(Bucket=BUCKET)
    plain = TransferSettings(8 * MB, 5 * MB, checksum_algorithm=None)
    data = os.urandom(12 * MB + 1)
    (tmp_path / "src").write_bytes(data)
    upload_path(s3, tmp_path / "src", S3Uri(BUCKET, "plain"), settings=plain)
    obj = stat_object(s3, S3Uri(BUCKET, "plain"))
    assert obj.checksum_algorithms == () and obj.etag and obj.etag.endswith('-3"')
    cloud.request_log.clear()
    report = download_objects(s3, [DownloadItem(obj, tmp_path / "back")], settings=plain)
    assert (report.unverified, cloud.calls("HeadObject")) == (0, [])
    assert (tmp_path / "back").read_bytes() == data
    # Other ranges than the parts: S3 is asked for the part size and the file is read again.
    other = TransferSettings(8 * MB, 6 * MB, checksum_algorithm=None)
    report = download_objects(s3, [DownloadItem(obj, tmp_path / "again")], settings=other)
    assert report.unverified == 0
    assert len(cloud.calls("HeadObject")) == 2
