"""Looking after committed checkpoints: `runctl checkpoint list|info|cleanup`, and their targets.

A *target* is what the user typed, resolved by :func:`open_target`:

- ``s3://B/runctl/P/jobs/ID/``: a job. Its store is where ``job.json`` says checkpoints are
  committed (the job's ``checkpoints/`` unless it was started with ``--checkpoint-s3``).
- any other ``s3://`` prefix: a checkpoint store (``.../jobs/ID/checkpoints/`` also names its job).
- a local directory holding ``manifests/`` or ``blobs/``: a local store, as written by
  ``runctl local --checkpoint-s3 DIR``.
- any other local directory: a *plain* checkpoint directory (files a script wrote, e.g.
  ``runctl local``'s ``RUNCTL_CHECKPOINT_DIR`` without a store). It holds no committed checkpoint:
  ``list`` shows it as one uncommitted entry (``committed: false``, no id) and ``info`` shows its
  files (size, mtime, sha256); ``cleanup`` refuses it and ``resume`` has nothing to restore.

The protocol itself (manifests written last, content-addressed blobs, pruning) is
:mod:`runctl.job.checkpoints`; this module only reads it and presents it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from runctl.errors import NotFoundError, UsageError
from runctl.job.checkpoints import prune_checkpoints
from runctl.job.manifests import (
    BLOBS,
    MANIFESTS,
    Manifest,
    latest_manifest,
    list_manifests,
    read_manifest,
)
from runctl.job.record import JobRecord
from runctl.job.snapshot import LocalCheckpointFile, scan_checkpoint_dir, sha256_file
from runctl.job.spec import JOB_ID_RE, UTC, JobLocation, JobSpec, JobStatus, format_time
from runctl.job.stores import CheckpointStore, open_store

S3ClientFactory = Callable[[], Any]
TARGET_HINT = (
    "pass a job id (see `runctl jobs list`), a checkpoint directory, a local store, "
    "s3://BUCKET/runctl/PROJECT/jobs/JOB_ID/ or an s3:// checkpoint store prefix"
)


@dataclass
class CheckpointTarget:
    """A resolved target: a store (S3 or local) or a plain local checkpoint directory."""

    location: str
    store: CheckpointStore | None = None
    directory: Path | None = None
    job: JobLocation | None = None
    spec: JobSpec | None = None
    status: JobStatus | None = None


@dataclass(frozen=True)
class CheckpointEntry:
    """One row of ``checkpoint list``; ``committed`` is False for a plain directory."""

    id: str | None
    sequence: int | None
    created: str | None
    attempt: int | None
    job_id: str | None
    file_count: int
    total_size: int
    committed: bool
    location: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sequence": self.sequence,
            "created": self.created,
            "attempt": self.attempt,
            "job_id": self.job_id,
            "file_count": self.file_count,
            "total_size": self.total_size,
            "committed": self.committed,
            "location": self.location,
        }


@dataclass
class CheckpointListing:
    """``checkpoint list``: entries newest first; ``files`` only for a plain directory."""

    location: str
    entries: list[CheckpointEntry]
    unreadable: list[str] = field(default_factory=list)
    files: list[LocalCheckpointFile] | None = None

    @property
    def is_store(self) -> bool:
        return self.files is None


@dataclass(frozen=True)
class FileDetail:
    """One file of a checkpoint; ``modified`` (ISO UTC) only for a plain directory."""

    path: str
    size: int
    sha256: str
    modified: str | None = None


@dataclass
class CheckpointDetail:
    """``checkpoint info``: one checkpoint with its files."""

    entry: CheckpointEntry
    files: list[FileDetail]

    def to_dict(self) -> dict[str, Any]:
        files = [
            {"path": f.path, "size": f.size, "sha256": f.sha256, "modified": f.modified}
            for f in self.files
        ]
        return {**self.entry.to_dict(), "files": files}


@dataclass
class CleanupReport:
    """What ``checkpoint cleanup`` deleted (or, with ``dry_run``, would delete).

    ``deferred_blobs`` are unreferenced blobs younger than the protocol's grace period: kept,
    because a commit in flight may be about to reference them; a later cleanup removes them.
    """

    location: str
    keep_last_n: int
    dry_run: bool
    kept: list[str]
    deleted_manifests: list[str]
    deleted_blobs: int
    freed_bytes: int
    deferred_blobs: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "keep_last_n": self.keep_last_n,
            "dry_run": self.dry_run,
            "kept": self.kept,
            "deleted_manifests": self.deleted_manifests,
            "deleted_blobs": self.deleted_blobs,
            "freed_bytes": self.freed_bytes,
            "deferred_blobs": self.deferred_blobs,
        }


def job_of_store(uri: str) -> JobLocation | None:
    """The job whose ``checkpoints/`` the S3 prefix ``uri`` is, or None."""
    trimmed = uri.rstrip("/")
    if not trimmed.endswith("/checkpoints"):
        return None
    try:
        return JobLocation.from_uri(trimmed.removesuffix("checkpoints"))
    except ValueError:
        return None


def open_target(
    text: str, s3_client: S3ClientFactory, *, bucket: str | None = None
) -> CheckpointTarget:
    """Resolve what the user typed (see the module docstring); a bare job id (as `jobs list`
    prints it) names that job in ``bucket`` when no local path of that name exists.

    Raises NotFoundError (exit 6) when nothing is there: a missing path, a job without
    ``job.json``, or an S3 prefix with neither manifests nor blobs; UsageError for a malformed
    ``s3://`` URI. ``s3_client`` is called only for S3 targets.
    """
    if not text.startswith("s3://"):
        path = Path(text).expanduser()
        named = JOB_ID_RE.match(text)
        if named is not None and bucket and not path.exists():
            return _open_job(JobLocation(bucket, named["project"], text), s3_client)
        return _open_local(path.resolve())
    try:
        job: JobLocation | None = JobLocation.from_uri(text)
    except ValueError:
        job = None
    if job is not None:
        return _open_job(job, s3_client)
    store = open_store(text, s3_client)
    if not list_manifests(store) and not store.list(BLOBS):
        raise NotFoundError(
            f"no checkpoint store at {store.uri} (nothing under manifests/ or blobs/)",
            hint=TARGET_HINT,
            resource=store.uri,
        )
    return CheckpointTarget(store.uri, store=store, job=job_of_store(store.uri))


def _open_job(job: JobLocation, s3_client: S3ClientFactory) -> CheckpointTarget:
    client = s3_client()
    try:
        spec, status = JobRecord(job, s3=client).read()
    except NotFoundError:
        raise NotFoundError(
            f"no job at {job.uri} (its job.json does not exist)",
            hint=f"list the project's jobs: runctl s3 list s3://{job.bucket}/runctl/"
            f"{job.project}/jobs/",
            resource=job.uri,
        ) from None
    store = open_store(spec.checkpoint_uri or job.checkpoints_uri, lambda: client)
    return CheckpointTarget(store.uri, store=store, job=job, spec=spec, status=status)


def _open_local(path: Path) -> CheckpointTarget:
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise NotFoundError(f"{path} {what}", hint=TARGET_HINT, resource=str(path))
    if (path / MANIFESTS).is_dir() or (path / BLOBS).is_dir():
        store = open_store(str(path))
        return CheckpointTarget(store.uri, store=store)
    return CheckpointTarget(str(path), directory=path)


def _entry(manifest: Manifest, location: str) -> CheckpointEntry:
    return CheckpointEntry(
        id=manifest.id,
        sequence=manifest.sequence,
        created=manifest.created,
        attempt=manifest.attempt,
        job_id=manifest.job_id or None,
        file_count=len(manifest.files),
        total_size=manifest.total_size,
        committed=True,
        location=location,
    )


def _mtime(seconds: float) -> str:
    return format_time(datetime.fromtimestamp(seconds, tz=UTC))


def _plain_entry(directory: Path, files: list[LocalCheckpointFile]) -> CheckpointEntry:
    return CheckpointEntry(
        id=None,
        sequence=None,
        created=_mtime(max(f.mtime for f in files)),
        attempt=None,
        job_id=None,
        file_count=len(files),
        total_size=sum(f.size for f in files),
        committed=False,
        location=str(directory),
    )


def list_checkpoints(target: CheckpointTarget) -> CheckpointListing:
    """Committed checkpoints, newest first (one GET per manifest for its files and sizes).

    A plain directory gives one uncommitted entry (none when it is empty) plus its files.
    Manifests that cannot be read are left out and named in ``unreadable``.
    """
    if target.store is None:
        assert target.directory is not None
        files = scan_checkpoint_dir(target.directory)
        entries = [_plain_entry(target.directory, files)] if files else []
        return CheckpointListing(target.location, entries, files=files)
    listing = CheckpointListing(target.location, [])
    for ref in list_manifests(target.store):
        try:
            listing.entries.append(_entry(read_manifest(target.store, ref.id), target.location))
        except (NotFoundError, ValueError, KeyError):
            listing.unreadable.append(ref.id)
    return listing


def find_manifest(store: CheckpointStore, wanted: str) -> Manifest:
    """The manifest named ``wanted``: its full id, its sequence number, or a unique id prefix.

    Raises NotFoundError (exit 6) naming the checkpoints there are.
    """
    refs = list_manifests(store)
    exact = [r for r in refs if r.id == wanted]
    if not exact and wanted.isdigit():
        exact = [r for r in refs if r.sequence == int(wanted)]
    matches = exact or [r for r in refs if r.id.startswith(wanted)]
    if len(matches) == 1:
        return read_manifest(store, matches[0].id)
    known = ", ".join(r.id for r in refs[:5]) or "none"
    problem = "matches several checkpoints" if matches else "does not exist"
    raise NotFoundError(
        f"checkpoint {wanted!r} {problem} in {store.uri}",
        hint=f"newest checkpoints: {known} (see `runctl checkpoint list {store.uri}`)",
        resource=wanted,
    )


def checkpoint_info(target: CheckpointTarget, checkpoint_id: str | None = None) -> CheckpointDetail:
    """One checkpoint with its files: ``checkpoint_id`` or the newest committed one.

    For a plain directory, its files with sizes, mtimes and sha256. Raises NotFoundError when
    there is no such checkpoint, UsageError for ``checkpoint_id`` on a plain directory.
    """
    if target.store is None:
        assert target.directory is not None
        if checkpoint_id is not None:
            raise UsageError(
                f"{target.location} is a plain checkpoint directory: it has no checkpoint ids",
                hint="--checkpoint needs a checkpoint store",
            )
        return _plain_detail(target.directory)
    if checkpoint_id is not None:
        manifest = find_manifest(target.store, checkpoint_id)
    else:
        newest = latest_manifest(target.store)
        if newest is None:
            raise no_checkpoint(target)
        manifest = newest
    files = [FileDetail(f.path, f.size, f.sha256) for f in manifest.files]
    return CheckpointDetail(_entry(manifest, target.location), files)


def _plain_detail(directory: Path) -> CheckpointDetail:
    files = scan_checkpoint_dir(directory)
    if not files:
        raise NotFoundError(
            f"{directory} holds no checkpoint files and no committed manifests",
            hint=TARGET_HINT,
            resource=str(directory),
        )
    details = [
        FileDetail(f.path, f.size, sha256_file(directory / f.path), _mtime(f.mtime)) for f in files
    ]
    return CheckpointDetail(_plain_entry(directory, files), details)


def no_checkpoint(target: CheckpointTarget) -> NotFoundError:
    """The error for a target without any committed checkpoint (exit 6)."""
    if target.store is None:
        return NotFoundError(
            f"{target.location} holds no committed checkpoint: it is a plain checkpoint "
            "directory, not a store",
            hint="to continue a local run from these files, run `runctl local SCRIPT "
            f"--checkpoint-dir {target.location}` again",
            resource=target.location,
        )
    return NotFoundError(
        f"no committed checkpoint in {target.location}",
        hint="a checkpoint is committed when the script writes to RUNCTL_CHECKPOINT_DIR "
        "(every checkpoint.sync_interval_seconds and when it ends)",
        resource=target.location,
    )


def cleanup_checkpoints(
    target: CheckpointTarget,
    keep_last_n: int,
    *,
    dry_run: bool,
    now: datetime | None = None,
) -> CleanupReport:
    """Keep the newest ``keep_last_n`` checkpoints; delete older manifests and the blobs no
    kept manifest references (see :func:`runctl.job.checkpoints.prune_checkpoints`).

    Raises UsageError (exit 2) for a plain directory or ``keep_last_n`` < 1.
    """
    if target.store is None:
        raise UsageError(
            f"{target.location} is a plain checkpoint directory, not a checkpoint store: "
            "runctl does not delete files a script wrote",
            hint="cleanup works on stores: an s3:// job prefix or a --checkpoint-s3 directory",
        )
    if keep_last_n < 1:
        raise UsageError("--keep-last-n must be at least 1")
    result = prune_checkpoints(target.store, keep_last_n, dry_run=dry_run, now=now)
    eventually = prune_checkpoints(
        target.store, keep_last_n, dry_run=True, blob_grace_seconds=0, now=now
    )
    already_counted = result.deleted_blobs if dry_run else 0
    return CleanupReport(
        location=target.location,
        keep_last_n=keep_last_n,
        dry_run=dry_run,
        kept=result.kept,
        deleted_manifests=result.deleted_manifests,
        deleted_blobs=result.deleted_blobs,
        freed_bytes=result.freed_bytes,
        deferred_blobs=max(0, eventually.deleted_blobs - already_counted),
    )
