"""The checkpoint commit protocol (docs/reference.md, "Checkpoints"), the same on the instance and
the laptop.

A store (S3 prefix or local directory, see :mod:`runctl.job.stores`) holds::

    blobs/<sha256>                                   file contents, content-addressed
    manifests/<seq:08d>-<yyyymmddTHHMMSSZ>-a<attempt>.json   one per commit, written LAST

A manifest lists every file of the checkpoint directory (relative path, size, sha256) with the
job id, attempt and time. It is the only thing a reader trusts: a commit uploads the blobs that
are not there yet (one LIST tells which, no HEAD per file), then writes the manifest. A commit cut
off at any point leaves at most unreferenced blobs, never a manifest, so a resume never sees it.
Restoring downloads what the newest manifest lists into a staging directory, verifies every
size and sha256, and falls back to the previous manifest when a blob is missing or corrupt.
``prune`` keeps the newest ``keep_last_n`` manifests and deletes the blobs no remaining manifest
references (only blobs older than an hour, so a commit in flight is never robbed).

Files skipped in a checkpoint directory: names ending in ``.tmp`` (a script's atomic write in
progress), the S3 engine's unfinished downloads and runctl's own ``.runctl-*`` staging.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from runctl.aws.s3_paths import is_temp_name, local_path_for
from runctl.errors import NotFoundError
from runctl.job.spec import UTC, utc_now
from runctl.job.stores import CheckpointStore

BLOBS = "blobs/"
MANIFESTS = "manifests/"
STAGING_PREFIX = ".runctl-"
BLOB_GRACE_SECONDS = 3600.0
READ_SIZE = 1024 * 1024
UNSTABLE_RETRIES = 3

Log = Callable[[str], None]


def _ignore(message: str) -> None:
    """The default ``log``: say nothing."""


@dataclass(frozen=True)
class ManifestFile:
    """One file of a checkpoint."""

    path: str
    size: int
    sha256: str


@dataclass
class Manifest:
    """A committed checkpoint: what a resume restores."""

    id: str
    sequence: int
    job_id: str
    attempt: int
    created: str
    files: list[ManifestFile] = field(default_factory=list)
    format: int = 1

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_size"] = self.total_size
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            id=str(data["id"]),
            sequence=int(data["sequence"]),
            job_id=str(data.get("job_id", "")),
            attempt=int(data.get("attempt", 0)),
            created=str(data.get("created", "")),
            files=[
                ManifestFile(str(f["path"]), int(f["size"]), str(f["sha256"]))
                for f in data.get("files", [])
            ],
            format=int(data.get("format", 1)),
        )


@dataclass(frozen=True)
class ManifestRef:
    """A manifest as listed (its name carries sequence and attempt; no GET needed)."""

    id: str
    sequence: int
    attempt: int
    modified: datetime


@dataclass
class CommitResult:
    """What one commit did; ``created`` is False when nothing changed since the last manifest."""

    manifest: Manifest | None
    created: bool
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    reused_files: int = 0
    seconds: float = 0.0


@dataclass
class PruneResult:
    """What ``prune_checkpoints`` deleted (or, with ``dry_run``, would delete)."""

    kept: list[str] = field(default_factory=list)
    deleted_manifests: list[str] = field(default_factory=list)
    deleted_blobs: int = 0
    freed_bytes: int = 0


@dataclass(frozen=True)
class LocalCheckpointFile:
    """A file in a checkpoint directory on disk."""

    path: str
    size: int
    mtime: float


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(READ_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def skipped_name(name: str) -> bool:
    """True for files a checkpoint never includes (unfinished writes and runctl's staging)."""
    return name.endswith(".tmp") or is_temp_name(name) or name.startswith(STAGING_PREFIX)


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


def _parse_manifest_name(key: str, modified: datetime) -> ManifestRef | None:
    name = key[len(MANIFESTS) :]
    if "/" in name or not name.endswith(".json"):
        return None
    stem = name[: -len(".json")]
    parts = stem.split("-")
    try:
        sequence = int(parts[0])
        attempt = int(parts[-1][1:]) if parts[-1].startswith("a") else 0
    except ValueError:
        return None
    return ManifestRef(stem, sequence, attempt, modified)


def list_manifests(store: CheckpointStore) -> list[ManifestRef]:
    """Every manifest in the store, newest (highest sequence) first."""
    refs = []
    for key, obj in store.list(MANIFESTS).items():
        ref = _parse_manifest_name(key, obj.modified)
        if ref is not None:
            refs.append(ref)
    return sorted(refs, key=lambda r: (r.sequence, r.id), reverse=True)


def read_manifest(store: CheckpointStore, manifest_id: str) -> Manifest:
    """The manifest ``manifest_id``; NotFoundError when it does not exist."""
    data = json.loads(store.read(f"{MANIFESTS}{manifest_id}.json"))
    return Manifest.from_dict(data)


def latest_manifest(store: CheckpointStore) -> Manifest | None:
    """The newest readable manifest, or None when nothing was ever committed."""
    for ref in list_manifests(store):
        try:
            return read_manifest(store, ref.id)
        except (NotFoundError, ValueError, KeyError):
            continue
    return None


class HashCache:
    """sha256 of files by (path, size, mtime_ns), so an unchanged file is hashed once."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int], str] = {}

    def sha256(self, path: Path, stat: os.stat_result) -> str:
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        digest = self._known.get(key)
        if digest is None:
            digest = sha256_file(path)
            self._known[key] = digest
        return digest


def _snapshot(directory: Path, cache: HashCache) -> dict[str, tuple[Path, os.stat_result, str]]:
    entries: dict[str, tuple[Path, os.stat_result, str]] = {}
    for item in scan_checkpoint_dir(directory):
        path = directory / item.path
        try:
            stat = path.stat()
            entries[item.path] = (path, stat, cache.sha256(path, stat))
        except OSError:
            continue  # removed while we looked
    return entries


def _unchanged(path: Path, before: os.stat_result) -> bool:
    try:
        after = path.stat()
    except OSError:
        return False
    return (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def commit_checkpoint(
    store: CheckpointStore,
    directory: Path,
    *,
    job_id: str,
    attempt: int,
    cache: HashCache | None = None,
    log: Log = _ignore,
    clock: Callable[[], float] = time.monotonic,
) -> CommitResult:
    """Commit ``directory`` to ``store``: missing blobs first, the manifest last.

    Returns the CommitResult; ``created`` is False (and nothing is written) when the directory is
    empty or identical to the newest manifest. A file that changes while it is uploaded is
    retried, then left out of this commit (it will be in the next). Raises what the store raises;
    a failure before the manifest write leaves the previous checkpoint the newest committed one.
    """
    started = clock()
    cache = cache or HashCache()
    entries = _snapshot(directory, cache)
    latest = latest_manifest(store)
    files = {path: (stat.st_size, sha) for path, (_p, stat, sha) in entries.items()}
    if not entries or (latest and files == {f.path: (f.size, f.sha256) for f in latest.files}):
        return CommitResult(latest, created=False, seconds=clock() - started)
    present = set(store.list(BLOBS))
    result = CommitResult(None, created=True)
    for round_no in range(UNSTABLE_RETRIES):
        pending: dict[str, tuple[Path, os.stat_result]] = {}
        for path, stat, sha in entries.values():
            if BLOBS + sha not in present:
                pending[sha] = (path, stat)
        store.upload([(path, BLOBS + sha) for sha, (path, _stat) in sorted(pending.items())])
        present.update(BLOBS + sha for sha in pending)
        result.uploaded_files += len(pending)
        result.uploaded_bytes += sum(stat.st_size for _path, stat in pending.values())
        changed = {
            rel: sha for rel, (path, stat, sha) in entries.items() if not _unchanged(path, stat)
        }
        if not changed:
            break
        # What was uploaded for a changing file may not match its name: never keep it.
        suspect = [BLOBS + sha for sha in set(changed.values()) if sha in pending]
        store.delete(suspect)
        present.difference_update(suspect)
        if round_no == UNSTABLE_RETRIES - 1:
            for rel in sorted(changed):
                log(f"leaving {rel} out of this checkpoint: it keeps changing")
                entries.pop(rel)
            break
        log(f"checkpoint files changed while uploading, retrying: {', '.join(sorted(changed))}")
        entries = _snapshot(directory, cache)
    result.reused_files = len(entries) - result.uploaded_files
    sequence = (latest.sequence + 1) if latest else 1
    refs = list_manifests(store)
    if refs:
        sequence = max(sequence, refs[0].sequence + 1)
    now = datetime.now(UTC)
    manifest = Manifest(
        id=f"{sequence:08d}-{now:%Y%m%dT%H%M%SZ}-a{attempt}",
        sequence=sequence,
        job_id=job_id,
        attempt=attempt,
        created=utc_now(),
        files=[
            ManifestFile(rel, stat.st_size, sha)
            for rel, (_path, stat, sha) in sorted(entries.items())
        ],
    )
    body = json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode("utf-8")
    store.write(f"{MANIFESTS}{manifest.id}.json", body)
    result.manifest = manifest
    result.seconds = clock() - started
    return result


def restore_checkpoint(
    store: CheckpointStore, directory: Path, *, log: Log = _ignore
) -> Manifest | None:
    """Restore the newest intact checkpoint into ``directory``; return its manifest, or None.

    Files are downloaded (skipping those already present with the right sha256) into a staging
    directory inside ``directory``, verified, then renamed into place. A manifest with a missing
    or corrupt blob is logged and skipped in favour of the previous one. Files in ``directory``
    that the manifest does not list are left alone.
    """
    refs = list_manifests(store)
    if not refs:
        return None
    blobs = store.list(BLOBS)
    for ref in refs:
        try:
            manifest = read_manifest(store, ref.id)
        except (NotFoundError, ValueError, KeyError) as exc:
            log(f"checkpoint {ref.id}: manifest unreadable ({exc}); trying the previous one")
            continue
        problem = _restore_one(store, manifest, blobs, directory)
        if problem is None:
            return manifest
        log(f"checkpoint {manifest.id}: {problem}; falling back to the previous checkpoint")
    log("no intact checkpoint found; starting without one")
    return None


def _restore_one(
    store: CheckpointStore,
    manifest: Manifest,
    blobs: dict[str, Any],
    directory: Path,
) -> str | None:
    """Restore one manifest; return None on success or what was wrong with it."""
    targets: list[tuple[ManifestFile, Path]] = []
    for item in manifest.files:
        dest = local_path_for(directory, item.path)
        if dest is None:
            return f"unsafe path {item.path!r} in the manifest"
        if BLOBS + item.sha256 not in blobs:
            return f"blob of {item.path} ({item.sha256[:12]}) is missing"
        targets.append((item, dest))
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f"{STAGING_PREFIX}restore-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        wanted: dict[str, Path] = {}
        uses: dict[str, int] = {}
        for item, dest in targets:
            if (
                dest.is_file()
                and dest.stat().st_size == item.size
                and sha256_file(dest) == item.sha256
            ):
                continue
            wanted.setdefault(item.sha256, staging / item.sha256)
            uses[item.sha256] = uses.get(item.sha256, 0) + 1
        try:
            store.download([(BLOBS + sha, path) for sha, path in sorted(wanted.items())])
        except Exception as exc:  # missing object, AWS error, the engine's integrity check
            return f"download failed ({exc})"
        for sha, path in wanted.items():
            if sha256_file(path) != sha:
                return f"blob {sha[:12]} is corrupt (its sha256 does not match)"
        for item, dest in targets:
            staged = wanted.get(item.sha256)
            if staged is None:
                continue
            if staged.stat().st_size != item.size:
                return f"blob of {item.path} has the wrong size"
            dest.parent.mkdir(parents=True, exist_ok=True)
            uses[item.sha256] -= 1
            if uses[item.sha256] > 0:  # the same content under several names: copy, keep staged
                temp = dest.with_name(f"{STAGING_PREFIX}{dest.name}")
                shutil.copyfile(staged, temp)
                os.replace(temp, dest)
            else:
                os.replace(staged, dest)
        return None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prune_checkpoints(
    store: CheckpointStore,
    keep_last_n: int,
    *,
    dry_run: bool = False,
    blob_grace_seconds: float = BLOB_GRACE_SECONDS,
    now: datetime | None = None,
) -> PruneResult:
    """Keep the newest ``keep_last_n`` manifests; delete older ones and unreferenced blobs.

    Blobs younger than ``blob_grace_seconds`` are kept even when unreferenced: they may belong to
    a commit whose manifest is not written yet. Returns what was (or would be) deleted.
    """
    keep_last_n = max(1, keep_last_n)
    refs = list_manifests(store)
    kept, dropped = refs[:keep_last_n], refs[keep_last_n:]
    result = PruneResult(kept=[r.id for r in kept], deleted_manifests=[r.id for r in dropped])
    referenced: set[str] = set()
    for ref in kept:
        referenced.update(BLOBS + f.sha256 for f in read_manifest(store, ref.id).files)
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=blob_grace_seconds)
    garbage = [
        obj
        for key, obj in store.list(BLOBS).items()
        if key not in referenced and obj.modified <= cutoff
    ]
    result.deleted_blobs = len(garbage)
    result.freed_bytes = sum(obj.size for obj in garbage)
    if not dry_run:
        # Manifests first: a reader never sees a manifest whose blobs are already gone.
        store.delete(f"{MANIFESTS}{ref.id}.json" for ref in dropped)
        store.delete(obj.key for obj in garbage)
    return result
