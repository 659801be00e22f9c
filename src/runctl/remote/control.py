"""Control of the job running on this machine: ``python3 -m runctl.remote.control stop|state``.

``stop [--job ID] [--timeout S] [--reason stop|cancel]`` asks the runner for the graceful stop (a
``stop-request`` file naming the reason, then SIGUSR1): SIGTERM to the script, the grace period,
SIGKILL if needed, the final checkpoint committed, state ``stopped`` (the instance is stopping:
``aws stop|terminate``) or ``cancelled`` (``jobs cancel``: the job ends for good, the instance
stays). It returns when the runner has written that final state (or the timeout passed, exit 9)
and prints one JSON object::

    {"job_id": "...", "running": true, "stopped": true, "timed_out": false, "state": "stopped",
     "checkpoint_id": "00000007-20240501T120000Z-a0", "checkpoint_committed": "<ISO time>",
     "notice": "<ISO>", "sigterm": "<ISO>", "exit_code": 143, "elapsed_seconds": 3.2}

``running`` is false (and nothing is signalled) when no runner is alive. ``state [--job ID]
[--lines N]`` prints the job's status.json and the tail of its log as one JSON object:
``job_id``, ``running``, ``pid``, ``status`` (status.json or null), ``log_path``, ``log_size``,
``log_tail`` (list of lines). Without ``--job`` both use the current job, ``state`` falling back
to the most recently active job. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runctl.errors import ExitCode
from runctl.job.layout import RemoteRoot, read_pid, runner_alive
from runctl.job.record import JobRecord
from runctl.job.spec import TERMINAL_STATES, utc_now, write_json_atomic

DEFAULT_STOP_TIMEOUT = 150.0
TAIL_BYTES = 256 * 1024
#: Why a stop was asked for, as the ``stop-request`` file says (the runner's final state follows).
STOP_REASONS = ("stop", "cancel")


def _status(root: RemoteRoot, job_id: str) -> dict[str, Any] | None:
    status = JobRecord(paths=root.job(job_id)).read_status()
    return status.to_dict() if status is not None else None


def _alive_pid(root: RemoteRoot, job_id: str) -> int | None:
    pid = read_pid(root.job(job_id).runner_pid)
    return pid if pid is not None and runner_alive(pid) else None


def stop_job(
    root: RemoteRoot,
    job_id: str | None,
    *,
    timeout: float = DEFAULT_STOP_TIMEOUT,
    reason: str = "stop",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Gracefully stop ``job_id`` (default: the current job) and wait for its final state;
    ``reason`` (:data:`STOP_REASONS`) decides whether it ends ``stopped`` or ``cancelled``."""
    job_id = job_id or root.current_job()
    result = idle_stop_result(job_id)
    if job_id is None:
        return result
    pid = _alive_pid(root, job_id)
    if pid is None:
        return _with_status(result, _status(root, job_id))
    paths = root.job(job_id)
    requested = utc_now()
    write_json_atomic(paths.stop_request, {"reason": reason, "requested": requested})
    started = clock()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGUSR1)
    result["running"] = True
    while True:
        status = _status(root, job_id)
        if _ended_since(status, requested):
            result["stopped"] = True
            break
        if _alive_pid(root, job_id) is None:
            result["stopped"] = _ended_since(status, requested)
            break
        if clock() - started >= timeout:
            result["timed_out"] = True
            break
        sleep(0.2)
    result["elapsed_seconds"] = round(clock() - started, 3)
    return _with_status(result, _status(root, job_id))


def _ended_since(status: dict[str, Any] | None, requested: str) -> bool:
    """True when ``status`` is final and was written after the stop request (not an earlier
    attempt's final state still on disk)."""
    if status is None or status.get("state") not in TERMINAL_STATES:
        return False
    ended = status.get("ended")
    return not ended or str(ended) >= requested


def _with_status(result: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
    for key in ("state", "checkpoint_id", "checkpoint_committed", "notice", "sigterm"):
        result[key] = status.get(key) if status else None
    result["exit_code"] = status.get("exit_code") if status else None
    result.setdefault("elapsed_seconds", 0.0)
    return result


def idle_stop_result(job_id: str | None = None) -> dict[str, Any]:
    """What ``stop`` prints when no runner (or no runtime) exists on the machine."""
    return _with_status(
        {"job_id": job_id, "running": False, "stopped": False, "timed_out": False}, None
    )


def idle_state_result() -> dict[str, Any]:
    """What ``state`` prints when no job ever ran on the machine."""
    return {
        "job_id": None,
        "running": False,
        "pid": None,
        "status": None,
        "log_path": None,
        "log_size": 0,
        "log_tail": [],
    }


def _latest_job(root: RemoteRoot) -> str | None:
    jobs = root.path / "jobs"
    try:
        candidates = [p for p in jobs.iterdir() if p.is_dir()]
    except OSError:
        return None
    if not candidates:
        return None
    return max(candidates, key=lambda p: p.stat().st_mtime).name


def tail_lines(path: Path, lines: int) -> tuple[list[str], int]:
    """The last ``lines`` lines of ``path`` (reading at most 256 KiB) and the file's size."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return [], 0
    text = data.decode("utf-8", "replace")
    return (text.splitlines()[-lines:] if lines > 0 else []), size


def job_state(root: RemoteRoot, job_id: str | None, *, lines: int = 50) -> dict[str, Any]:
    """status.json and the log tail of ``job_id`` (default: current, else latest job)."""
    job_id = job_id or root.current_job() or _latest_job(root)
    if job_id is None:
        return idle_state_result()
    status = _status(root, job_id)
    attempt = int(status.get("attempt", 0)) if status else 0
    log_path = root.job(job_id).log(attempt)
    tail, size = tail_lines(log_path, lines)
    pid = _alive_pid(root, job_id)
    return {
        "job_id": job_id,
        "running": pid is not None,
        "pid": pid,
        "status": status,
        "log_path": str(log_path),
        "log_size": size,
        "log_tail": tail,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m runctl.remote.control")
    sub = parser.add_subparsers(dest="command", required=True)
    stop = sub.add_parser("stop", help="stop the job gracefully, committing its checkpoint")
    stop.add_argument("--timeout", type=float, default=DEFAULT_STOP_TIMEOUT)
    stop.add_argument("--reason", choices=STOP_REASONS, default="stop")
    state = sub.add_parser("state", help="status.json and the log tail as JSON")
    state.add_argument("--lines", type=int, default=50)
    for cmd in (stop, state):
        cmd.add_argument("--job", default=None)
        cmd.add_argument("--root", default=None)
    args = parser.parse_args(argv)
    root = RemoteRoot(Path(args.root)) if args.root else RemoteRoot.from_env()
    if args.command == "stop":
        result = stop_job(root, args.job, timeout=args.timeout, reason=args.reason)
        code = int(ExitCode.TIMEOUT) if result["timed_out"] else 0
    else:
        result = job_state(root, args.job, lines=args.lines)
        code = 0
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
