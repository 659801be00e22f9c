"""``cp``-style copies: turn a source and a destination into transfer items, then run them.

Destinations follow ``aws s3 cp``: a file uploaded to ``s3://b/dir/`` (or the bare bucket) keeps its
name; a recursive copy puts the *contents* of the source under the destination, with relative
paths kept; a download into an existing directory (or a path ending in ``/``) keeps the key's name.
Keys map to local paths as the AWS CLI maps them (``x//a.txt`` lands as ``x/a.txt``; ``..`` keys
are skipped); a key that would need to be both a file and a directory is reported, not fatal.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runctl.aws.s3 import LIST_HINT, S3Object, S3Uri, iter_objects, stat_object
from runctl.aws.s3_paths import (
    ALL,
    PathFilter,
    normalize_relkey,
    place_keys,
    require_local_path,
    walk_local,
)
from runctl.aws.s3_transfer import (
    DownloadItem,
    ProgressCallback,
    TransferIssue,
    TransferReport,
    TransferSettings,
    UploadItem,
    download_objects,
    upload_files,
)
from runctl.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass
class DownloadPlan:
    """The objects to fetch; the keys left out (``..`` and such, or a second key for the same
    path); and the keys that cannot be written (a path other keys need as a directory)."""

    items: list[DownloadItem] = field(default_factory=list)
    skipped: list[TransferIssue] = field(default_factory=list)
    failed: list[TransferIssue] = field(default_factory=list)

    def add_to(self, report: TransferReport) -> TransferReport:
        """``report`` with this plan's skipped and failed keys added."""
        report.skipped.extend(self.skipped)
        report.failed.extend(self.failed)
        return report


def place_objects(objects: Mapping[str, S3Object], prefix: S3Uri, root: Path) -> DownloadPlan:
    """Where each object under ``prefix`` lands under ``root`` (``objects`` is keyed by the key
    part after the prefix), with the keys that cannot land and why."""
    placement = place_keys(objects, name=lambda relkey: str(prefix.join(relkey)))
    plan = DownloadPlan()
    for relkey, relpath in placement.paths.items():
        plan.items.append(DownloadItem(objects[relkey], root.joinpath(*relpath.split("/"))))
    for relkey, reason in placement.skipped.items():
        plan.skipped.append(TransferIssue(str(objects[relkey].uri), reason))
    for relkey, reason in placement.conflicts.items():
        path = root.joinpath(*str(normalize_relkey(relkey)).split("/"))
        plan.failed.append(TransferIssue(str(objects[relkey].uri), reason, str(path)))
    return plan


def plan_upload(
    source: Path, destination: S3Uri, *, recursive: bool = False, include: PathFilter = ALL
) -> list[UploadItem]:
    """The files to upload and their keys.

    Raises NotFoundError (exit 6) when ``source`` is missing, UsageError (exit 2) for a directory
    without ``recursive``.
    """
    require_local_path(source)
    if source.is_dir():
        if not recursive:
            raise UsageError(
                f"{source} is a directory", hint="add --recursive to upload everything in it"
            )
        prefix = destination.as_prefix()
        return [
            UploadItem(f.path, prefix.join(f.relpath), f.size) for f in walk_local(source, include)
        ]
    key = destination.key + source.name if destination.is_prefix else destination.key
    return [UploadItem(source, S3Uri(destination.bucket, key), source.stat().st_size)]


def plan_download(
    client: S3Client,
    source: S3Uri,
    destination: Path,
    *,
    recursive: bool = False,
    include: PathFilter = ALL,
) -> DownloadPlan:
    """The objects to download and their local paths.

    Raises NotFoundError (exit 6) when the object, the bucket, or anything under a recursive
    prefix is missing; UsageError (exit 2) for a ``/``-ended prefix without ``recursive``.
    """
    plan = DownloadPlan()
    if not recursive:
        if source.is_prefix:
            raise UsageError(f"{source} is a prefix", hint="add --recursive to download it all")
        try:
            obj = stat_object(client, source)
        except NotFoundError as err:
            err.hint = f"{LIST_HINT}; to download everything under a prefix add --recursive"
            raise
        into_dir = destination.is_dir() or str(destination).endswith(("/", os.sep))
        plan.items.append(DownloadItem(obj, destination / source.name if into_dir else destination))
        return plan
    prefix = source.as_prefix()
    objects: dict[str, S3Object] = {}
    seen = False
    for obj in iter_objects(client, prefix):
        seen = True
        relkey = obj.key[len(prefix.key) :]
        if relkey.endswith("/") and obj.size == 0:
            continue  # a "folder" placeholder made by the console
        if include(relkey):
            objects[relkey] = obj
    if not seen:
        raise NotFoundError(f"nothing found under {prefix}", hint=LIST_HINT, resource=str(prefix))
    return place_objects(objects, prefix, destination)


def upload_path(
    client: S3Client,
    source: Path,
    destination: S3Uri,
    *,
    recursive: bool = False,
    include: PathFilter = ALL,
    settings: TransferSettings | None = None,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Upload a file, or a directory's contents with ``recursive``; see :func:`plan_upload`."""
    items = plan_upload(source, destination, recursive=recursive, include=include)
    return upload_files(client, items, settings=settings, progress=progress)


def download_path(
    client: S3Client,
    source: S3Uri,
    destination: Path,
    *,
    recursive: bool = False,
    include: PathFilter = ALL,
    settings: TransferSettings | None = None,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Download an object, or everything under a prefix with ``recursive``; see
    :func:`plan_download`. Keys left out are in the report's ``skipped``, keys that could not
    be written in its ``failed``."""
    plan = plan_download(client, source, destination, recursive=recursive, include=include)
    report = download_objects(client, plan.items, settings=settings, progress=progress)
    return plan.add_to(report)
