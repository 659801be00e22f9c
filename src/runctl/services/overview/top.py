"""``top``: the frames of a live dashboard -- the status, plus what runs on each instance.

Each frame is :func:`~runctl.services.overview.status.gather_status` plus, for every running
instance, a CPU/GPU/memory snapshot (``aws processes``, over SSM) and, for every running job,
its last log line; the instances and jobs are asked at the same time. An instance that has been
terminated or vanished is *gone*: it is never asked again, whatever EC2 says later, so a
dashboard left open for hours does not keep sending commands to dead instance ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runctl.errors import RunctlError
from runctl.services.overview.status import StatusReport, gather_status

if TYPE_CHECKING:
    from runctl.services.account.resources import Scope
    from runctl.services.jobs.catalog import JobRow
    from runctl.services.jobs.session import JobSession

GONE_STATES = ("shutting-down", "terminated")


@dataclass
class TopFrame:
    """One refresh: the status, snapshots by instance id, last log lines by job id, the
    instances no longer asked, and what could not be read (by instance or job id)."""

    report: StatusReport
    usage: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    last_lines: dict[str, str] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def last_log_line(session: JobSession, row: JobRow) -> str:
    """The last line of the job's log (from the instance while it runs, else from S3)."""
    from runctl.services.jobs.catalog import watch_job

    lines = watch_job(session, row.location).tail(4096).lines(1)
    return lines[-1] if lines else ""


class TopPoller:
    """Takes the frames of ``top`` for ``scope``; ``snapshot`` and ``last_line`` read one
    instance and one job (default: over SSM through the session)."""

    def __init__(
        self,
        session: JobSession,
        scope: Scope,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        snapshot: Callable[[str], Mapping[str, Any]] | None = None,
        last_line: Callable[[JobRow], str] | None = None,
    ) -> None:
        self.session = session
        self.scope = scope
        self.now = now
        self.snapshot = snapshot or session.processes
        self.last_line = last_line or (lambda row: last_log_line(session, row))
        self.seen: set[str] = set()
        self.gone: set[str] = set()

    def poll(self) -> TopFrame:
        """One frame (raises what reading the status raises; a failed snapshot or log read is
        reported in the frame, not raised)."""
        report = gather_status(self.session, self.scope, now=self.now())
        listed = {line.row.instance_id: line.row.state for line in report.instances}
        self.gone |= {i for i in self.seen if listed.get(i, "terminated") in GONE_STATES}
        self.seen |= set(listed)
        report.instances = [i for i in report.instances if i.row.instance_id not in self.gone]
        frame = TopFrame(report, gone=sorted(self.gone))
        running = [i for i, state in listed.items() if state == "running" and i not in self.gone]
        jobs = [row for row in report.running_jobs if row.instance_id not in self.gone]
        with ThreadPoolExecutor(max_workers=8) as pool:
            snaps = {i: pool.submit(self.snapshot, i) for i in running}
            lines = {row.job_id: pool.submit(self.last_line, row) for row in jobs}
            for instance_id, snap in snaps.items():
                frame.usage[instance_id] = _result(snap, instance_id, frame.errors)
            for job_id, tail in lines.items():
                line = _result(tail, job_id, frame.errors)
                frame.last_lines[job_id] = line if isinstance(line, str) else ""
        return frame


def _result(future: Any, key: str, errors: dict[str, str]) -> Any:
    try:
        return future.result()
    except RunctlError as exc:
        errors[key] = exc.message
        return None
