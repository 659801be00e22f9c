"""The checkpoint commit protocol on both kinds of store: a local directory and S3 (moto)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runctl.job.checkpoints import commit_checkpoint, prune_checkpoints, restore_checkpoint
from runctl.job.manifests import latest_manifest, list_manifests, read_manifest
from runctl.job.snapshot import HashCache, scan_checkpoint_dir
from runctl.job.stores import CheckpointStore, LocalStore, StoredObject, open_store


class Recording(CheckpointStore):
    """Passes everything to ``inner``; records uploads; can fail after ``fail_after`` uploads."""

    def __init__(self, inner: CheckpointStore, fail_after: int | None = None) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.uploaded: list[str] = []
        self.fail_after = fail_after
        self.before_upload: Any = None

    def list(self, prefix: str) -> dict[str, StoredObject]:
        return self.inner.list(prefix)

    def read(self, key: str) -> bytes:
        return self.inner.read(key)

    def write(self, key: str, data: bytes) -> None:
        self.inner.write(key, data)

    def upload(
        self, items: Sequence[tuple[Path, str]], *, stop: Callable[[], bool] | None = None
    ) -> Sequence[str]:
        done = []
        for path, key in items:
            if self.fail_after is not None and len(self.uploaded) >= self.fail_after:
                raise ConnectionError("network cut")
            if self.before_upload is not None:
                self.before_upload(path)
            done.extend(self.inner.upload([(path, key)], stop=stop))
            self.uploaded.extend(done[-1:])
        return done

    def download(self, items: Sequence[tuple[str, Path]]) -> None:
        self.inner.download(items)

    def delete(self, keys: Iterable[str]) -> int:
        return self.inner.delete(keys)


def _write(directory: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _read_all(directory: Path) -> dict[str, bytes]:
    return {f.path: (directory / f.path).read_bytes() for f in scan_checkpoint_dir(directory)}


def test_commit_then_restore_gives_the_same_files(store: CheckpointStore, tmp_path: Path) -> None:
    source = tmp_path / "ckpt"
    files = {"model.pt": b"w" * 5000, "opt/state.bin": b"o" * 10, "empty": b""}
    _write(source, files)

    result = commit_checkpoint(store, source, job_id="j", attempt=2)
    restored = restore_checkpoint(store, tmp_path / "restored")

    assert result.created and result.manifest is not None
    assert restored is not None and restored.id == result.manifest.id
    assert restored.attempt == 2 and restored.job_id == "j"
    assert result.manifest.id.endswith("-a2")
    assert _read_all(tmp_path / "restored") == files
    assert [r.id for r in list_manifests(store)] == [result.manifest.id]
    info = read_manifest(store, result.manifest.id)
    assert info.total_size == 5010
    assert {f.path: f.size for f in info.files} == {
        "model.pt": 5000,
        "opt/state.bin": 10,
        "empty": 0,
    }


def test_unchanged_files_are_not_uploaded_again(store: CheckpointStore, tmp_path: Path) -> None:
    source = tmp_path / "ckpt"
    _write(source, {"a": b"a" * 100, "b": b"b" * 100, "same-as-a": b"a" * 100})
    recording = Recording(store)
    first = commit_checkpoint(recording, source, job_id="j", attempt=0)
    assert first.uploaded_files == 2  # identical content is one blob

    unchanged = commit_checkpoint(recording, source, job_id="j", attempt=0)
    _write(source, {"b": b"B" * 100})
    changed = commit_checkpoint(recording, source, job_id="j", attempt=0)

    assert not unchanged.created
    assert unchanged.manifest is not None and first.manifest is not None
    assert unchanged.manifest.id == first.manifest.id
    assert changed.created and changed.uploaded_files == 1 and changed.reused_files == 2
    assert len(recording.uploaded) == 3
    assert len(list_manifests(store)) == 2


def test_a_cut_off_commit_never_becomes_the_checkpoint(
    store: CheckpointStore, tmp_path: Path
) -> None:
    source = tmp_path / "ckpt"
    _write(source, {"step": b"1"})
    good = commit_checkpoint(store, source, job_id="j", attempt=0).manifest
    assert good is not None
    _write(source, {"step": b"2", "big-a": b"a" * 1000, "big-b": b"b" * 1000})

    with pytest.raises(ConnectionError):
        commit_checkpoint(Recording(store, fail_after=1), source, job_id="j", attempt=0)

    assert [r.id for r in list_manifests(store)] == [good.id]
    restored = restore_checkpoint(store, tmp_path / "resume")
    assert restored is not None and restored.id == good.id
    assert _read_all(tmp_path / "resume") == {"step": b"1"}


def _blob_key(store: CheckpointStore, manifest_id: str, path: str) -> str:
    sha = next(f.sha256 for f in read_manifest(store, manifest_id).files if f.path == path)
    return "blobs/" + sha


def test_corrupt_or_missing_blob_falls_back_to_the_previous_checkpoint(
    store: CheckpointStore, tmp_path: Path
) -> None:
    source = tmp_path / "ckpt"
    _write(source, {"model": b"epoch-1"})
    first = commit_checkpoint(store, source, job_id="j", attempt=0).manifest
    _write(source, {"model": b"epoch-2"})
    second = commit_checkpoint(store, source, job_id="j", attempt=0).manifest
    _write(source, {"model": b"epoch-3"})
    third = commit_checkpoint(store, source, job_id="j", attempt=1).manifest
    assert first and second and third
    store.write(_blob_key(store, third.id, "model"), b"epoch-X")  # same size, wrong content
    store.delete([_blob_key(store, second.id, "model")])
    messages: list[str] = []

    restored = restore_checkpoint(store, tmp_path / "resume", log=messages.append)

    assert restored is not None and restored.id == first.id
    assert (tmp_path / "resume" / "model").read_bytes() == b"epoch-1"
    assert any("corrupt" in m and third.id in m for m in messages)
    assert any("missing" in m and second.id in m for m in messages)
    assert not any(p.name.startswith(".runctl-") for p in (tmp_path / "resume").iterdir())


def test_restore_without_any_commit_returns_none(store: CheckpointStore, tmp_path: Path) -> None:
    assert restore_checkpoint(store, tmp_path / "resume") is None
    assert latest_manifest(store) is None


def test_prune_keeps_the_newest_and_only_deletes_unreferenced_old_blobs(
    store: CheckpointStore, tmp_path: Path
) -> None:
    source = tmp_path / "ckpt"
    ids = []
    for step in range(4):
        _write(source, {"shared": b"constant", "model": f"step-{step}".encode()})
        manifest = commit_checkpoint(store, source, job_id="j", attempt=0).manifest
        assert manifest is not None
        ids.append(manifest.id)
    store.upload([(source / "shared", "blobs/" + "0" * 64)])  # an in-flight commit's blob

    preview = prune_checkpoints(store, 2, dry_run=True, blob_grace_seconds=0)
    assert len(list_manifests(store)) == 4
    young = prune_checkpoints(store, 2)  # default grace: nothing is old enough to go
    assert young.deleted_blobs == 0
    later = datetime.now(UTC) + timedelta(hours=2)
    for _ in range(2):  # (the second run finds nothing more)
        result = prune_checkpoints(store, 2, now=later)

    assert preview.deleted_manifests == sorted(ids[:2], reverse=True)
    assert [r.id for r in list_manifests(store)] == [ids[3], ids[2]]
    blobs = set(store.list("blobs/"))
    assert blobs == {
        _blob_key(store, ids[3], "model"),
        _blob_key(store, ids[2], "model"),
        _blob_key(store, ids[3], "shared"),
    }
    assert result.deleted_blobs == 0
    restored = restore_checkpoint(store, tmp_path / "resume")
    assert restored is not None and restored.id == ids[3]


def test_a_file_rewritten_during_its_upload_is_uploaded_as_it_was_read(
    store: CheckpointStore, tmp_path: Path
) -> None:
    source = tmp_path / "ckpt"
    _write(source, {"model": b"version-1", "other": b"x"})
    recording = Recording(store)
    rewrites = iter([b"version-2 (longer)", b"v3"])

    def rewrite(_copy: Path) -> None:  # the script writes its file while the copy uploads
        data = next(rewrites, None)
        if data is not None:
            (source / "model").write_bytes(data)

    recording.before_upload = rewrite

    first = commit_checkpoint(recording, source, job_id="j", attempt=0).manifest
    second = commit_checkpoint(recording, source, job_id="j", attempt=0).manifest

    assert first is not None and second is not None
    restore_checkpoint(store, tmp_path / "first", start=first.id)
    restore_checkpoint(store, tmp_path / "second")
    assert (tmp_path / "first" / "model").read_bytes() == b"version-1"
    assert (tmp_path / "second" / "model").read_bytes() == b"v3"
    for key in store.list("blobs/"):  # every blob holds the content its key names
        assert hashlib.sha256(store.read(key)).hexdigest() == key.removeprefix("blobs/")


def test_scan_skips_unfinished_writes(tmp_path: Path) -> None:
    _write(tmp_path, {"model.pt": b"x", "model.pt.tmp": b"partial", ".runctl-restore-1/x": b"y"})

    assert [f.path for f in scan_checkpoint_dir(tmp_path)] == ["model.pt"]


def test_restore_skips_files_already_in_place(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    _write(tmp_path / "ckpt", {"model": b"m" * 100})
    commit_checkpoint(store, tmp_path / "ckpt", job_id="j", attempt=0)
    recording = Recording(store)
    downloads: list[str] = []
    recording.download = lambda items: downloads.extend(k for k, _ in items)  # type: ignore[method-assign]

    restore_checkpoint(recording, tmp_path / "ckpt")

    assert downloads == []


def test_hash_cache_hashes_an_unchanged_file_once(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    cache = HashCache()
    first = cache.sha256(path, path.stat())
    assert cache.get(path, path.stat()) == first
    path.write_bytes(b"xyz")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert cache.get(path, path.stat()) is None
    assert cache.sha256(path, path.stat()) != first


def test_open_store_picks_by_uri(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    with pytest.raises(ValueError):
        open_store("s3://bucket/prefix/")


def test_manifest_is_plain_json(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    _write(tmp_path / "ckpt", {"a": b"1"})
    manifest = commit_checkpoint(store, tmp_path / "ckpt", job_id="job-1", attempt=0).manifest
    assert manifest is not None

    data = json.loads((tmp_path / "store" / "manifests" / f"{manifest.id}.json").read_text())

    assert data["job_id"] == "job-1"
    assert data["files"] == [{"path": "a", "size": 1, "sha256": manifest.files[0].sha256}]
    assert data["sequence"] == 1
