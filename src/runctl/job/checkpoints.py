"""The checkpoint commit protocol (docs/reference.md, "Checkpoints"), the same on the instance and
the laptop.

A store (S3 prefix or local directory, see :mod:`runctl.job.stores`) holds content-addressed
blobs and one manifest per commit (:mod:`runctl.job.manifests`). The manifest is the only thing a
reader trusts, and it is written last: a commit cut off at any point leaves at most unreferenced
blobs, never a manifest, so a resume never sees it.

A commit never makes the checkpoint worse. A file that a process of the job holds open for
writing (``busy``, from :mod:`runctl.remote.writers` on the instance), that changes while it is
read, or whose upload did not finish before the commit's deadline (``stop``) is not taken in its
current state: the new manifest carries that file's last committed version (or leaves it out
when it never had one), and the log says so. Each file is uploaded from a consistent copy
(:mod:`runctl.job.snapshot`), never from bytes that change under the upload. When the result
equals the newest manifest, nothing is written.

Restoring downloads what a manifest lists into a staging directory, verifies every size and
sha256, and falls back to the previous manifest when a blob is missing or corrupt. ``prune``
keeps the newest ``keep_last_n`` manifests and deletes the blobs no remaining manifest
references (only blobs older than an hour, so a commit in flight is never robbed).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from runctl.aws.s3_paths import local_path_for
from runctl.errors import NotFoundError
from runctl.job.manifests import (
    BLOBS,
    MANIFESTS,
    Manifest,
    ManifestFile,
    ManifestRef,
    latest_manifest,
    list_manifests,
    read_manifest,
    write_manifest,
)
from runctl.job.snapshot import (
    STAGING_PREFIX,
    FileCopy,
    HashCache,
    Unstable,
    scan_checkpoint_dir,
    sha256_file,
    snapshot_file,
    staging_dir,
)
from runctl.job.spec import UTC
from runctl.job.stores import CheckpointStore

BLOB_GRACE_SECONDS = 3600.0
NOT_UPLOADED = "its upload did not finish before the commit's deadline"

Log = Callable[[str], None]
Busy = Callable[[], Mapping[str, str]]


def _ignore(message: str) -> None:
    """The default ``log``: say nothing."""


@dataclass
class CommitResult:
    """What one commit did; ``created`` is False when nothing changed since the last manifest.

    ``carried`` maps a file kept at its last committed version to why its current state was not
    taken; ``left_out`` the same for files that had no committed version to keep.
    """

    manifest: Manifest | None
    created: bool
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    reused_files: int = 0
    seconds: float = 0.0
    carried: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)


@dataclass
class PruneResult:
    """What ``prune_checkpoints`` deleted (or, with ``dry_run``, would delete)."""

    kept: list[str] = field(default_factory=list)
    deleted_manifests: list[str] = field(default_factory=list)
    deleted_blobs: int = 0
    freed_bytes: int = 0


@dataclass
class _Reading:
    """The checkpoint directory as this commit takes it: files in their current state (with
    the consistent copies to upload), and files whose current state is not taken, with why."""

    files: dict[str, ManifestFile] = field(default_factory=dict)
    copies: dict[str, FileCopy] = field(default_factory=dict)  # by sha256
    unstable: dict[str, str] = field(default_factory=dict)

    def not_taken(self, rel: str, why: str) -> None:
        self.files.pop(rel, None)
        self.unstable.setdefault(rel, why)


def _read_directory(
    directory: Path, staging: Path, cache: HashCache, held: Mapping[str, str]
) -> _Reading:
    """Each file's sha256: from the cache when unchanged, else from a consistent copy."""
    reading = _Reading()
    for number, item in enumerate(scan_checkpoint_dir(directory)):
        rel = item.path
        if rel in held:
            reading.not_taken(rel, held[rel])
            continue
        path = directory / rel
        try:
            stat = path.stat()
        except OSError:
            reading.not_taken(rel, "it was removed while being read")
            continue
        sha = cache.get(path, stat)
        if sha is not None:
            reading.files[rel] = ManifestFile(rel, stat.st_size, sha)
            continue
        staging.mkdir(exist_ok=True)
        try:
            taken = snapshot_file(path, staging / str(number), cache)
        except Unstable as why:
            reading.not_taken(rel, str(why))
            continue
        reading.files[rel] = ManifestFile(rel, taken.size, taken.sha256)
        reading.copies.setdefault(taken.sha256, taken)
    return reading


