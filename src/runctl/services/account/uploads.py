"""runctl's own unfinished multipart uploads in its bucket: what ``resources cleanup`` aborts.

An upload whose uploader was killed (a ``runctl s3 upload`` SIGKILLed, a spot instance gone in
the middle of a checkpoint commit) leaves its parts stored and billed, invisible to any object
listing. Everything runctl writes to its bucket lies under ``runctl/`` (one ``runctl/<project>/``
per project), so the unfinished uploads there are runctl's. Those younger than ``min_age`` are
spared: a job elsewhere may be committing right now. The next checkpoint commit of a job aborts
its own job's leftovers by itself (:class:`runctl.job.s3store.S3Store`); ``aws setup`` adds a
bucket lifecycle rule that aborts any of them after a week.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from runctl.aws.s3 import S3Uri
from runctl.aws.s3_uploads import AbortReport, abort_incomplete_uploads
from runctl.job.spec import ROOT_PREFIX, project_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_MIN_AGE = timedelta(hours=1)


def runctl_uploads_prefix(bucket: str, project: str | None = None) -> S3Uri:
    """``s3://<bucket>/runctl/`` or, for one project, ``s3://<bucket>/runctl/<project>/``."""
    key = f"{ROOT_PREFIX}/{project_key(project)}/" if project else f"{ROOT_PREFIX}/"
    return S3Uri(bucket, key)


def abort_runctl_uploads(
    s3: S3Client,
    bucket: str,
    *,
    project: str | None = None,
    dry_run: bool = False,
    min_age: timedelta | None = DEFAULT_MIN_AGE,
    now: datetime | None = None,
) -> AbortReport:
    """Abort runctl's unfinished multipart uploads in ``bucket`` (one project's, or every
    project's), sparing those younger than ``min_age``; with ``dry_run`` only list them.

    Returns the AbortReport (``aborted``, ``spared``, ``failed``). Raises NotFoundError when the
    bucket does not exist, AuthError when listing uploads is denied.
    """
    prefix = runctl_uploads_prefix(bucket, project)
    return abort_incomplete_uploads(s3, prefix, min_age=min_age, dry_run=dry_run, now=now)
