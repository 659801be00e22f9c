"""The job's documents (``job.json``, ``status.json``), job ids, and where a job lives in S3.

A job is self-describing in S3 (docs/reference.md, "The job model")::

    s3://<bucket>/runctl/<project>/code/<sha256>.tar.gz
    s3://<bucket>/runctl/<project>/jobs/<job-id>/job.json      JobSpec
                                                status.json   JobStatus
                                                logs/attempt-<N>.log
                                                checkpoints/  see runctl.job.checkpoints
                                                outputs/      default output_s3

Both documents are plain dataclasses with ``to_dict``/``from_dict`` (unknown keys are ignored so a
reader survives a newer writer). This module uses only the standard library: the laptop reads it
without boto3, and the instance runs it on Python 3.9.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
ROOT_PREFIX = "runctl"
S3_SCHEME = "s3://"

PENDING = "pending"
STARTING = "starting"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
INTERRUPTED = "interrupted"
STOPPED = "stopped"
CANCELLED = "cancelled"
#: Written by runctl on the laptop: the start was refused (nothing ran) ...
REFUSED = "refused"
#: ... and the job's instance vanished while the job had not reported an end.
LOST = "lost"
STATES = (
    PENDING,
    STARTING,
    RUNNING,
    SUCCEEDED,
    FAILED,
    INTERRUPTED,
    STOPPED,
    CANCELLED,
    REFUSED,
    LOST,
)
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, INTERRUPTED, STOPPED, CANCELLED, REFUSED, LOST})

# datetime.UTC only exists from Python 3.11; this module runs on 3.9.
UTC = timezone.utc  # noqa: UP017

_SLUG_RE = re.compile(r"[^a-z0-9._-]+")
_UNSAFE_NAME_RE = re.compile(r"[/\\\x00-\x1f\x7f]")
JOB_ID_RE = re.compile(r"^(?P<project>.+)-(?P<stamp>\d{8}-\d{6})-(?P<suffix>[0-9a-f]{4})$")


def utc_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds and a ``Z``."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    """``2024-05-01T12:00:00.123Z`` for an aware (or naive UTC) datetime."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Parse the times this module writes (and IMDS's ``2024-05-01T12:00:00Z``) as aware UTC."""
    cleaned = text.strip().replace("Z", "+00:00")
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (ISO times), or None when either is missing."""
    if not start or not end:
        return None
    return (parse_time(end) - parse_time(start)).total_seconds()


def project_key(name: str) -> str:
    """The project's one key, in job ids, S3 keys and tags (``My Project`` -> ``my-project``).

    Raises ValueError for a name that looks like a path (``/``, ``\\``) or holds control
    characters (a newline), or has no letter or digit at all.
    """
    if _UNSAFE_NAME_RE.search(name):
        raise ValueError("a project name may not hold '/', '\\' or control characters")
    slug = _SLUG_RE.sub("-", name.strip().lower()).strip("-._")[:63].strip("-._")
    if not slug:
        raise ValueError("a project name needs at least one letter or digit")
    return slug


def new_job_id(project: str, now: datetime | None = None, token: str | None = None) -> str:
    """``<project>-<UTC yyyymmdd-HHMMSS>-<4 hex>``, e.g. ``mnist-20240501-120000-a1b2``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    suffix = token if token is not None else secrets.token_hex(2)
    return f"{project_key(project)}-{moment:%Y%m%d-%H%M%S}-{suffix}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; ValueError when it is not an S3 URI.

    Deliberately tiny (``runctl.aws.s3.S3Uri`` validates fully) so that this module needs no
    botocore: ``runctl local`` without S3 options must not import it.
    """
    if not uri.startswith(S3_SCHEME):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, key


def as_prefix(key: str) -> str:
    """``a/b`` -> ``a/b/``; the empty key and keys ending in ``/`` are unchanged."""
    return key if not key or key.endswith("/") else key + "/"


def code_prefix(project: str) -> str:
    """Where a project's code bundles live: ``runctl/<project key>/code/``."""
    return f"{ROOT_PREFIX}/{project_key(project)}/code/"


def code_key(project: str, sha256: str) -> str:
    """The content-addressed key of a code bundle."""
    return f"{code_prefix(project)}{sha256}.tar.gz"


