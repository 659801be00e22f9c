"""Deterministic tar.gz archives: the same files give the same bytes, hence the same sha256.

Entries are regular files only (directories are implied), sorted by name, with mtime 0, uid and
gid 0, empty user and group names, and mode 0755 for files with any execute bit, else 0644. The
gzip header carries no file name and mtime 0. Contents are streamed, never held whole in memory.
Used for code bundles and for the runtime bundle.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

COMPRESS_LEVEL = 6


@dataclass(frozen=True)
class ArchiveResult:
    """The archive written: where, its sha256 and size, and how many files it holds."""

    path: Path
    sha256: str
    size: int
    files: int


def file_mode(path: Path) -> int:
    """0755 when any execute bit is set on ``path``, else 0644."""
    return 0o755 if os.stat(path).st_mode & 0o111 else 0o644


def write_deterministic_targz(entries: Iterable[tuple[str, Path]], dest: Path) -> ArchiveResult:
    """Write ``(archive name, source file)`` pairs to ``dest`` (atomically, via a temp name).

    Names are ``/``-separated and relative. Raises OSError when a source cannot be read.
    """
    ordered = sorted(entries, key=lambda entry: entry[0])
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with temp.open("wb") as raw:
            gz = gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=COMPRESS_LEVEL
            )
            with gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name, source in ordered:
                    info = tarfile.TarInfo(name)
                    info.size = os.stat(source).st_size
                    info.mtime = 0
                    info.mode = file_mode(source)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.type = tarfile.REGTYPE
                    with source.open("rb") as handle:
                        tar.addfile(info, handle)
        digest = hashlib.sha256()
        with temp.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(chunk)
        size = temp.stat().st_size
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return ArchiveResult(dest, digest.hexdigest(), size, len(ordered))
