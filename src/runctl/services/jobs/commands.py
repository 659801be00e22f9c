"""The small bash scripts runctl sends to an instance through SSM (no network access of their own
beyond the runtime bundle's presigned URL).

Every value placed in a command goes through ``shlex.quote``; the only inline code is the
runtime fetch (a dozen lines of stdlib python in a quoted heredoc, which bash never expands).
Each script reads ``$RUNCTL_REMOTE_ROOT`` first and falls back to the configured
``aws.remote_root``, so the same text runs on an instance and in a test sandbox.

- :func:`start_job_command`: fetch the runtime bundle into ``<root>/runtime/<sha256>/`` unless
  it is there (sha256-verified, extracted under a temporary name, then renamed), then
  ``python3 -m runctl.remote.runner start``, which prints one JSON line and returns at once
  (exit 8 with a JSON error when another job runs there).
- :func:`stop_job_command`: ``python3 -m runctl.remote.control stop``: the graceful stop, one JSON
  line naming the committed checkpoint (see :mod:`runctl.remote.control`).
- :func:`job_state_command`: status.json and the log tail as one JSON line.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

from runctl.job.layout import DEFAULT_REMOTE_ROOT, ROOT_ENV
from runctl.remote.control import DEFAULT_STOP_TIMEOUT, idle_state_result, idle_stop_result

MIN_PYTHON = (3, 9)

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


def _root_lines(remote_root_default: str) -> list[str]:
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
) -> str:
    """The bash script that starts attempt ``attempt`` of the job at ``job_uri`` detached."""
    runner = [
        "exec python3 -m runctl.remote.runner start",
        '--root "$root"',
        f"--job {shlex.quote(job_uri)}",
        f"--attempt {int(attempt)}",
    ]
    if force:
        runner.append("--force")
    if region:
        runner.append(f"--region {shlex.quote(region)}")
    lines = [
        "set -eu",
        *_root_lines(remote_root_default),
        _python_check(min_python),
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
        " ".join(runner),
    ]
    return "\n".join(lines) + "\n"


def _control_command(
    verb: str, options: list[str], idle_json: str, remote_root_default: str
) -> str:
    lines = [
        "set -eu",
        *_root_lines(remote_root_default),
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
) -> str:
    """The bash script that stops the job (default: the current one) gracefully and prints the
    JSON of :func:`runctl.remote.control.stop_job`; exit 9 when it timed out."""
    options = [f"--timeout {float(timeout_seconds)}"]
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


def parse_command_json(stdout: str) -> dict[str, object]:
    """The last JSON object line of a command's output; ValueError when there is none."""
    for raw in reversed(stdout.strip().splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            data = json.loads(line)
            if isinstance(data, dict):
                return data
    raise ValueError("the command printed no JSON")