def _merge(
    reading: _Reading, committed: Mapping[str, ManifestFile], result: CommitResult
) -> dict[str, ManifestFile]:
    """The files of the new manifest: those taken now, and for the others their last committed
    version (``result.carried``) or nothing (``result.left_out``)."""
    merged = dict(reading.files)
    result.carried, result.left_out = {}, {}
    for rel, why in sorted(reading.unstable.items()):
        previous = committed.get(rel)
        if previous is not None:
            merged[rel] = previous
            result.carried[rel] = why
        else:
            result.left_out[rel] = why
    return merged


def commit_checkpoint(
    store: CheckpointStore,
    directory: Path,
    *,
    job_id: str,
    attempt: int,
    cache: HashCache | None = None,
    log: Log = _ignore,
    clock: Callable[[], float] = time.monotonic,
    busy: Busy | None = None,
    stop: Callable[[], bool] | None = None,
) -> CommitResult:
    """Commit ``directory`` to ``store``: missing blobs first, the manifest last.

    ``busy()`` names the files a writer holds (path -> why), asked before and after reading the
    directory; ``stop()`` turning true ends the uploads (a deadline). Those files, and files that
    change while read, keep their last committed version (see the module docstring). Returns the
    CommitResult; ``created`` is False (nothing written) when the result is empty or equals the
    newest manifest. Raises what the store raises; a failure before the manifest write leaves the
    previous checkpoint the newest committed one.
    """
    started = clock()
    cache = cache or HashCache()
    latest = latest_manifest(store)
    committed = latest.by_path() if latest else {}
    result = CommitResult(latest, created=False)
    staging = staging_dir(directory, "snapshot")
    try:
        reading = _read_directory(directory, staging, cache, dict(busy()) if busy else {})
        if busy is not None:  # a writer that started while we read: its file may be torn
            for rel, why in busy().items():
                if rel in reading.files or rel in committed:
                    reading.not_taken(rel, why)
        files = _merge(reading, committed, result)
        if not _unchanged(files, latest):
            _upload_blobs(store, directory, staging, reading, cache, result, stop)
            files = _merge(reading, committed, result)
        _log_kept(log, result)
        if not _unchanged(files, latest):
            result.manifest = write_manifest(
                store, list(files.values()), job_id=job_id, attempt=attempt, after=latest
            )
            result.created = True
            result.reused_files = len(files) - result.uploaded_files
        result.seconds = clock() - started
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unchanged(files: Mapping[str, ManifestFile], latest: Manifest | None) -> bool:
    """True when there is nothing to commit: no files, or exactly the newest manifest's."""
    return not files or (latest is not None and dict(files) == latest.by_path())


def _upload_blobs(
    store: CheckpointStore,
    directory: Path,
    staging: Path,
    reading: _Reading,
    cache: HashCache,
    result: CommitResult,
    stop: Callable[[], bool] | None,
) -> None:
    """Upload, from consistent copies, the blobs of ``reading.files`` the store lacks; a file
    whose blob was not uploaded (the deadline) is not taken."""
    present = set(store.list(BLOBS))
    wanted: dict[str, list[str]] = {}
    for rel, entry in sorted(reading.files.items()):
        if entry.blob_key not in present:
            wanted.setdefault(entry.sha256, []).append(rel)
    for sha, names in wanted.items():
        if sha not in reading.copies:
            _copy_again(directory / names[0], staging, sha, cache, reading, names)
    shas = [sha for sha in sorted(wanted) if sha in reading.copies]
    items = [(reading.copies[sha].copy, BLOBS + sha) for sha in shas]
    uploaded: set[str] = set(store.upload(items, stop=stop)) if items else set()
    for sha in shas:
        if BLOBS + sha in uploaded:
            result.uploaded_files += 1
            result.uploaded_bytes += reading.copies[sha].size
        else:
            for rel in wanted[sha]:
                reading.not_taken(rel, NOT_UPLOADED)