def runtime_key(sha256: str) -> str:
    """The content-addressed key of a runtime bundle (shared by every project)."""
    return f"{ROOT_PREFIX}/runtime/{sha256}.tar.gz"


@dataclass(frozen=True)
class JobLocation:
    """The S3 keys of one job."""

    bucket: str
    project: str
    job_id: str

    @classmethod
    def from_uri(cls, uri: str) -> JobLocation:
        """Parse ``s3://<bucket>/runctl/<project>/jobs/<job-id>/`` (the trailing / optional)."""
        bucket, key = split_s3_uri(uri)
        parts = key.strip("/").split("/")
        if len(parts) != 4 or parts[0] != ROOT_PREFIX or parts[2] != "jobs":
            raise ValueError(f"{uri!r} is not a job location (s3://B/runctl/PROJECT/jobs/ID/)")
        return cls(bucket=bucket, project=parts[1], job_id=parts[3])

    @property
    def prefix(self) -> str:
        return f"{ROOT_PREFIX}/{self.project}/jobs/{self.job_id}/"

    @property
    def uri(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}"

    @property
    def job_key(self) -> str:
        return self.prefix + "job.json"

    @property
    def status_key(self) -> str:
        return self.prefix + "status.json"

    def log_key(self, attempt: int) -> str:
        return f"{self.prefix}logs/attempt-{attempt}.log"

    @property
    def checkpoints_uri(self) -> str:
        return f"{self.uri}checkpoints/"

    @property
    def outputs_uri(self) -> str:
        return f"{self.uri}outputs/"


@dataclass
class CheckpointSettings:
    """How the runner treats ``RUNCTL_CHECKPOINT_DIR`` (config section ``[checkpoint]``)."""

    dir: str = "checkpoints"
    sync_interval_seconds: float = 60.0
    keep_last_n: int = 3
    grace_seconds: float = 60.0


