"""``sync`` between a local directory and an S3 prefix: plan what differs, then copy and delete.

A file is copied when the destination lacks it, when the sizes differ, or when the source is newer
(whole seconds: S3 times have no fraction) and its content differs from the destination's. Content
is compared by MD5 against the object's ETag, so only files whose time says "maybe changed" are
read. Downloads get the object's LastModified as mtime, so a second sync of the same data finds
nothing to do from one listing and one directory walk, with no request per file.

``--delete`` removes what the source lacks, after the copy. A plan knows when that looks like a
mistake (:meth:`SyncPlan.deletion_risk`: an empty or missing source, or more than half of the
destination going); the CLI then asks for ``--yes``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runctl.aws import s3_integrity as integrity
from runctl.aws.s3 import S3Object, S3Uri, delete_objects, is_s3_uri, iter_objects
from runctl.aws.s3_copy import place_objects
from runctl.aws.s3_paths import (
    ALL,
    LocalFile,
    PathFilter,
    require_local_path,
    set_mtime,
    walk_local,
)
from runctl.aws.s3_transfer import (
    MB,
    DownloadItem,
    ProgressCallback,
    TransferIssue,
    TransferReport,
    TransferSettings,
    UploadItem,
    download_objects,
    upload_files,
)
from runctl.errors import UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

UPLOAD = "upload"
DOWNLOAD = "download"
DELETE = "delete"
AWS_CLI_PART_SIZE = 8 * MB  # the AWS CLI's default multipart chunk size


@dataclass(frozen=True)
class Side:
    """One file as sync compares it: size and modification time (seconds since the epoch)."""

    size: int
    mtime: float


def copy_reason(
    source: Side, dest: Side | None, same_content: Callable[[], bool | None]
) -> str | None:
    """Why the source must be copied (``new``, ``size``, ``changed``), or None when in sync.

    ``same_content`` is only asked when sizes match and the source is newer; None (unknown)
    counts as different.
    """
    if dest is None:
        return "new"
    if source.size != dest.size:
        return "size"
    if int(source.mtime) <= int(dest.mtime):
        return None
    return None if same_content() else "changed"


@dataclass(frozen=True)
class SyncAction:
    """One step of a sync: copy (``upload``/``download``) or ``delete``, with its reason."""

    action: str
    source: str | None
    destination: str
    size: int
    reason: str


@dataclass
class SyncPlan:
    """What a sync will do; ``actions`` is the display form of the items below it."""

    source: str
    destination: str
    actions: list[SyncAction] = field(default_factory=list)
    uploads: list[UploadItem] = field(default_factory=list)
    downloads: list[DownloadItem] = field(default_factory=list)
    delete_keys: list[S3Uri] = field(default_factory=list)
    delete_paths: list[Path] = field(default_factory=list)
    touches: list[tuple[Path, datetime]] = field(default_factory=list)
    skipped: list[TransferIssue] = field(default_factory=list)
    failed: list[TransferIssue] = field(default_factory=list)
    source_files: int = 0
    destination_files: int = 0
    seconds: float = 0.0  # time spent listing and comparing

    @property
    def copy_bytes(self) -> int:
        return sum(a.size for a in self.actions if a.action != DELETE)

    @property
    def deletes(self) -> int:
        return len(self.delete_keys) + len(self.delete_paths)

    def deletion_risk(self) -> str | None:
        """Why this plan's deletions look like a mistake, or None when they do not: the source
        is empty (a typo in a prefix, an empty directory) or more than half of the destination
        would go. Filters apply to both counts."""
        if not self.deletes:
            return None
        if self.source_files == 0:
            return (
                f"the source {self.source} is empty or missing, and --delete would remove "
                f"all {self.deletes} files under {self.destination}"
            )
        if self.deletes * 2 > self.destination_files:
            return (
                f"--delete would remove {self.deletes} of the {self.destination_files} files "
                f"under {self.destination} (more than half)"
            )
        return None

    def summary(self) -> dict[str, Any]:
        """What the plan would do, with the keys of :meth:`SyncReport.to_dict`."""
        report = TransferReport(len(self.actions) - self.deletes, self.copy_bytes, self.seconds)
        report.skipped.extend(self.skipped)
        report.failed.extend(self.failed)
        return {**report.to_dict(), "deleted": self.deletes}


@dataclass
class SyncReport:
    """What a sync did: the copy's TransferReport plus how many files it deleted."""

    transfer: TransferReport
    deleted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**self.transfer.to_dict(), "deleted": self.deleted}