def _copy_again(
    source: Path, staging: Path, sha: str, cache: HashCache, reading: _Reading, names: list[str]
) -> None:
    """A file hashed by an earlier commit whose blob is gone (pruned, or that upload was cut):
    take a fresh copy, which must still hold the content the cache promised."""
    staging.mkdir(exist_ok=True)
    try:
        taken = snapshot_file(source, staging / f"again-{sha[:16]}", cache)
    except Unstable as why:
        for rel in names:
            reading.not_taken(rel, str(why))
        return
    if taken.sha256 != sha:
        for rel in names:
            reading.not_taken(rel, "it changed since it was hashed")
        return
    reading.copies[sha] = taken


def _log_kept(log: Log, result: CommitResult) -> None:
    for rel, why in sorted(result.carried.items()):
        log(f"checkpoint: keeping {rel} at its last committed version: {why}")
    for rel, why in sorted(result.left_out.items()):
        log(f"checkpoint: leaving {rel} out (it has no committed version yet): {why}")


def find_restorable(
    store: CheckpointStore, *, start: str | None = None, below: int | None = None
) -> list[ManifestRef]:
    """The manifests a restore may use, newest first: from ``start`` (an id) down, and only
    those with a sequence under ``below``. NotFoundError when ``start`` does not exist."""
    refs = list_manifests(store)
    if start is not None:
        first = next((r for r in refs if r.id == start), None)
        if first is None:
            raise NotFoundError(f"checkpoint {start} does not exist in {store.uri}", resource=start)
        refs = [r for r in refs if r.sequence <= first.sequence]
    if below is not None:
        refs = [r for r in refs if r.sequence < below]
    return refs


def restore_checkpoint(
    store: CheckpointStore,
    directory: Path,
    *,
    log: Log = _ignore,
    start: str | None = None,
    below: int | None = None,
    fallback: bool = True,
    on_skip: Callable[[str, str], None] | None = None,
) -> Manifest | None:
    """Restore the newest intact checkpoint into ``directory``; return its manifest, or None.

    ``start`` (a manifest id) and ``below`` (a sequence) narrow the candidates as in
    :func:`find_restorable`. Files are downloaded (skipping those already present with the right
    sha256) into a staging directory inside ``directory``, verified, then renamed into place. A
    manifest that cannot be read or has a missing or corrupt blob is reported to ``on_skip(id,
    why)`` and the log, and the previous one is tried (only the first when not ``fallback``).
    Files in ``directory`` that the manifest does not list are left alone.
    """
    refs = find_restorable(store, start=start, below=below)
    if not refs:
        return None
    blobs = store.list(BLOBS)
    for ref in refs if fallback else refs[:1]:
        problem: str | None
        try:
            manifest = read_manifest(store, ref.id)
        except (NotFoundError, ValueError, KeyError) as exc:
            problem = f"its manifest cannot be read ({exc})"
        else:
            problem = _restore_one(store, manifest, blobs, directory)
            if problem is None:
                return manifest
        if on_skip is not None:
            on_skip(ref.id, problem)
        then = "; falling back to the previous checkpoint" if fallback else ""
        log(f"checkpoint {ref.id}: {problem}{then}")
    if fallback:
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
        if item.blob_key not in blobs:
            return f"blob of {item.path} ({item.sha256[:12]}) is missing"
        targets.append((item, dest))
    directory.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(directory, "restore")
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
        referenced.update(f.blob_key for f in read_manifest(store, ref.id).files)
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
