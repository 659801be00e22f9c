"""Following a job's log and state: from the instance over SSM, or from its S3 copy.

While the instance answers SSM, new log bytes are read there by byte offset (at most
``CHUNK_BYTES`` a command, base64-encoded so SSM's 24,000-character output limit never cuts a
character in half; a backlog is read in consecutive commands without waiting). When the instance
is stopped or gone, the reader switches to the S3 copy the runner ships every few seconds. Polls
back off while nothing changes, and start again fast as soon as something does.

Whether a job still lives is decided in one place, :class:`JobWatch`: a job whose instance is
no longer pending or running, and whose S3 status never reached an end, is ``lost`` — whether
the instance went away while it was being followed or before following began.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from runctl.errors import NotFoundError, WaitTimeoutError, WrongStateError
from runctl.job.layout import DEFAULT_REMOTE_ROOT
from runctl.job.record import JobRecord
from runctl.job.spec import LOST, JobLocation, JobStatus
from runctl.polling import Timing
from runctl.services.jobs.commands import read_command
from runctl.services.jobs.outcome import verdict_of

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

    from runctl.aws.ec2 import Instance
    from runctl.services.jobs.session import JobSession

FAST_POLL = 0.3
SLOW_POLL = 2.0
LONG_POLL_SECONDS = 20.0
INSTANCE = "instance"
S3 = "s3"
LIVE_STATES = ("pending", "running")


@dataclass
class Observation:
    """One look at a job: its status, and log bytes from the requested offset."""

    job_id: str | None
    attempt: int
    status: JobStatus | None
    log_size: int
    chunk: bytes
    source: str


class JobReader(Protocol):
    """Somewhere a job's status and log can be read from."""

    source: str

    def read(self, attempt: int | None, offset: int) -> Observation: ...

    def tail(self, attempt: int | None, nbytes: int) -> Observation: ...


def parse_read_output(stdout: str, source: str) -> Observation:
    """Parse what :func:`read_command` printed."""
    lines = stdout.splitlines()
    if not lines or lines[0].strip() == "RUNCTL-NOJOB":
        raise NotFoundError("no job has run on this instance", hint="start one with `aws train`")
    header = dict(enumerate(lines))
    _, job_id, attempt, size = header[0].split()
    raw_status = header.get(1, "RUNCTL-STATUS ").removeprefix("RUNCTL-STATUS ").strip()
    status = JobStatus.from_dict(json.loads(raw_status)) if raw_status else None
    encoded = header.get(3, "").strip()
    return Observation(
        job_id=job_id,
        attempt=int(attempt),
        status=status,
        log_size=int(size),
        chunk=base64.b64decode(encoded) if encoded else b"",
        source=source,
    )


@dataclass
class InstanceReader:
    """Reads a job on its instance through SSM Run Command."""

    ssm_client: SSMClient
    instance_id: str
    job_id: str | None
    remote_root: str = DEFAULT_REMOTE_ROOT
    timing: Timing | None = None
    source: str = INSTANCE
    #: Each read waits this long on the instance for something new (a long poll): a quiet job
    #: costs one SSM command per ``wait_seconds`` instead of one per poll.
    wait_seconds: float = LONG_POLL_SECONDS

    @property
    def waits(self) -> bool:
        return self.wait_seconds > 0

    def read(self, attempt: int | None, offset: int) -> Observation:
        return self._run(
            read_command(
                self.job_id,
                attempt,
                offset,
                wait_seconds=self.wait_seconds,
                remote_root_default=self.remote_root,
            )
        )

    def tail(self, attempt: int | None, nbytes: int) -> Observation:
        return self._run(
            read_command(
                self.job_id,
                attempt,
                0,
                limit=nbytes,
                tail=True,
                remote_root_default=self.remote_root,
            )
        )

    def _run(self, script: str) -> Observation:
        from runctl.aws.ssm_commands import run_shell

        timing = self.timing or Timing()
        result = run_shell(
            self.ssm_client,
            self.instance_id,
            script,
            timeout_seconds=60,
            comment="runctl log",
            sleep=timing.sleep,
            clock=timing.clock,
        )
        if not result.ok:
            raise WrongStateError(
                f"reading the job on {self.instance_id} failed: {result.stderr.strip()[-300:]}",
                resource=self.instance_id,
            )
        observation = parse_read_output(result.stdout, self.source)
        if self.job_id is None:
            self.job_id = observation.job_id
        return observation