def local_matches_etag(
    local: LocalFile, remote: S3Object, part_sizes: tuple[int, ...]
) -> bool | None:
    """Whether a local file has the content an ETag stands for; None when that cannot be known
    (SSE-KMS ETag, or a multipart object whose part size is none of ``part_sizes``)."""
    expected = integrity.parse_etag(remote.etag)
    if expected is None:
        return None
    if not expected.parts:
        return integrity.matches(local.path, expected, None)
    for part_size in dict.fromkeys(part_sizes):
        uniform = integrity.uniform_part_size(local.size, expected.parts, part_size)
        if uniform and integrity.matches(local.path, expected, uniform):
            return True
    return None


def _content_check(
    local: LocalFile | None, remote: S3Object | None, part_sizes: tuple[int, ...]
) -> Callable[[], bool | None]:
    def check() -> bool | None:
        if local is None or remote is None:
            return False
        return local_matches_etag(local, remote, part_sizes)

    return check


def list_remote(client: S3Client, prefix: S3Uri, include: PathFilter) -> dict[str, S3Object]:
    """The objects under ``prefix`` (a ``/``-ended prefix) by relative key, filtered."""
    found: dict[str, S3Object] = {}
    for obj in iter_objects(client, prefix):
        relkey = obj.key[len(prefix.key) :]
        if relkey and not relkey.endswith("/") and include(relkey):
            found[relkey] = obj
    return found


def check_sides(source: str, destination: str) -> None:
    """Raise UsageError (exit 2) unless exactly one side is an ``s3://`` URI (and it parses)."""
    if is_s3_uri(source) == is_s3_uri(destination):
        raise UsageError(
            "sync needs one local directory and one s3:// prefix",
            hint="e.g. `runctl s3 sync ./data s3://bucket/data`, or the other way round",
        )
    S3Uri.parse(source if is_s3_uri(source) else destination)


def plan_sync(
    client: S3Client,
    source: str,
    destination: str,
    *,
    delete: bool = False,
    include: PathFilter = ALL,
    part_size: int = 16 * MB,
) -> SyncPlan:
    """Compare a local directory with an S3 prefix (either way round) and plan the sync.

    Raises UsageError (exit 2) unless exactly one side is ``s3://``, NotFoundError (exit 6) for a
    missing local source or bucket.
    """
    check_sides(source, destination)
    started = time.monotonic()
    part_sizes = (part_size, AWS_CLI_PART_SIZE)
    plan = SyncPlan(source=source, destination=destination)
    if is_s3_uri(destination):
        _plan_upload(
            client,
            plan,
            Path(source),
            S3Uri.parse(destination).as_prefix(),
            delete,
            include,
            part_sizes,
        )
    else:
        _plan_download(
            client,
            plan,
            S3Uri.parse(source).as_prefix(),
            Path(destination),
            delete,
            include,
            part_sizes,
        )
    plan.seconds = time.monotonic() - started
    return plan


def _plan_upload(
    client: S3Client,
    plan: SyncPlan,
    root: Path,
    prefix: S3Uri,
    delete: bool,
    include: PathFilter,
    part_sizes: tuple[int, ...],
) -> None:
    require_local_path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="use `runctl s3 upload` for one file")
    local = {f.relpath: f for f in walk_local(root, include)}
    remote = list_remote(client, prefix, include)
    plan.source_files, plan.destination_files = len(local), len(remote)
    for relpath, file in local.items():
        obj = remote.get(relpath)
        dest = Side(obj.size, obj.last_modified.timestamp()) if obj else None
        reason = copy_reason(
            Side(file.size, file.mtime), dest, _content_check(file, obj, part_sizes)
        )
        if reason:
            uri = prefix.join(relpath)
            plan.uploads.append(UploadItem(file.path, uri, file.size))
            plan.actions.append(SyncAction(UPLOAD, str(file.path), str(uri), file.size, reason))
    if delete:
        for relpath in sorted(remote.keys() - local.keys()):
            obj = remote[relpath]
            plan.delete_keys.append(obj.uri)
            plan.actions.append(SyncAction(DELETE, None, str(obj.uri), obj.size, "not in source"))


