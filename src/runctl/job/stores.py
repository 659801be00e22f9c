"""Where committed checkpoints are kept: a key/value "store" in S3 or in a local directory.

The checkpoint protocol (:mod:`runctl.job.checkpoints`) only needs a few operations on keys relative
to the store's root (``blobs/<sha256>``, ``manifests/<id>.json``): list a prefix, read and write a
small document, upload files in parallel (giving up the rest when a deadline passes) and download
them, delete, and abort what a killed upload left unfinished. :class:`LocalStore` implements them on
a directory (every write is a temporary file renamed into place, so a cut-off write never shows
under its final name); :class:`runctl.job.s3store.S3Store` implements them with the S3 transfer
engine. ``open_store`` picks one from a URI, importing boto3 only for S3.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from runctl.errors import NotFoundError
from runctl.job.spec import UTC, write_bytes_atomic


@dataclass(frozen=True)
class StoredObject:
    """One object in a store: its key relative to the store root, size and modification time."""

    key: str
    size: int
    modified: datetime


class CheckpointStore:
    """The operations the checkpoint protocol needs; keys are ``/``-separated, root-relative."""

    uri: str = ""

    def list(self, prefix: str) -> dict[str, StoredObject]:
        """Every object whose key starts with ``prefix``, by key."""
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        """The whole content of a small object; NotFoundError when it does not exist."""
        raise NotImplementedError

    def write(self, key: str, data: bytes) -> None:
        """Write a small object atomically (it appears whole or not at all)."""
        raise NotImplementedError

    def upload(
        self, items: Sequence[tuple[Path, str]], *, stop: Callable[[], bool] | None = None
    ) -> Sequence[str]:
        """Upload local files to keys (in parallel where the store can); return the keys
        uploaded. Once ``stop()`` is true the remaining ones are given up (not returned)."""
        raise NotImplementedError

    def download(self, items: Sequence[tuple[str, Path]]) -> None:
        """Download keys to local paths; each path appears only when complete."""
        raise NotImplementedError

    def delete(self, keys: Iterable[str]) -> int:
        """Delete keys; return how many were deleted."""
        raise NotImplementedError

    def abort_incomplete_uploads(self, prefix: str) -> Sequence[str]:
        """Abort unfinished uploads under ``prefix`` that a killed commit left behind; return
        their keys. A store whose writes are atomic renames has none."""
        return []


class LocalStore(CheckpointStore):
    """A store in a local directory: ``runctl local --checkpoint-s3 /some/dir`` and tests."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"unsafe store key {key!r}")
        return self.root.joinpath(*parts)

    def list(self, prefix: str) -> dict[str, StoredObject]:
        found: dict[str, StoredObject] = {}
        if not self.root.is_dir():
            return found
        for directory, _dirs, names in os.walk(self.root):
            for name in names:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # an unfinished write
                path = Path(directory) / name
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    stat = path.stat()
                except OSError:
                    continue
                modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
                found[key] = StoredObject(key, stat.st_size, modified)
        return found

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"{self.uri}/{key} does not exist", resource=key) from None

    def write(self, key: str, data: bytes) -> None:
        write_bytes_atomic(self._path(key), data)

    def upload(
        self, items: Sequence[tuple[Path, str]], *, stop: Callable[[], bool] | None = None
    ) -> Sequence[str]:
        done = []
        for source, key in items:
            if stop is not None and stop():
                break
            _copy_atomic(source, self._path(key))
            done.append(key)
        return done

    def download(self, items: Sequence[tuple[str, Path]]) -> None:
        for key, dest in items:
            source = self._path(key)
            if not source.is_file():
                raise NotFoundError(f"{self.uri}/{key} does not exist", resource=key)
            _copy_atomic(source, dest)

    def delete(self, keys: Iterable[str]) -> int:
        deleted = 0
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()
                deleted += 1
        return deleted


def _copy_atomic(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def open_store(uri: str, s3_client: Callable[[], Any] | None = None) -> CheckpointStore:
    """The store at ``uri``: an ``s3://`` prefix (``s3_client()`` builds the boto3 client) or a
    local directory path (``file://`` allowed)."""
    if uri.startswith("s3://"):
        from runctl.job.s3store import S3Store

        if s3_client is None:
            raise ValueError("an S3 checkpoint store needs an S3 client")
        return S3Store(s3_client(), uri)
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return LocalStore(Path(path).expanduser())
