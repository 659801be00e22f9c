"""``cp``-style copies: turn a source and a destination into transfer items, then run them.

Destinations follow ``aws s3 cp``: a file uploaded to ``s3://b/dir/`` (or the bare bucket) keeps its
name; a recursive copy puts the *contents* of the source under the destination, with relative
paths kept; a download into an existing directory (or a path ending in ``/``) keeps the key's name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runctl.aws.s3 import LIST_HINT, S3Uri, iter_objects, stat_object
from runctl.aws.s3_paths import ALL, PathFilter, local_path_for, require_local_path, walk_local
from runctl.aws.s3_transfer import (
    DownloadItem,
    ProgressCallback,
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
    """The objects to fetch, and the keys that cannot land safely on disk (``..`` and such)."""

    items: list[DownloadItem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


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
    seen = False
    for obj in iter_objects(client, prefix):
        seen = True
        relkey = obj.key[len(prefix.key) :]
        if relkey.endswith("/") and obj.size == 0:
            continue  # a "folder" placeholder made by the console
        path = local_path_for(destination, relkey)
        if path is None:
            plan.skipped.append(str(obj.uri))
        elif include(relkey):
            plan.items.append(DownloadItem(obj, path))
    if not seen:
        raise NotFoundError(f"nothing found under {prefix}", hint=LIST_HINT, resource=str(prefix))
    return plan


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
    :func:`plan_download`. Unsafe keys are listed in the report's ``skipped``."""
    plan = plan_download(client, source, destination, recursive=recursive, include=include)
    report = download_objects(client, plan.items, settings=settings, progress=progress)
    report.skipped.extend(plan.skipped)
    return report
