"""Reading a checkpoint directory for a commit: which files, their sha256, and consistent copies.

A commit must never upload bytes that change under it: a file truncated and rewritten while it
uploads makes S3 wait for the rest of the announced body until botocore's read timeout (about
60 s), and what arrives is torn anyway. So each file that has to be uploaded is read exactly
once, into the sha256 and into a copy in a staging directory inside the checkpoint directory
(same filesystem, skipped by scans); the upload reads the copy, which nothing else writes. The
file's size and mtime are checked before and after the read: a file that changed meanwhile is
read again a few times, then reported as unstable (the commit then keeps its last committed
version). A file whose size and mtime match what was hashed before (:class:`HashCache`) is not
read again.

Files skipped in a checkpoint directory: names ending in ``.tmp`` (a script's atomic write in
progress), the S3 engine's unfinished downloads and runctl's own ``.runctl-*`` staging.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runctl.aws.s3_paths import is_temp_name

STAGING_PREFIX = ".runctl-"
READ_SIZE = 1024 * 1024
REREAD_DELAYS = (0.01, 0.05, 0.2)  # seconds before each new read of a file that changed


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(READ_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def skipped_name(name: str) -> bool:
    """True for files a checkpoint never includes (unfinished writes and runctl's staging)."""
    return name.endswith(".tmp") or is_temp_name(name) or name.startswith(STAGING_PREFIX)


@dataclass(frozen=True)
class LocalCheckpointFile:
    """A file in a checkpoint directory on disk."""

    path: str
    size: int
    mtime: float


def scan_checkpoint_dir(directory: Path) -> list[LocalCheckpointFile]:
    """The files of a checkpoint directory on disk (relative path, size, mtime), sorted."""
    found: list[LocalCheckpointFile] = []
    if not directory.is_dir():
        return found
    for current, dirnames, names in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(STAGING_PREFIX))
        for name in sorted(names):
            if skipped_name(name):
                continue
            path = Path(current) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append(
                LocalCheckpointFile(
                    path.relative_to(directory).as_posix(), stat.st_size, stat.st_mtime
                )
            )
    return found


def staging_dir(directory: Path, purpose: str) -> Path:
    """This process's staging directory for ``purpose`` inside ``directory``; those a killed
    process left (its pid no longer runs) are removed first, so they never pile up."""
    for stale in directory.glob(f"{STAGING_PREFIX}{purpose}-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return directory / f"{STAGING_PREFIX}{purpose}-{os.getpid()}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _version(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class HashCache:
    """sha256 of files by (path, inode, size, mtime_ns), so an unchanged file is read once."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int, int], str] = {}

    def get(self, path: Path, stat: os.stat_result) -> str | None:
        return self._known.get((str(path), *_version(stat)))

    def put(self, path: Path, stat: os.stat_result, sha256: str) -> None:
        self._known[(str(path), *_version(stat))] = sha256

    def sha256(self, path: Path, stat: os.stat_result) -> str:
        digest = self.get(path, stat)
        if digest is None:
            digest = sha256_file(path)
            self.put(path, stat, digest)
        return digest


@dataclass(frozen=True)
class FileCopy:
    """A consistent copy of one file: its bytes at one moment, their sha256, and where the copy
    lies (the upload reads it there)."""

    sha256: str
    size: int
    copy: Path
    stat: os.stat_result  # of the source while it was read


class Unstable(Exception):
    """A file kept changing while it was read (or could not be read); the message says why."""


def copy_and_hash(source: Path, dest: Path) -> FileCopy | None:
    """Copy ``source`` to ``dest`` in one read, hashing the bytes as they pass.

    Returns None (and removes ``dest``) when the file changed during the read: its inode, size
    or mtime moved, or it did not hold the bytes its size promised. Raises OSError when it
    cannot be read or the copy cannot be written (ENOSPC).
    """
    digest = hashlib.sha256()
    copied = 0
    try:
        with source.open("rb") as src, dest.open("wb") as out:
            before = os.fstat(src.fileno())
            while copied < before.st_size:  # never past it: a file may grow faster than we read
                chunk = src.read(min(READ_SIZE, before.st_size - copied))
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                copied += len(chunk)
            after = os.fstat(src.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            dest.unlink()
        raise
    if _version(before) != _version(after) or copied != after.st_size:
        dest.unlink()
        return None
    return FileCopy(digest.hexdigest(), copied, dest, after)


def snapshot_file(
    source: Path,
    dest: Path,
    cache: HashCache | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> FileCopy:
    """A consistent copy of ``source`` at ``dest``, reading again (after a short pause) while it
    changes under the read. Raises Unstable when it never holds still, or cannot be read."""
    attempts = (0.0, *REREAD_DELAYS)
    for delay in attempts:
        if delay:
            sleep(delay)
        try:
            taken = copy_and_hash(source, dest)
        except FileNotFoundError:
            raise Unstable("it was removed while being read") from None
        except OSError as exc:
            raise Unstable(f"it could not be read and copied ({exc})") from None
        if taken is not None:
            if cache is not None:
                cache.put(source, taken.stat, taken.sha256)
            return taken
    raise Unstable(f"it changed each of the {len(attempts)} times it was read")
