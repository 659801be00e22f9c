"""What an instance's processes run with: bare Python, a PATH without ``aws``, a marker.

:class:`Toolbox` is built once per session: a ``python -m venv --without-pip`` whose
``python3``/``python`` has only the standard library (no boto3), a ``bin`` directory of
harness commands (``shutdown``/``poweroff``/``halt``/``reboot``, which ask the
instance's IMDS server to act like an instance-initiated shutdown or reboot; ``blkid``,
``mkfs.ext4``, ``mkfs.xfs``, ``mount``, ``umount`` and ``findmnt`` for EBS volumes, see
:mod:`tests.cloud.ebs_tools`), and a
``PATH`` made of those two plus the standard system directories with any ``aws`` CLI
filtered out (a directory holding ``aws`` is replaced by a farm of symlinks to every
other command in it).

Every process started for an instance (SSM commands, user data) carries the environment
markers ``RUNCTL_HARNESS_SESSION=<token>`` and ``RUNCTL_HARNESS_INSTANCE=<instance-id>``;
:func:`marked_pids` finds them, and everything they started, by scanning
``/proc/*/environ``, which is how stop/terminate/reset "power off" an instance even when
its commands daemonised (``nohup ... &``, ``setsid``, double fork). A process that
clears its whole environment (``env -i``) escapes this.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SESSION_VAR = "RUNCTL_HARNESS_SESSION"
INSTANCE_VAR = "RUNCTL_HARNESS_INSTANCE"

SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
FORBIDDEN = ("aws", "aws_completer")

_SHUTDOWN_SHIM = """#!/bin/sh
# runctl test harness: {name} asks this instance's IMDS server to {action} the instance.
case " $* " in *" -c "*) exit 0 ;; esac
exec python3 - "$@" <<'PY'
import os, sys, urllib.request
base = os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"].rstrip("/")
req = urllib.request.Request(base + "/_harness/{action}", data=b"", method="POST")
urllib.request.urlopen(req, timeout=10).read()
PY
"""


class Toolbox:
    """Session-wide interpreter, harness commands and PATH for sandboxed processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "python"
        self.bin = root / "bin"
        self.path = ""

    def build(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(self.venv)],
            check=True,
            capture_output=True,
        )
        self.bin.mkdir(parents=True, exist_ok=True)
        for name, action in (
            ("shutdown", "shutdown"),
            ("poweroff", "shutdown"),
            ("halt", "shutdown"),
            ("reboot", "reboot"),
        ):
            script = self.bin / name
            script.write_text(_SHUTDOWN_SHIM.format(name=name, action=action))
            script.chmod(0o755)
        from tests.cloud.ebs_tools import install

        install(self.bin, self.venv / "bin" / "python3")
        dirs = [str(self.venv / "bin"), str(self.bin)]
        for directory in SYSTEM_DIRS:
            path = Path(directory)
            if not path.is_dir() or path.is_symlink():
                continue
            if any((path / name).exists() for name in FORBIDDEN):
                dirs.append(str(self._filtered_copy(path)))
            else:
                dirs.append(directory)
        self.path = os.pathsep.join(dirs)
        if shutil.which("aws", path=self.path) is not None:
            raise RuntimeError(f"an aws CLI is still reachable on the sandbox PATH {self.path}")

    def _filtered_copy(self, directory: Path) -> Path:
        farm = self.root / "sysbin" / directory.as_posix().strip("/").replace("/", "_")
        farm.mkdir(parents=True, exist_ok=True)
        for entry in directory.iterdir():
            if entry.name in FORBIDDEN or entry.name.startswith("aws"):
                continue
            link = farm / entry.name
            if not link.exists():
                link.symlink_to(entry)
        return farm


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def marked_pids(session: str, instance_id: str | None = None) -> list[int]:
    """Pids of live processes carrying this session's (and instance's) markers."""
    session_marker = f"{SESSION_VAR}={session}".encode()
    instance_marker = f"{INSTANCE_VAR}={instance_id}".encode() if instance_id else None
    me = os.getpid()
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me:
            continue
        env = _environ(pid)
        if not env:
            continue
        variables = env.split(b"\0")
        if session_marker not in variables:
            continue
        if instance_marker is not None and instance_marker not in variables:
            continue
        found.append(pid)
    return found


def kill_marked(session: str, instance_id: str | None = None, grace: float = 0.0) -> int:
    """Kill every marked process (SIGTERM first if ``grace`` > 0, then SIGKILL).

    Repeats until no marked process is left (a fork may race the first scan).
    Returns how many processes were signalled.
    """
    killed: set[int] = set()
    if grace > 0:
        for pid in marked_pids(session, instance_id):
            try:
                os.kill(pid, signal.SIGTERM)
                killed.add(pid)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and marked_pids(session, instance_id):
            time.sleep(0.02)
    for _ in range(50):
        pids = marked_pids(session, instance_id)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    return len(killed)