@dataclass
class JobSpec:
    """``job.json``: everything an instance needs to start (or resume) the job."""

    job_id: str
    project: str
    script: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    bucket: str | None = None
    region: str | None = None
    code_key: str | None = None
    code_sha256: str | None = None
    workdir: str | None = None
    data_s3: str | None = None
    #: An EBS volume holding the job's data, mounted at ``data_dir`` (``aws train --data-volume``).
    data_volume: str | None = None
    #: Where ``RUNCTL_DATA_DIR`` points on the instance when not at the job's own ``data/``.
    data_dir: str | None = None
    output_s3: str | None = None
    checkpoint_s3: str | None = None
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    spot_poll_seconds: float = 2.0
    stop_on_finish: bool = False
    terminate_on_finish: bool = False
    # How many times the job may be restarted (``--max-restarts``): the runner falls back to an
    # older checkpoint at most this many times in all (see JobStatus.fallbacks).
    max_restarts: int = 3
    # ``checkpoint resume --checkpoint``: attempt ``restore_attempt`` restores this checkpoint id
    # instead of the newest; later attempts restore the newest again.
    restore_checkpoint: str | None = None
    restore_attempt: int | None = None
    launch_spec: dict[str, Any] = field(default_factory=dict)
    #: Recovery with the laptop closed (``aws train --auto-resume --detach``): what the job's
    #: runner needs to launch its successor on a spot notice (``run_instances``, ``zones``,
    #: ``fallback``, ``user_data``, ``runtime_sha256``, ``bucket_region``; see
    #: runctl.remote.succession). Empty: no instance launches anything for this job.
    recovery: dict[str, Any] = field(default_factory=dict)
    #: Who started the job (``runctl:user``): ``jobs list`` shows a user's own jobs by default.
    user: str | None = None
    # ``aws train --docker``: the script runs in this image (pinned by digest when runctl pushed
    # it), logged in to ECR in ``docker_ecr_region`` first (None: pulled without a login).
    docker_image: str | None = None
    docker_ecr_region: str | None = None
    created: str = field(default_factory=utc_now)
    format: int = FORMAT_VERSION

    @property
    def location(self) -> JobLocation | None:
        """Where the job lives in S3, or None for a local job without a bucket."""
        if not self.bucket:
            return None
        return JobLocation(bucket=self.bucket, project=self.project, job_id=self.job_id)

    @property
    def checkpoint_uri(self) -> str | None:
        """Where committed checkpoints go: ``checkpoint_s3``, else the job's ``checkpoints/``."""
        if self.checkpoint_s3:
            return self.checkpoint_s3
        location = self.location
        return location.checkpoints_uri if location else None

    def checkpoint_to_restore(self, attempt: int) -> str | None:
        """The checkpoint id ``attempt`` must start from, or None for the newest."""
        return self.restore_checkpoint if self.restore_attempt == attempt else None

    @property
    def output_uri(self) -> str | None:
        """Where ``RUNCTL_OUTPUT_DIR`` is uploaded: ``output_s3``, else the job's ``outputs/``."""
        if self.output_s3:
            return self.output_s3
        location = self.location
        return location.outputs_uri if location else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        """Build a JobSpec from ``job.json``; ValueError naming what is missing or malformed."""
        known = _known(cls, data)
        for name in ("job_id", "project", "script"):
            if not isinstance(known.get(name), str) or not known[name]:
                raise ValueError(f"job.json: {name!r} is missing or not a string")
        args = known.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ValueError("job.json: 'args' must be a list of strings")
        env = known.get("env", {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ValueError("job.json: 'env' must map strings to strings")
        known["checkpoint"] = CheckpointSettings(
            **_known(CheckpointSettings, known.get("checkpoint") or {})
        )
        return cls(**known)

    @classmethod
    def from_json(cls, text: str | bytes) -> JobSpec:
        return cls.from_dict(json.loads(text))


RESTORE_FAILED = "restore"  # the checkpoint could not be restored (manifest, blob missing/corrupt)
RUN_FAILED = "run"  # the script failed, from this checkpoint, before committing anything new


@dataclass
class CheckpointFallback:
    """A committed checkpoint the runner gave up, for the one before it, and why."""

    attempt: int
    checkpoint_id: str
    kind: str  # RESTORE_FAILED or RUN_FAILED
    reason: str
    time: str = field(default_factory=utc_now)

    def describe(self) -> str:
        """One line for a terminal: which checkpoint was given up and why."""
        return f"checkpoint {self.checkpoint_id} given up: {self.reason}"


@dataclass
class JobStatus:
    """``status.json``: the job's state as the runner last wrote it (times are ISO UTC).

    ``restored_checkpoint`` is the checkpoint the attempt's script last started from (None: it
    started without one); ``fallbacks`` every checkpoint the runner gave up for an older one, in
    this and earlier attempts (each names its attempt).
    """

    job_id: str
    state: str = PENDING
    attempt: int = 0
    instance_ids: list[str] = field(default_factory=list)
    exit_code: int | None = None
    created: str | None = None
    started: str | None = None
    ended: str | None = None
    notice: str | None = None
    sigterm: str | None = None
    checkpoint_committed: str | None = None
    checkpoint_id: str | None = None
    restored_checkpoint: str | None = None
    fallbacks: list[CheckpointFallback] = field(default_factory=list)
    reason: str | None = None
    message: str | None = None
    updated: str | None = None
    format: int = FORMAT_VERSION

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def fallbacks_of(self, attempt: int | None = None) -> list[CheckpointFallback]:
        """The fallbacks taken in ``attempt`` (default: this status's attempt)."""
        wanted = self.attempt if attempt is None else attempt
        return [f for f in self.fallbacks if f.attempt == wanted]

    @property
    def notice_to_commit_seconds(self) -> float | None:
        """Seconds from the interruption notice to the final checkpoint being committed."""
        return seconds_between(self.notice, self.checkpoint_committed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobStatus:
        known = _known(cls, data)
        if not isinstance(known.get("job_id"), str):
            raise ValueError("status.json: 'job_id' is missing")
        if known.get("state", PENDING) not in STATES:
            raise ValueError(f"status.json: unknown state {known.get('state')!r}")
        entries = known.get("fallbacks") or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError("status.json: 'fallbacks' must be a list of objects")
        try:
            known["fallbacks"] = [
                CheckpointFallback(**_known(CheckpointFallback, entry)) for entry in entries
            ]
        except TypeError as exc:
            raise ValueError(f"status.json: a fallback is incomplete ({exc})") from None
        return cls(**known)

    @classmethod
    def from_json(cls, text: str | bytes) -> JobStatus:
        return cls.from_dict(json.loads(text))


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` crash-safely: a temporary file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any:
    """The JSON document at ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
