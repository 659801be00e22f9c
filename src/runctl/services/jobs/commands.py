"""Every bash script runctl sends to an instance through SSM, built here and nowhere else (no
network access of their own beyond the runtime bundle's presigned URL).

Every value placed in a command goes through ``shlex.quote``; inline code (the runtime fetch,
the process snapshot) travels in quoted heredocs, which bash never expands. Each script reads
``$RUNCTL_REMOTE_ROOT`` first and falls back to the configured ``aws.remote_root``, so the same
text runs on an instance and in a test sandbox.

- :func:`probe_command`: whether a job's runner is alive there, which python3 it has and whether
  it has a docker CLI, before anything about a new job is written.

- :func:`start_job_command`: fetch the runtime bundle into ``<root>/runtime/<sha256>/`` unless
  it is there (sha256-verified, extracted under a temporary name, then renamed), then
  ``python3 -m runctl.remote.runner start``, which prints one JSON line and returns at once
  (exit 8 with a JSON error when another job runs there).
- :func:`stop_job_command`: ``python3 -m runctl.remote.control stop``: the graceful stop (or, with
  the reason ``cancel``, the job's cancellation), one JSON line naming the committed checkpoint
  (see :mod:`runctl.remote.control`).
- :func:`job_state_command`: status.json and the log tail as one JSON line.
- :func:`read_command`: a job's id, attempt, log size, status.json and a base64 log chunk.
- :func:`snapshot_command`: CPU, memory, disk, GPUs and the job's processes
  (:mod:`runctl.remote.procinfo`) as one JSON line.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from importlib import resources

from runctl.job.layout import DEFAULT_REMOTE_ROOT, ROOT_ENV
from runctl.job.spec import TERMINAL_STATES
from runctl.remote.control import (
    DEFAULT_STOP_TIMEOUT,
    STOP_REASONS,
    idle_state_result,
    idle_stop_result,
)
from runctl.remote.succession import ATTEMPT_SLOT, URL_SLOT, WAIT_UNTIL_SLOT

MIN_PYTHON = (3, 9)
#: Log bytes one read command returns: base64 of it stays under SSM's 24,000-character output.
CHUNK_BYTES = 15_000

_FETCH = """\
import hashlib, io, os, shutil, sys, tarfile, tempfile, urllib.request
url, sha, dest = sys.argv[1:4]
data = urllib.request.urlopen(url, timeout=300).read()
if hashlib.sha256(data).hexdigest() != sha:
    sys.exit("runctl: the runtime bundle does not match its sha256 " + sha)
tmp = tempfile.mkdtemp(prefix=".fetch-", dir=os.path.dirname(dest))
with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    tar.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
try:
    os.rename(tmp, dest)
except OSError:
    shutil.rmtree(tmp, ignore_errors=True)  # another start extracted the same bundle first
