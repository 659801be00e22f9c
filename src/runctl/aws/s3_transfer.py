"""The transfer engine: files up to and down from S3 through one s3transfer ``TransferManager``.

One manager, so one shared thread pool, carries every file of an operation: many small files go
in parallel, big ones in parallel multipart parts. Uploads ask S3 to verify a CRC32 checksum of
every request; downloads are verified (in-stream by botocore, or afterwards against the object's
stored checksum or MD5 ETag) under a temporary name in the destination directory and renamed only
when complete, so an interrupted or corrupt download never sits under its final name, and a
download removes what a killed earlier one left beside its file. The first S3 failure stops the
whole operation (in-flight transfers are cancelled, multipart uploads aborted); a download whose
local path is taken by a directory (or needs a directory where a file is) is reported in
``failed`` and the others go on.

Progress goes to a plain ``progress(bytes)`` callback, called from worker threads. An upload may
be given a ``stop()`` predicate (a checkpoint commit's deadline): once it returns True, the files
not yet uploaded are cancelled (their multipart uploads aborted) and listed in the report's
``abandoned``; what finished stays finished.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import CancelledError, RetriesExceededError
from s3transfer.manager import TransferConfig, TransferManager
from s3transfer.subscribers import BaseSubscriber

from runctl.aws import s3_integrity as integrity
from runctl.aws.s3 import S3Object, S3Uri, translate_s3
from runctl.aws.s3_digests import StreamDigests
from runctl.aws.s3_paths import set_mtime, stale_temp_paths, temp_path_for
from runctl.errors import NotFoundError, RunctlError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from s3transfer.futures import TransferFuture

MB = 1024 * 1024
IO_CHUNK = 256 * 1024  # what one read from a response body (and one queued write) holds
STOP_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class TransferSettings:
    """Tuning of the engine; the CLI fills it from ``[s3]`` in the config, in plain numbers.

    The client passed alongside should allow at least ``max_concurrency`` pooled connections
    (botocore's ``max_pool_connections``).
    """

    multipart_threshold: int = 16 * MB
    multipart_chunksize: int = 16 * MB
    max_concurrency: int = 16
    checksum_algorithm: str | None = "CRC32"

    @classmethod
    def from_megabytes(
        cls, *, multipart_threshold_mb: int, multipart_chunksize_mb: int, max_concurrency: int
    ) -> TransferSettings:
        return cls(
            multipart_threshold=multipart_threshold_mb * MB,
            multipart_chunksize=multipart_chunksize_mb * MB,
            max_concurrency=max_concurrency,
        )

    def transfer_config(self) -> TransferConfig:
        """s3transfer's configuration. A download holds at most one part's worth of chunks
        waiting for the writer thread (the IO queue; 128 chunks of 1 MB held 128 MB more than
        the AWS CLI's whole process for no gain: page-cache writes keep up) plus one chunk per
        request in flight, so its memory stays under part size x concurrency. 256 KB chunks (the
        AWS CLI's size) cost no measurable CPU over 1 MB ones and left 25 MB less resident."""
        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_request_concurrency=self.max_concurrency,
            max_submission_concurrency=max(4, self.max_concurrency // 2),
            io_chunksize=IO_CHUNK,
            max_io_queue_size=max(4, self.multipart_chunksize // IO_CHUNK),
        )


@dataclass(frozen=True)
class UploadItem:
    """One local file and the key it goes to."""

    path: Path
    uri: S3Uri
    size: int


@dataclass(frozen=True)
class DownloadItem:
    """One listed object and the local path it lands on (set to the object's LastModified)."""

    source: S3Object
    path: Path


@dataclass(frozen=True)
class TransferIssue:
    """An object a transfer left out (``skipped``) or could not write (``failed``), and why."""

    uri: str
    reason: str
    path: str | None = None


@dataclass
class TransferReport:
    """What a transfer did: files and bytes moved, time taken, downloads S3 gave us nothing
    to verify against (``unverified``), objects left out on purpose (``skipped``), objects
    that could not be written (``failed``: the transfer is incomplete), and uploads given up
    when ``stop()`` came (``abandoned``)."""

    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    unverified: int = 0
    skipped: list[TransferIssue] = field(default_factory=list)
    failed: list[TransferIssue] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        """Throughput in MB/s (10^6 bytes), 0 for an instant transfer."""
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.mb_per_s, 2),
            "unverified": self.unverified,
            "skipped": [asdict(issue) for issue in self.skipped],
            "failed": [asdict(issue) for issue in self.failed],
        }


ProgressCallback = Callable[[int], None]


class _Subscriber(BaseSubscriber):
    """Gives s3transfer what we already know (size, ETag: no HEAD per file) and reports bytes."""

    def __init__(self, size: int, etag: str | None, progress: ProgressCallback | None) -> None:
        self._size = size
        self._etag = etag
        self._progress = progress

    def on_queued(self, future: TransferFuture, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self._size)
        if self._etag is not None and hasattr(future.meta, "provide_object_etag"):
            future.meta.provide_object_etag(self._etag)

    def on_progress(self, future: TransferFuture, bytes_transferred: int, **kwargs: Any) -> None:
        if self._progress is not None:
            self._progress(bytes_transferred)


@dataclass
class _Job:
    future: TransferFuture
    size: int
    operation: str
    resource: str
    local: Path | None = None
    finish: Callable[[], bool] | None = None
    abandon: Callable[[], None] | None = None


def transfer_error(
    exc: BaseException, operation: str, resource: str, local: Path | None = None
) -> RunctlError:
    """A failed transfer as a RunctlError naming the S3 operation and object it was about (and
    the local file, when there is one)."""
    if isinstance(exc, RunctlError):
        return exc
    if isinstance(exc, RetriesExceededError) and exc.last_exception is not None:
        exc = exc.last_exception
    if isinstance(exc, (ClientError, BotoCoreError)):
        err = translate_s3(exc, operation, resource)
        if local is not None:
            err.message = f"{err.message} (local file {local})"
        return err
    where = f"{operation} of {resource}" + (f" ({local})" if local is not None else "")
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"{where}: {exc.strerror}: {exc.filename}", resource=resource)
    if isinstance(exc, OSError):
        detail = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
        return RunctlError(f"{where} failed: {detail}", resource=resource)
    return RunctlError(f"{where} failed: {exc}", resource=resource)


def _run_jobs(
    client: S3Client,
    settings: TransferSettings,
    submit: Callable[[TransferManager], Iterable[_Job]],
    stop: Callable[[], bool] | None = None,
) -> TransferReport:
    """Submit jobs to one manager and complete them in order; the first failure stops all.

    Once ``stop()`` is true, jobs that finished are kept and the others cancelled and named in
    ``abandoned`` (``submit`` should then stop yielding).
    """
    report = TransferReport()
    started = time.monotonic()
    pending: deque[_Job] = deque()

    def finished(job: _Job) -> bool:
        """Wait for ``job``; False when ``stop()`` came first."""
        while stop is not None and not job.future.done():
            if stop():
                return False
            time.sleep(STOP_POLL_SECONDS)
        return True

    def salvage() -> None:
        """``stop()`` came: keep what succeeded, cancel and name the rest."""
        while pending:
            job = pending.popleft()
            if job.future.done():
                try:
                    complete(job)
                    continue
                except RunctlError:
                    pass  # failed anyway: it is abandoned like the unfinished ones
            job.future.cancel()
            if job.abandon is not None:
                job.abandon()
            report.abandoned.append(job.resource)

    def complete(job: _Job) -> None:
        try:
            job.future.result()
        except BaseException as exc:
            if isinstance(exc, (CancelledError, KeyboardInterrupt)):
                raise
            raise transfer_error(exc, job.operation, job.resource, job.local) from exc
        if job.finish is not None and not job.finish():
            report.unverified += 1
        report.files += 1
        report.bytes += job.size

    try:
        with TransferManager(client, settings.transfer_config()) as manager:
            for job in submit(manager):
                pending.append(job)
                while pending and pending[0].future.done():
                    complete(pending[0])
                    pending.popleft()
            while pending:
                if not finished(pending[0]):
                    salvage()
                    break
                complete(pending[0])
                pending.popleft()
    except BaseException:
        for job in pending:
            if job.abandon is not None:
                job.abandon()
        raise
    report.seconds = time.monotonic() - started
    return report


def upload_files(
    client: S3Client,
    items: Iterable[UploadItem],
    *,
    settings: TransferSettings | None = None,
    progress: ProgressCallback | None = None,
    stop: Callable[[], bool] | None = None,
) -> TransferReport:
    """Upload every item in parallel (multipart above the threshold), with S3-verified CRC32.

    Returns the TransferReport; raises a RunctlError naming the first file that failed (missing
    bucket: NotFoundError, exit 6; denied: AuthError, exit 4). A failed multipart upload is
    aborted, so no partial object appears under any key. Once ``stop()`` is true, the items not
    uploaded yet are given up and their URIs listed in ``abandoned`` instead.
    """
    settings = settings or TransferSettings()
    extra: dict[str, Any] = {}
    if settings.checksum_algorithm:
        extra["ChecksumAlgorithm"] = settings.checksum_algorithm
    unsubmitted: list[str] = []

    def submit(manager: TransferManager) -> Iterable[_Job]:
        for item in items:
            if stop is not None and (unsubmitted or stop()):
                unsubmitted.append(str(item.uri))
                continue
            args = dict(extra)
            content_type = mimetypes.guess_type(item.path.name)[0]
            if content_type:
                args["ContentType"] = content_type
            future = manager.upload(
                str(item.path),
                item.uri.bucket,
                item.uri.key,
                extra_args=args,
                subscribers=[_Subscriber(item.size, None, progress)],
            )
            yield _Job(future, item.size, "PutObject", str(item.uri), local=item.path)

    report = _run_jobs(client, settings, submit, stop)
    report.abandoned.extend(unsubmitted)
    return report


def download_objects(
    client: S3Client,
    items: Iterable[DownloadItem],
    *,
    settings: TransferSettings | None = None,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Download every item in parallel (ranged GETs above the threshold, pinned to the listed
    ETag) under a temporary name, verify it, set its mtime to LastModified, then rename it.

    Returns the TransferReport; raises a RunctlError naming the first object that failed
    (NotFoundError when it vanished, IntegrityError when its content does not match S3's
    checksum). Nothing is ever left under a final name unless it is complete and verified.
    """
    settings = settings or TransferSettings()
    digests = StreamDigests(client)
    failed: list[TransferIssue] = []

    def submit(manager: TransferManager) -> Iterable[_Job]:
        for item in items:
            obj = item.source
            problem = _prepare_destination(item.path)
            if problem is not None:
                failed.append(TransferIssue(str(obj.uri), problem, str(item.path)))
                continue
            temp = temp_path_for(item.path)
            threshold = settings.multipart_threshold
            if not integrity.verified_in_stream(
                obj.size, obj.etag, obj.checksum_algorithms, threshold
            ):
                digests.watch(obj.bucket, obj.key, integrity.stream_algorithm(obj))
            future = manager.download(
                obj.bucket,
                obj.key,
                str(temp),
                extra_args={"ChecksumMode": "ENABLED"},
                subscribers=[_Subscriber(obj.size, obj.etag, progress)],
            )
            yield _Job(
                future,
                obj.size,
                "GetObject",
                str(obj.uri),
                local=item.path,
                finish=partial(_finish_download, client, item, temp, settings, digests),
                abandon=partial(_remove, temp),
            )

    with digests:
        report = _run_jobs(client, settings, submit)
    report.failed.extend(failed)
    return report


def _prepare_destination(path: Path) -> str | None:
    """Make ``path``'s directory and clear what a killed download of it left behind; or say
    why nothing can be written there (a directory in the way, or a file where a directory
    must be)."""
    if path.is_dir():
        return f"{path} is a directory"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        return f"{blocker} is a file, not a directory"
    for stale in stale_temp_paths(path):
        _remove(stale)
    return None


def _finish_download(
    client: S3Client,
    item: DownloadItem,
    temp: Path,
    settings: TransferSettings,
    digests: StreamDigests,
) -> bool:
    """Verify the temporary file, stamp its mtime, and rename it into place.

    Returns False when S3 held no digest to check it against (the file is kept).
    """
    obj = item.source
    single_get = obj.size < settings.multipart_threshold
    range_size = obj.size if single_get else settings.multipart_chunksize
    try:
        verified = integrity.verify_download(
            client,
            obj,
            temp,
            settings.multipart_threshold,
            settings.multipart_chunksize,
            digests.streamed(obj.bucket, obj.key, obj.size, range_size),
        )
        set_mtime(temp, obj.last_modified)
        os.replace(temp, item.path)
    except BaseException:
        _remove(temp)
        raise
    return verified


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