@dataclass
class S3Reader:
    """Reads a job from its S3 prefix: status.json and the shipped log copy."""

    s3: S3Client
    location: JobLocation
    source: str = S3

    def status(self) -> JobStatus | None:
        return JobRecord(self.location, s3=self.s3).read_status()

    def read(self, attempt: int | None, offset: int) -> Observation:
        return self._read(attempt, lambda size: f"bytes={offset}-" if size > offset else None)

    def tail(self, attempt: int | None, nbytes: int) -> Observation:
        return self._read(attempt, lambda size: f"bytes=-{nbytes}" if size and nbytes else None)

    def _read(self, attempt: int | None, byte_range: Callable[[int], str | None]) -> Observation:
        from runctl.aws.s3 import s3_errors

        status = self.status()
        if attempt is None:
            attempt = status.attempt if status else 0
        key = self.location.log_key(attempt)
        bucket = self.location.bucket
        chunk, size = b"", 0
        try:
            with s3_errors("GetObject", f"s3://{bucket}/{key}"):
                size = int(self.s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
                wanted = byte_range(size)
                if wanted is not None:
                    response = self.s3.get_object(Bucket=bucket, Key=key, Range=wanted)
                    chunk = response["Body"].read()
        except NotFoundError:
            pass
        return Observation(self.location.job_id, attempt, status, size, chunk, self.source)


@dataclass
class FollowResult:
    """How following ended: the last status seen, where it came from, whether the job is lost."""

    status: JobStatus | None
    attempt: int
    offset: int
    source: str
    lost: bool = False

    @property
    def state(self) -> str:
        return LOST if self.lost else (self.status.state if self.status else "unknown")

    @property
    def verdict(self) -> str | None:
        return verdict_of(self.status, lost=self.lost)

    @property
    def exit_code(self) -> int | None:
        return self.status.exit_code if self.status else None


def follow(
    primary: JobReader,
    *,
    fallback: Callable[[], JobReader | None] | None = None,
    attempt: int | None = None,
    offset: int = 0,
    on_log: Callable[[bytes], None],
    on_status: Callable[[JobStatus], None] = lambda _: None,
    instance_alive: Callable[[], bool] = lambda: True,
    timeout: float | None = None,
    timing: Timing | None = None,
) -> FollowResult:
    """Stream a job's log to ``on_log`` until the job reaches a terminal state.

    Switches to ``fallback()`` (the S3 copy) when the primary reader cannot reach the instance.
    Returns with ``lost=True`` when the instance is gone and S3 never saw the job end. Raises
    WaitTimeoutError after ``timeout`` seconds, leaving the job running.
    """
    timing = timing or Timing(interval=FAST_POLL, max_interval=SLOW_POLL)
    deadline = None if timeout is None else timing.clock() + timeout
    reader: JobReader = primary
    wanted = attempt
    delay = FAST_POLL
    last_state: str | None = None
    while True:
        try:
            seen = reader.read(attempt, offset)
        except WrongStateError:
            replacement = fallback() if fallback is not None and reader is primary else None
            if replacement is None:
                raise
            reader = replacement
            continue
        _drop_earlier_attempt(seen, wanted)
        attempt = seen.attempt
        if seen.chunk:
            on_log(seen.chunk)
            offset += len(seen.chunk)
        if seen.status is not None and seen.status.state != last_state:
            last_state = seen.status.state
            on_status(seen.status)
        caught_up = offset >= seen.log_size
        if seen.status is not None and seen.status.is_terminal and caught_up:
            return FollowResult(seen.status, attempt, offset, reader.source)
        # An answer over SSM proves the instance alive; the S3 copy proves nothing.
        if reader.source != INSTANCE and caught_up and not instance_alive():
            final = _drop_earlier_attempt(reader.read(attempt, offset), wanted)
            if final.status is not None and final.status.is_terminal:
                continue  # it ended just before the instance went: read it to the end
            return FollowResult(final.status, attempt, offset, reader.source, lost=True)
        if not caught_up:
            continue
        if deadline is not None and timing.clock() >= deadline:
            raise WaitTimeoutError(f"the job did not finish within {timeout:.0f}s")
        if getattr(reader, "waits", False):
            continue  # the read itself waited on the instance
        timing.sleep(delay)
        delay = FAST_POLL if seen.chunk else min(delay * 1.5, SLOW_POLL)


def _drop_earlier_attempt(seen: Observation, wanted: int | None) -> Observation:
    """status.json may still describe an earlier attempt: then this one has not started yet."""
    if wanted is not None and seen.status is not None and seen.status.attempt < wanted:
        seen.status = None
    return seen


@dataclass
class Glance:
    """One look at a job (``aws monitor`` without ``--follow``): the log's tail and its status."""

    observation: Observation
    lost: bool

    @property
    def state(self) -> str:
        status = self.observation.status
        return LOST if self.lost else (status.state if status else "unknown")

    @property
    def verdict(self) -> str | None:
        return verdict_of(self.observation.status, lost=self.lost)

    def lines(self, count: int) -> list[str]:
        """The last ``count`` lines of the log tail."""
        text = self.observation.chunk.decode("utf-8", "replace")
        return text.splitlines()[-count:] if count else []

    def to_dict(self, instance_id: str | None, count: int) -> dict[str, Any]:
        """``aws monitor``'s JSON document (stable keys)."""
        seen = self.observation
        return {
            "instance_id": instance_id,
            "job_id": seen.job_id,
            "attempt": seen.attempt,
            "state": self.state,
            "verdict": self.verdict,
            "exit_code": seen.status.exit_code if seen.status else None,
            "source": seen.source,
            "lines": self.lines(count),
        }


class JobWatch:
    """One job on one instance (None when none exists any more): which reader to use, and
    whether the job still lives."""

    def __init__(
        self,
        session: JobSession,
        instance: Instance | None,
        job_id: str | None,
        location: JobLocation | None,
    ) -> None:
        self.session = session
        self.instance = instance
        self.job_id = job_id
        self.location = location

    @property
    def instance_id(self) -> str | None:
        return self.instance.instance_id if self.instance else None

    def alive(self) -> bool:
        """Whether the instance is pending or running (asked afresh; gone counts as not)."""
        if self.instance is None:
            return False
        try:
            self.instance = self.session.ec2.describe_instance(self.instance.instance_id)
        except NotFoundError:
            return False
        return self.instance.state in LIVE_STATES

    def s3_reader(self) -> S3Reader | None:
        """The job's S3 copy, once its location is known."""
        if self.location is None and self.job_id is not None and self.instance is not None:
            self.location = self.session.locate(self.instance, self.job_id)
        return S3Reader(self.session.s3, self.location) if self.location is not None else None

    def primary(self) -> JobReader:
        """SSM while the instance runs; else the S3 copy (NotFoundError when it is unknown)."""
        if self.instance is not None and self.instance.state == "running":
            return self._instance_reader(self.instance)
        reader = self.s3_reader()
        if reader is None:
            where = (
                f"{self.instance.instance_id} and it is {self.instance.state}"
                if self.instance
                else "an instance"
            )
            raise NotFoundError(
                f"no job is known for {where}, so SSM cannot reach it",
                hint="pass --job JOB_ID (and set aws.s3_bucket) to read the job's S3 copy",
                resource=self.instance_id,
            )
        return reader

    def _instance_reader(
        self, instance: Instance, wait_seconds: float = LONG_POLL_SECONDS
    ) -> InstanceReader:
        return InstanceReader(
            self.session.ssm_client,
            instance.instance_id,
            self.job_id,
            self.session.remote_root,
            self.session.timing,
            wait_seconds=wait_seconds,
        )

    def read_all(self, on_log: Callable[[bytes], None], attempt: int | None = None) -> Glance:
        """Everything an attempt (default: the newest) has logged so far, without waiting: the
        S3 copy in one read, then what the instance wrote since, while it runs."""
        s3 = self.s3_reader()
        seen = s3.read(attempt, 0) if s3 is not None else None
        offset = 0
        if seen is not None:
            on_log(seen.chunk)
            offset = len(seen.chunk)
            attempt = seen.attempt
        if self.instance is not None and self.instance.state == "running":
            reader = self._instance_reader(self.instance, wait_seconds=0)  # nothing to wait for
            try:
                while True:
                    fresh = reader.read(attempt, offset)
                    attempt = fresh.attempt
                    if fresh.chunk:
                        on_log(fresh.chunk)
                        offset += len(fresh.chunk)
                    seen = fresh
                    if offset >= fresh.log_size or not fresh.chunk:
                        break
            except WrongStateError:
                pass  # SSM cannot reach it after all: the S3 copy is what there is
        if seen is None:
            raise NotFoundError(
                f"no log is known for job {self.job_id}",
                hint="set aws.s3_bucket, or the job has not started yet",
                resource=self.job_id,
            )
        seen.log_size = max(seen.log_size, offset)
        ended = seen.status is not None and seen.status.is_terminal
        lost = seen.source != INSTANCE and not ended and not self.alive()
        return Glance(seen, lost)

    def tail(self, nbytes: int) -> Glance:
        """The last ``nbytes`` of the newest attempt's log and the job's status."""
        reader = self.primary()
        try:
            seen = reader.tail(None, nbytes)
        except WrongStateError:  # SSM cannot reach it after all: the S3 copy still can
            fallback = self.s3_reader() if reader.source == INSTANCE else None
            if fallback is None:
                raise
            seen = fallback.tail(None, nbytes)
        self.job_id = self.job_id or seen.job_id
        ended = seen.status is not None and seen.status.is_terminal
        lost = seen.source != INSTANCE and not ended and not self.alive()
        return Glance(seen, lost)

    def follow(
        self,
        *,
        on_log: Callable[[bytes], None],
        attempt: int | None = None,
        offset: int = 0,
        on_status: Callable[[JobStatus], None] = lambda _: None,
        timeout: float | None = None,
    ) -> FollowResult:
        """:func:`follow` with this watch's readers and liveness."""
        return follow(
            self.primary(),
            fallback=self.s3_reader,
            attempt=attempt,
            offset=offset,
            on_log=on_log,
            on_status=on_status,
            instance_alive=self.alive,
            timeout=timeout,
            timing=self.session.timing,
        )