"""


def root_lines(remote_root_default: str) -> list[str]:
    """Bash setting ``root`` to ``$RUNCTL_REMOTE_ROOT``, else the configured remote root."""
    return [
        f"root=${{{ROOT_ENV}:-}}",
        f'[ -n "$root" ] || root={shlex.quote(remote_root_default)}',
    ]


def _python_check(min_python: Sequence[int]) -> str:
    major, minor = int(min_python[0]), int(min_python[1])
    need = f"{major}.{minor}"
    code = (
        f"import sys; sys.exit(0 if sys.version_info >= ({major}, {minor}) else "
        f"'runctl: the instance needs python3 >= {need}, found ' + sys.version.split()[0])"
    )
    return f"python3 -c {shlex.quote(code)}"


def start_job_command(
    runtime_url: str,
    runtime_sha: str,
    job_uri: str,
    attempt: int,
    force: bool = False,
    remote_root_default: str = DEFAULT_REMOTE_ROOT,
    *,
    region: str | None = None,
    min_python: Sequence[int] = MIN_PYTHON,
    successor: bool = False,
) -> str:
    """The bash script that starts attempt ``attempt`` of the job at ``job_uri`` detached.

    With ``successor`` it is the template of a successor's start (runctl.remote.succession):
    the runtime URL and the attempt are placeholders filled on the instance that launches it,
    and the runner first waits for the previous attempt's end.
    """
    if successor:
        runtime_url = URL_SLOT
    runner = [
        "exec python3 -m runctl.remote.runner start",
        '--root "$root"',
        f"--job {shlex.quote(job_uri)}",
        f"--attempt {ATTEMPT_SLOT if successor else int(attempt)}",
    ]
    if successor:
        runner.append(f"--wait-until {WAIT_UNTIL_SLOT}")
    if force:
        runner.append("--force")
    if region:
        runner.append(f"--region {shlex.quote(region)}")
    lines = [
        "set -eu",
        *root_lines(remote_root_default),
        _python_check(min_python),
        *runtime_lines(runtime_url, runtime_sha),
        " ".join(runner),
    ]
    return "\n".join(lines) + "\n"


def runtime_lines(runtime_url: str, runtime_sha: str) -> list[str]:
    """Bash (after the ``root=`` lines) that fetches the runtime bundle into
    ``$root/runtime/<sha256>/`` unless it is there and puts it first on ``PYTHONPATH``."""
    return [
        f'rt="$root/runtime/"{shlex.quote(runtime_sha)}',
        'if [ ! -d "$rt/runctl" ]; then',
        '  mkdir -p "$root/runtime"',
        f"  python3 - {shlex.quote(runtime_url)} {shlex.quote(runtime_sha)} "
        + "\"$rt\" <<'RUNCTL_FETCH'",
        _FETCH.rstrip("\n"),
        "RUNCTL_FETCH",
        "fi",
        'printf \'%s\\n\' "$rt" > "$root/runtime/current"',
        'export PYTHONPATH="$rt${PYTHONPATH:+:$PYTHONPATH}"',
    ]


_PROBE = """\
import json, os, shutil, sys
root, need = sys.argv[1], tuple(int(x) for x in sys.argv[2].split("."))
def read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return ""
busy = read(os.path.join(root, "current-job")) or None
if busy is not None:
    pid = read(os.path.join(root, "jobs", busy, "runner.pid"))
    try:
        with open("/proc/%s/cmdline" % int(pid), "rb") as handle:
            alive = b"runctl.remote.runner" in handle.read()
    except (OSError, ValueError):
        alive = False
    busy = busy if alive else None
version = sys.version_info
print(json.dumps({"busy_job": busy, "python": "%d.%d.%d" % tuple(version[:3]),
                  "python_ok": tuple(version[:2]) >= need, "docker": shutil.which("docker")}))
