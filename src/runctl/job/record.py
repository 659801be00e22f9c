"""One job's two documents, ``job.json`` (:class:`JobSpec`) and ``status.json``
(:class:`JobStatus`), wherever they live.

A job started on an instance keeps both in S3 under its :class:`JobLocation`, the truth that the
laptop, the instance and a replacement instance share, and the runner keeps a copy on the
instance's disk (:class:`JobPaths`); a ``runctl local`` job may live on disk only. Reads prefer
S3 when the job has a location; writes go to disk first (atomically, by rename), then to S3.
Standard library only at import time (boto3 is used through ``runctl.aws.s3`` when S3 is read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runctl.errors import NotFoundError
from runctl.job.layout import JobPaths
from runctl.job.spec import JobLocation, JobSpec, JobStatus, read_json, write_bytes_atomic

JSON = "application/json"


class JobRecord:
    """Reads and writes one job's ``job.json`` and ``status.json``."""

    def __init__(
        self,
        location: JobLocation | None = None,
        *,
        paths: JobPaths | None = None,
        s3: Any = None,
    ) -> None:
        if location is None and paths is None:
            raise ValueError("a job record needs an S3 location or local paths")
        self.location = location
        self.paths = paths
        self.s3 = s3

    @property
    def job_id(self) -> str:
        if self.location is not None:
            return self.location.job_id
        assert self.paths is not None
        return self.paths.job_dir.name

    # -- reading ----------------------------------------------------------------------------------

    def read_spec(self) -> JobSpec:
        """``job.json``; NotFoundError when it is missing, ValueError when it is malformed."""
        if self.location is not None:
            return JobSpec.from_json(self._get(self.location.job_key))
        assert self.paths is not None
        data = read_json(self.paths.job_json)
        if not isinstance(data, dict):
            raise NotFoundError(
                f"job.json of job {self.job_id} is missing or unreadable in {self.paths.job_dir}",
                resource=self.job_id,
            )
        return JobSpec.from_dict(data)

    def read_status(self) -> JobStatus | None:
        """``status.json``, or None when the job has none yet (or it cannot be parsed)."""
        try:
            if self.location is not None:
                return JobStatus.from_json(self._get(self.location.status_key))
            assert self.paths is not None
            data = read_json(self.paths.status_json)
            return JobStatus.from_dict(data) if isinstance(data, dict) else None
        except (NotFoundError, ValueError):
            return None

    def read(self) -> tuple[JobSpec, JobStatus | None]:
        """Both documents; NotFoundError when ``job.json`` is missing."""
        return self.read_spec(), self.read_status()

    # -- writing ----------------------------------------------------------------------------------

    def write_spec(self, spec: JobSpec) -> None:
        """Write ``job.json`` (on disk first, then in S3)."""
        self._write(lambda p: p.job_json, lambda loc: loc.job_key, spec.to_json(), None)

    def write_status(
        self, status: JobStatus, *, on_s3_error: Callable[[Exception], None] | None = None
    ) -> None:
        """Write ``status.json`` (on disk first, then in S3).

        With ``on_s3_error`` an S3 failure is reported there instead of raised (the runner keeps
        going and the next write catches up).
        """
        self._write(
            lambda p: p.status_json, lambda loc: loc.status_key, status.to_json(), on_s3_error
        )

    def _write(
        self,
        local: Callable[[JobPaths], Any],
        key: Callable[[JobLocation], str],
        text: str,
        on_s3_error: Callable[[Exception], None] | None,
    ) -> None:
        data = text.encode("utf-8")
        if self.paths is not None:
            write_bytes_atomic(local(self.paths), data)
        if self.location is None:
            return
        from runctl.aws.s3 import S3Uri, put_bytes
        from runctl.errors import RunctlError

        try:
            put_bytes(
                self._client(),
                S3Uri(self.location.bucket, key(self.location)),
                data,
                content_type=JSON,
            )
        except (RunctlError, OSError) as exc:
            if on_s3_error is None:
                raise
            on_s3_error(exc)

    def _get(self, key: str) -> bytes:
        from runctl.aws.s3 import S3Uri, get_bytes

        assert self.location is not None
        return get_bytes(self._client(), S3Uri(self.location.bucket, key))

    def _client(self) -> Any:
        if self.s3 is None:
            raise NotFoundError(f"job {self.job_id} lives in S3 but no S3 client was given")
        return self.s3
