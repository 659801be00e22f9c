"""Following a job: attempts, backlog reads, fallback to S3, lost instances (no AWS)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from runctl.errors import WaitTimeoutError, WrongStateError
from runctl.job.spec import JobStatus
from runctl.polling import Timing
from runctl.services.jobs.follow import Observation, follow, parse_read_output, read_command


@dataclass
class ScriptedReader:
    """A reader that answers from a list of (status, total log) snapshots, one per read."""

    snapshots: list[tuple[JobStatus | None, bytes]]
    source: str = "instance"
    fail_after: int | None = None
    reads: int = 0
    offsets: list[int] = field(default_factory=list)

    def read(self, attempt: int | None, offset: int) -> Observation:
        if self.fail_after is not None and self.reads >= self.fail_after:
            raise WrongStateError("instance gone")
        status, log = self.snapshots[min(self.reads, len(self.snapshots) - 1)]
        self.reads += 1
        self.offsets.append(offset)
        chunk = log[offset : offset + 4]  # small chunks: a backlog takes several reads
        return Observation("job", attempt or 0, status, len(log), chunk, self.source)

    def tail(self, attempt: int | None, nbytes: int) -> Observation:
        return self.read(attempt, 0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def status(state: str, attempt: int = 0) -> JobStatus:
    return JobStatus(job_id="job", state=state, attempt=attempt)


def timing(clock: FakeClock) -> Timing:
    return Timing(sleep=clock.sleep, clock=clock.clock)


def test_follow_reads_a_backlog_without_sleeping_and_ends_with_the_job() -> None:
    clock = FakeClock()
    reader = ScriptedReader([(status("succeeded"), b"line one\nline two\n")])
    got: list[bytes] = []
    result = follow(reader, on_log=got.append, timing=timing(clock))
    assert b"".join(got) == b"line one\nline two\n"
    assert result.status is not None and result.status.state == "succeeded"
    assert clock.sleeps == []
    assert reader.offsets == sorted(reader.offsets)


def test_a_status_of_an_earlier_attempt_does_not_end_the_follow() -> None:
    clock = FakeClock()
    reader = ScriptedReader(
        [
            (status("succeeded", attempt=0), b""),
            (status("running", attempt=1), b"resumed\n"),
            (status("succeeded", attempt=1), b"resumed\ndone\n"),
        ]
    )
    got: list[bytes] = []
    result = follow(reader, attempt=1, on_log=got.append, timing=timing(clock))
    assert result.status is not None and result.status.attempt == 1
    assert b"".join(got) == b"resumed\ndone\n"


def test_polling_backs_off_while_nothing_changes() -> None:
    clock = FakeClock()
    quiet = [(status("running"), b"")] * 8 + [(status("succeeded"), b"")]
    follow(ScriptedReader(quiet), on_log=lambda _: None, timing=timing(clock))
    assert clock.sleeps == sorted(clock.sleeps)
    assert clock.sleeps[-1] > clock.sleeps[0]
    assert max(clock.sleeps) <= 2.0


def test_unreachable_instance_falls_back_to_s3_and_reports_lost() -> None:
    clock = FakeClock()
    primary = ScriptedReader([(status("running"), b"abc")], fail_after=1)
    s3 = ScriptedReader([(status("running"), b"abcdef")], source="s3")
    result = follow(
        primary,
        fallback=lambda: s3,
        on_log=lambda _: None,
        instance_alive=lambda: False,
        timing=timing(clock),
    )
    assert result.lost
    assert result.source == "s3"
    assert result.offset == 6


def test_timeout_leaves_the_job_running() -> None:
    clock = FakeClock()
    with pytest.raises(WaitTimeoutError):
        follow(
            ScriptedReader([(status("running"), b"")]),
            on_log=lambda _: None,
            timeout=10,
            timing=timing(clock),
        )
    assert clock.now >= 10


def test_read_output_round_trip() -> None:
    text = (
        "RUNCTL-JOB demo-1 2 11\n"
        'RUNCTL-STATUS {"job_id": "demo-1", "state": "running", "attempt": 2}\n'
        "RUNCTL-LOG\n"
        "aGVsbG8gd29ybGQ=\n"
    )
    seen = parse_read_output(text, "instance")
    assert (seen.job_id, seen.attempt, seen.log_size, seen.chunk) == (
        "demo-1",
        2,
        11,
        b"hello world",
    )
    assert seen.status is not None and seen.status.state == "running"


def test_read_command_quotes_the_job_id() -> None:
    script = read_command("x'; rm -rf / #", None, 0)
    assert "job='x'\"'\"'; rm -rf / #'" in script