"""


def probe_command(
    remote_root_default: str = DEFAULT_REMOTE_ROOT, *, min_python: Sequence[int] = MIN_PYTHON
) -> str:
    """Bash that prints one JSON line: ``busy_job`` (the job whose runner is alive there, or
    null), ``python`` (python3's version, or null when there is none), ``python_ok`` and
    ``docker`` (the docker CLI's path, or null).

    The runner's own start refuses the same cases; asking first lets runctl refuse a job before
    it writes anything about it.
    """
    need = f"{int(min_python[0])}.{int(min_python[1])}"
    fallback = shlex.quote(
        json.dumps({"busy_job": None, "python": None, "python_ok": False, "docker": None})
    )
    return (
        "\n".join(
            [
                *root_lines(remote_root_default),
                f"python3 - \"$root\" {need} <<'RUNCTL_PROBE' || printf '%s\\n' {fallback}",
                _PROBE.rstrip("\n"),
                "RUNCTL_PROBE",
            ]
        )
        + "\n"
    )


def _control_command(
    verb: str, options: list[str], idle_json: str, remote_root_default: str
) -> str:
    lines = [
        "set -eu",
        *root_lines(remote_root_default),
        'rt=$(cat "$root/runtime/current" 2>/dev/null || true)',
        'if [ -z "$rt" ] || [ ! -d "$rt/runctl" ]; then',
        f"  printf '%s\\n' {shlex.quote(idle_json)}",
        "  exit 0",
        "fi",
        'export PYTHONPATH="$rt${PYTHONPATH:+:$PYTHONPATH}"',
        " ".join([f'exec python3 -m runctl.remote.control {verb} --root "$root"', *options]),
    ]
    return "\n".join(lines) + "\n"


def stop_job_command(
    job_id: str | None = None,
    *,
    timeout_seconds: float = DEFAULT_STOP_TIMEOUT,
    remote_root_default: str = DEFAULT_REMOTE_ROOT,
    reason: str = "stop",
) -> str:
    """The bash script that stops the job (default: the current one) gracefully and prints the
    JSON of :func:`runctl.remote.control.stop_job`; exit 9 when it timed out. ``reason``
    ``cancel`` makes the runner record the job ``cancelled`` instead of ``stopped``."""
    if reason not in STOP_REASONS:
        raise ValueError(f"unknown stop reason {reason!r}")
    options = [f"--timeout {float(timeout_seconds)}", f"--reason {reason}"]
    if job_id:
        options.append(f"--job {shlex.quote(job_id)}")
    idle = json.dumps(idle_stop_result(job_id), sort_keys=True)
    return _control_command("stop", options, idle, remote_root_default)


def job_state_command(
    job_id: str | None = None,
    *,
    lines: int = 50,
    remote_root_default: str = DEFAULT_REMOTE_ROOT,
) -> str:
    """The bash script that prints the job's status.json and log tail as one JSON line."""
    options = [f"--lines {int(lines)}"]
    if job_id:
        options.append(f"--job {shlex.quote(job_id)}")
    idle = json.dumps(idle_state_result(), sort_keys=True)
    return _control_command("state", options, idle, remote_root_default)


def read_command(
    job_id: str | None,
    attempt: int | None,
    offset: int,
    *,
    limit: int = CHUNK_BYTES,
    tail: bool = False,
    wait_seconds: float = 0,
    remote_root_default: str = DEFAULT_REMOTE_ROOT,
) -> str:
    """Bash that prints the job's id, attempt, log size, status.json and a base64 log chunk:
    ``limit`` bytes from ``offset``, or with ``tail`` the last ``limit`` bytes.

    With ``wait_seconds`` it first waits on the instance (checking every 0.2 s) until the log
    grows past ``offset`` or status.json changes, at most that long, unless the job has already
    ended: one command then covers a quiet stretch that would otherwise take a command a poll.
    """
    window = (
        f'tail -c {int(limit)} "$f"'
        if tail
        else f'tail -c +{int(offset) + 1} "$f" 2>/dev/null | head -c {int(limit)}'
    )
    return "\n".join(
        [
            "set -u",
            *root_lines(remote_root_default),
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
            *_wait_lines(offset, wait_seconds),
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


def _wait_lines(offset: int, wait_seconds: float) -> list[str]:
    """Bash that waits for new log bytes or a new status (see :func:`read_command`)."""
    if wait_seconds <= 0:
        return []
    ended = "|".join(sorted(TERMINAL_STATES))
    status_id = 'stat -c "%i %s %Y" "$d/status.json" 2>/dev/null || echo none'
    return [
        f"seen=$({status_id}); end=$((SECONDS + {int(wait_seconds)}))",
        f'while [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" -le {int(offset)} ] \\',
        f'    && ! grep -qE \'"state": "({ended})"\' "$d/status.json" 2>/dev/null \\',
        f'    && [ "$({status_id})" = "$seen" ] && [ "$SECONDS" -lt "$end" ]; do',
        "  sleep 0.2",
        "done",
    ]


def snapshot_command(remote_root_default: str = DEFAULT_REMOTE_ROOT) -> str:
    """Bash that prints one JSON snapshot of the machine and the current job's processes."""
    source = resources.files("runctl.remote").joinpath("procinfo.py").read_text("utf-8")
    return "\n".join(
        [
            *root_lines(remote_root_default),
            "python3 - \"$root\" <<'RUNCTL_PROCINFO'",
            source.rstrip("\n"),
            "RUNCTL_PROCINFO",
        ]
    )


def parse_command_json(stdout: str) -> dict[str, object]:
    """The last JSON object line of a command's output; ValueError when there is none."""
    for raw in reversed(stdout.strip().splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            data = json.loads(line)
            if isinstance(data, dict):
                return data
    raise ValueError("the command printed no JSON")
