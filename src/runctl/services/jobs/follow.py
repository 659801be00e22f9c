"""Following a job's log and state: from the instance over SSM, or from its S3 copy.

While the instance answers SSM, new log bytes are read there by byte offset (at most
``CHUNK_BYTES`` a command, base64-encoded so SSM's 24,000-character output limit never cuts a
character in half; a backlog is read in consecutive commands without waiting). When the instance
is stopped or gone, the reader switches to the S3 copy the runner ships every few seconds. Polls
back off while nothing changes, and start again fast as soon as something does.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from runctl.errors import NotFoundError, WaitTimeoutError, WrongStateError
from runctl.job.layout import DEFAULT_REMOTE_ROOT, ROOT_ENV
from runctl.job.record import JobRecord
from runctl.job.spec import JobLocation, JobStatus
from runctl.polling import Timing

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

CHUNK_BYTES = 15_000
FAST_POLL = 0.3
SLOW_POLL = 2.0


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


def read_command(
    job_id: str | None,
    attempt: int | None,
    offset: int,
    *,
    limit: int = CHUNK_BYTES,
    tail: bool = False,
    remote_root_default: str = DEFAULT_REMOTE_ROOT,
) -> str:
    """Bash that prints the job's id, attempt, log size, status.json and a base64 log chunk:
    ``limit`` bytes from ``offset``, or with ``tail`` the last ``limit`` bytes."""
    window = (
        f'tail -c {int(limit)} "$f"'
        if tail
        else f'tail -c +{int(offset) + 1} "$f" 2>/dev/null | head -c {int(limit)}'
    )
    return "\n".join(
        [
            "set -u",
            f"root=${{{ROOT_ENV}:-}}",
            f'[ -n "$root" ] || root={shlex.quote(remote_root_default)}',
            f"job={shlex.quote(job_id or '')}",
            'if [ -z "$job" ]; then job=$(cat "$root/current-job" 2>/dev/null || true); fi',
            'if [ -z "$job" ]; then job=$(ls -1t "$root/jobs" 2>/dev/null | head -n 1); fi',
            'if [ -z "$job" ]; then echo "RUNCTL-NOJOB"; exit 0; fi',
            'd="$root/jobs/$job"',
            f"attempt={shlex.quote('' if attempt is None else str(int(attempt)))}",
            'if [ -z "$attempt" ]; then attempt=$(ls "$d/logs" 2>/dev/null '
            "| sed -n 's/^attempt-\\([0-9]*\\)\\.log$/\\1/p' | sort -n | tail -n 1); fi",
            "attempt=${attempt:-0}",
            'f="$d/logs/attempt-$attempt.log"',
            'size=$(stat -c %s "$f" 2>/dev/null || echo 0)',
            'echo "RUNCTL-JOB $job $attempt $size"',
            "printf 'RUNCTL-STATUS '",
            "{ tr -d '\\n' < \"$d/status.json\"; } 2>/dev/null || true",
            "echo",
            "echo RUNCTL-LOG",
            f"{{ {window}; }} 2>/dev/null | base64 | tr -d '\\n'",
            "echo",
        ]
    )


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
    source: str = "instance"

    def read(self, attempt: int | None, offset: int) -> Observation:
        return self._run(
            read_command(self.job_id, attempt, offset, remote_root_default=self.remote_root)
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
    source: str = "s3"

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
    """How following ended: the last status seen, and where it came from."""

    status: JobStatus | None
    attempt: int
    offset: int
    source: str
    lost: bool = False


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
        if wanted is not None and seen.status is not None and seen.status.attempt < wanted:
            # status.json still describes an earlier attempt: this one has not started yet.
            seen.status = None
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
        if reader is not primary and not instance_alive() and caught_up:
            final = reader.read(attempt, offset)
            if final.status is not None and final.status.is_terminal:
                continue
            return FollowResult(final.status, attempt, offset, reader.source, lost=True)
        if not caught_up:
            continue
        if deadline is not None and timing.clock() >= deadline:
            raise WaitTimeoutError(f"the job did not finish within {timeout:.0f}s")
        timing.sleep(delay)
        delay = FAST_POLL if seen.chunk else min(delay * 1.5, SLOW_POLL)