def _plan_download(
    client: S3Client,
    plan: SyncPlan,
    prefix: S3Uri,
    root: Path,
    delete: bool,
    include: PathFilter,
    part_sizes: tuple[int, ...],
) -> None:
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="use `runctl s3 download` for one file")
    remote = list_remote(client, prefix, include)
    local = {f.relpath: f for f in walk_local(root, include)} if root.exists() else {}
    plan.source_files, plan.destination_files = len(remote), len(local)
    placed = place_objects(remote, prefix, root)
    plan.skipped.extend(placed.skipped)
    plan.failed.extend(placed.failed)
    # Paths the source has but cannot write (clashes) are not "missing from the source".
    in_source = {
        Path(issue.path).relative_to(root).as_posix() for issue in placed.failed if issue.path
    }
    for item in placed.items:
        obj, path = item.source, item.path
        relpath = path.relative_to(root).as_posix()
        in_source.add(relpath)
        file = local.get(relpath)
        reason = copy_reason(
            Side(obj.size, obj.last_modified.timestamp()),
            Side(file.size, file.mtime) if file else None,
            _content_check(file, obj, part_sizes),
        )
        if reason:
            plan.downloads.append(item)
            plan.actions.append(SyncAction(DOWNLOAD, str(obj.uri), str(path), obj.size, reason))
        elif file is not None and int(obj.last_modified.timestamp()) > int(file.mtime):
            # Same content, older time: stamp it so the next sync needs no checksum.
            plan.touches.append((file.path, obj.last_modified))
    if delete:
        for relpath in sorted(local.keys() - in_source):
            file = local[relpath]
            plan.delete_paths.append(file.path)
            plan.actions.append(
                SyncAction(DELETE, None, str(file.path), file.size, "not in source")
            )


def run_sync(
    client: S3Client,
    plan: SyncPlan,
    *,
    settings: TransferSettings | None = None,
    progress: ProgressCallback | None = None,
) -> SyncReport:
    """Carry out a plan: copy first, then delete (so a failed copy deletes nothing)."""
    started = time.monotonic()
    if plan.uploads:
        transfer = upload_files(client, plan.uploads, settings=settings, progress=progress)
    elif plan.downloads:
        transfer = download_objects(client, plan.downloads, settings=settings, progress=progress)
    else:
        transfer = TransferReport()
    transfer.skipped.extend(plan.skipped)
    transfer.failed.extend(plan.failed)
    for path, moment in plan.touches:
        set_mtime(path, moment)
    deleted = 0
    if plan.delete_keys:
        deleted += delete_objects(
            client, plan.delete_keys[0].bucket, (uri.key for uri in plan.delete_keys)
        )
    for path in plan.delete_paths:
        path.unlink(missing_ok=True)
        deleted += 1
    transfer.seconds = plan.seconds + time.monotonic() - started
    return SyncReport(transfer=transfer, deleted=deleted)


def sync(
    client: S3Client,
    source: str,
    destination: str,
    *,
    delete: bool = False,
    include: PathFilter = ALL,
    settings: TransferSettings | None = None,
    progress: ProgressCallback | None = None,
) -> SyncReport:
    """Plan and run a sync in one call (what the instance-side runner uses)."""
    settings = settings or TransferSettings()
    plan = plan_sync(
        client,
        source,
        destination,
        delete=delete,
        include=include,
        part_size=settings.multipart_chunksize,
    )
    return run_sync(client, plan, settings=settings, progress=progress)
