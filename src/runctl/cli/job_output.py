"""How jobs look: streamed logs, a started job, a job's outcome and its timeline, a job run here.

Shared by every command that starts or follows a job (``aws train``, ``aws monitor``,
``jobs logs``, ``checkpoint resume``, ``local``, ``workflow train``). The JSON documents come
from the services' result objects; this module only decides how they read and which exit code a
verdict gives.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from runctl.cli.output import Output
from runctl.cli.units import cost_fields
from runctl.errors import ExitCode, JobFailedError, RunctlError

if TYPE_CHECKING:
    from runctl.job.spec import JobStatus
    from runctl.services.jobs.follow import FollowResult, JobWatch
    from runctl.services.jobs.local import LocalJobResult
    from runctl.services.jobs.outcome import JobOutcome
    from runctl.services.jobs.session import JobSession
    from runctl.services.jobs.start import StartedJob


class LogPrinter:
    """Writes streamed log bytes as text: to stdout, or to stderr when stdout carries JSON;
    with ``ndjson``, one ``{"type": "log", "line": ...}`` object per line on stdout."""

    def __init__(self, out: Output, *, ndjson: bool = False) -> None:
        self.out = out
        self.ndjson = ndjson
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def __call__(self, chunk: bytes) -> None:
        text = self._decoder.decode(chunk)
        if self.ndjson:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self.out.json_line({"type": "log", "line": line})
        elif self.out.is_json:
            self.out.stderr.file.write(text)
            self.out.stderr.file.flush()
        else:
            self.out.raw(text)

    def close(self) -> None:
        if self.ndjson and self._pending:
            self.out.json_line({"type": "log", "line": self._pending})
            self._pending = ""


class PrefixedLogs:
    """The logs of several jobs interleaved line by line, each line prefixed with its job's
    label (``[#2 lr=0.01] epoch 3 ...``); only whole lines are written, so two jobs never share
    a line. To stdout, or to stderr when stdout carries JSON. Sinks may be fed from threads."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._pending: dict[str, str] = {}

    def sink(self, prefix: str) -> Callable[[bytes], None]:
        """A log sink for one job (``on_log``) whose lines start with ``prefix``."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending[prefix] = ""

        def write(chunk: bytes) -> None:
            with self._lock:
                text = self._pending[prefix] + decoder.decode(chunk)
                *lines, self._pending[prefix] = text.split("\n")
                if lines:
                    self._write("".join(f"{prefix}{line}\n" for line in lines))

        return write

    def close(self) -> None:
        """Write what is left of unfinished last lines."""
        with self._lock:
            for prefix, rest in self._pending.items():
                if rest:
                    self._write(f"{prefix}{rest}\n")
            self._pending = dict.fromkeys(self._pending, "")

    def _write(self, text: str) -> None:
        if self.out.is_json:
            self.out.stderr.file.write(text)
            self.out.stderr.file.flush()
        else:
            self.out.raw(text)


def print_follow_end(out: Output, watch: JobWatch, result: FollowResult) -> None:
    """The end of a followed job: an ``end`` event (NDJSON) or a line; exit 7 unless it
    succeeded (the event already carries the verdict, so no error document follows it)."""
    end = {
        "type": "end",
        "instance_id": watch.instance_id,
        "job_id": watch.job_id,
        "attempt": result.attempt,
        "state": result.state,
        "verdict": result.verdict,
        "exit_code": result.exit_code,
    }
    code = result.exit_code
    if out.is_json:
        out.json_line(end)
    else:
        out.info(
            f"job {watch.job_id} {result.state}" + ("" if code is None else f" (exit code {code})")
        )
    if result.verdict != "succeeded":
        raise typer.Exit(int(ExitCode.JOB_FAILED))


def render_started(out: Output, started: StartedJob, **extra: Any) -> None:
    """A job left running on its instance: its id on stdout (or its JSON document)."""
    out.info(f"follow it: runctl aws monitor {started.instance_id} --follow")
    document = {**started.to_dict(), **extra, "state": "running", "verdict": None}
    out.document({**document, "exit_code": None}, lambda o: o.line(started.job_id))


def say_started(out: Output, started: StartedJob) -> None:
    out.info(f"job {started.job_id} attempt {started.attempt} started on {started.instance_id}")
    out.info(f"files: {started.location.uri}")


@contextmanager
def still_running_on_interrupt(out: Output, started: StartedJob) -> Iterator[None]:
    """Ctrl-C while following leaves the job running: say so, and how to follow or stop it."""
    try:
        yield
    except KeyboardInterrupt:
        instance = started.instance_id
        out.info(
            f"stopped following; job {started.job_id} keeps running on {instance}. "
            f"Follow it: runctl aws monitor {instance} --follow; stop it (checkpoint committed): "
            f"runctl aws stop {instance}"
        )
        raise


def follow_to_verdict(
    out: Output,
    session: JobSession,
    started: StartedJob,
    *,
    auto_resume: bool = False,
    max_restarts: int = 0,
    timeout_minutes: float | None = None,
    **extra: Any,
) -> None:
    """Stream the job's log until it ends (through interruptions with ``auto_resume``), then
    render its outcome and exit with its verdict (0, or 7)."""
    printer = LogPrinter(out)
    with still_running_on_interrupt(out, started):
        outcome = session.run_to_end(
            started,
            on_log=printer,
            auto_resume=auto_resume,
            max_restarts=max_restarts,
            timeout=None if timeout_minutes is None else timeout_minutes * 60,
        )
    printer.close()
    render_outcome(out, outcome, started, **_final_cost(out, session, started), **extra)


def _final_cost(out: Output, session: JobSession, started: StartedJob) -> dict[str, Any]:
    """The job's cost at its end, said on stderr and put in the document (``cost``)."""
    try:
        cost = session.job_cost(started.location).to_dict()
    except RunctlError as exc:
        out.warn(f"could not estimate the job's cost: {exc.message}")
        return {"cost": None}
    for name, value in cost_fields(cost):
        out.info(f"{name}: {value}")
    return {"cost": cost}


def render_outcome(out: Output, outcome: JobOutcome, started: StartedJob, **extra: Any) -> None:
    """The timeline (when there was more than one attempt) on stderr, then the verdict: exit 0
    when the job succeeded, 7 (with the job's document) otherwise."""
    if len(outcome.timeline) > 1 or outcome.launched:
        _print_timeline(out, outcome)
    if outcome.status is not None:
        report_checkpoints(out, outcome.status, every_attempt=True)
    document = {**started.to_dict(), **outcome.to_dict(), **extra}
    failure = outcome.failure()
    if failure is not None:
        failure.details = document
        raise failure
    out.document(document, lambda o: o.success(f"job {outcome.job_id} succeeded"))


def _print_timeline(out: Output, outcome: JobOutcome) -> None:
    out.info("attempts:")
    for entry in outcome.timeline:
        extra = ""
        if entry.notice_to_commit_seconds is not None:
            extra += f", notice -> checkpoint committed {entry.notice_to_commit_seconds:.1f}s"
        if entry.recovery_seconds is not None:
            extra += f", interruption -> training again {entry.recovery_seconds:.1f}s"
        checkpoint = f", checkpoint {entry.checkpoint_id}" if entry.checkpoint_id else ""
        out.info(
            f"  {entry.attempt}: {entry.instance_id} ({entry.lifecycle}) {entry.state}"
            f"{checkpoint}{extra}"
        )
    if outcome.terminated:
        out.info(f"terminated replacements: {', '.join(outcome.terminated)}")


def report_local_result(out: Output, result: LocalJobResult, data: dict[str, Any]) -> None:
    """Render a job run here and exit like ``runctl local``: 0, 7 (script failed), 130."""
    if isinstance(result.error, RunctlError):
        raise result.error
    status = result.status
    report_checkpoints(out, status)
    if status.state == "succeeded":
        out.document(
            data, lambda o: o.success(f"job {result.job_id} succeeded (log: {result.log_path})")
        )
        return
    if status.state in ("stopped", "interrupted", "cancelled"):
        out.document(data, lambda o: _stopped(o, data))
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    code = status.exit_code
    raise JobFailedError(
        f"job {result.job_id} failed: {status.message or f'exit code {code}'}",
        script_exit_code=code,
        hint=f"see the log: {result.log_path}",
        resource=result.job_id,
        details=data,
    )


def report_checkpoints(out: Output, status: JobStatus, *, every_attempt: bool = False) -> None:
    """Say (stderr) which checkpoint the attempt's script last started from and every fallback
    it took on the way (status.json's ``restored_checkpoint`` and ``fallbacks``; with
    ``every_attempt``, the fallbacks of the whole job)."""
    fallbacks = status.fallbacks if every_attempt else status.fallbacks_of()
    for fallback in fallbacks:
        out.warn(f"fallback: {fallback.describe()}")
    if status.restored_checkpoint:
        out.info(f"the run started from checkpoint {status.restored_checkpoint}")
    elif fallbacks:
        out.warn("no committed checkpoint could be used")


def _stopped(out: Output, data: dict[str, object]) -> None:
    checkpoint = data.get("checkpoint_id")
    kept = f"; checkpoint {checkpoint} committed" if checkpoint else ""
    out.info(f"job {data['job_id']} stopped{kept}; checkpoints stay in {data['checkpoint_dir']}")
