"""Which checkpoint files the job's processes are writing, read from Linux ``/proc``.

A process holds a file open for writing when one of its descriptors (``/proc/<pid>/fd/<n>``, a
symlink to the file) was opened ``O_WRONLY`` or ``O_RDWR``: the ``flags`` line of
``/proc/<pid>/fdinfo/<n>`` is octal and its access mode is ``flags & O_ACCMODE``. A shared writable
mapping (``rw-s`` in ``/proc/<pid>/maps``) writes to the file as well, even after the descriptor is
closed. The job's processes are the script, everything still in its session (the script leads its
own, see :mod:`runctl.remote.process`) and their descendants.

:class:`WriterWatch` answers a commit's ``busy()`` (see :mod:`runctl.job.checkpoints`): while the
script runs, a fresh look; once it has ended, the files its processes held for writing at the last
look before they were gone -- the final commit after SIGTERM/SIGKILL happens when the writer is
already gone, so the supervisor looks before signalling (with the processes frozen by SIGSTOP, so
the look is exactly what the signal finds) and keeps looking until they exit. A script that exits 0
on its own closed its files itself: nothing is held against it then.

Elsewhere than Linux (no ``/proc``) nothing is ever reported busy. Standard library, Python 3.9.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
ACCESS_MODE = 0o3  # O_ACCMODE
READ_ONLY = 0o0  # O_RDONLY
STOPPED_STATES = frozenset("TtZX")  # stopped, traced, zombie, dead: runs no more code
GONE_STATES = frozenset("ZX")  # exited: its descriptors are already closed
DELETED = " (deleted)"
FREEZE_TIMEOUT = 1.0


@dataclass(frozen=True)
class ProcessInfo:
    """What ``/proc/<pid>/stat`` says about one process."""

    pid: int
    ppid: int
    session: int
    state: str
    command: str


def read_process(pid: int, proc: Path = PROC) -> ProcessInfo | None:
    """One process's stat line, or None when it is gone (or unreadable)."""
    try:
        with open(proc / str(pid) / "stat", "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    command, _, rest = text.partition("(")[2].rpartition(")")
    fields = rest.split()
    if len(fields) < 4:
        return None
    return ProcessInfo(pid, int(fields[1]), int(fields[3]), fields[0], command)


def job_processes(root_pid: int, proc: Path = PROC) -> dict[int, ProcessInfo]:
    """The script ``root_pid``, the processes of its session, and all their descendants."""
    table: dict[int, ProcessInfo] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return table
    for name in names:
        if name.isdigit():
            info = read_process(int(name), proc)
            if info is not None:
                table[info.pid] = info
    root = table.get(root_pid)
    if root is None:
        return {}
    members = {pid for pid, info in table.items() if info.session == root.session}
    members.add(root_pid)
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    stack = list(members)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in members:
                members.add(child)
                stack.append(child)
    return {pid: table[pid] for pid in members}


def _writable(fdinfo: Path) -> bool:
    try:
        with open(fdinfo, encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & ACCESS_MODE != READ_ONLY
    except (OSError, ValueError, IndexError):
        pass
    return False


def files_written(pid: int, root: str, proc: Path = PROC) -> set[str]:
    """Real paths under ``root`` (a real path ending in ``/``) that ``pid`` holds for writing."""
    found: set[str] = set()
    base = proc / str(pid)
    try:
        descriptors = os.listdir(base / "fd")
    except OSError:
        return found
    for fd in descriptors:
        try:
            target = os.readlink(base / "fd" / fd)
        except OSError:
            continue
        if (
            target.startswith(root)
            and not target.endswith(DELETED)
            and _writable(base / "fdinfo" / fd)
        ):
            found.add(target)
    try:
        with open(base / "maps", encoding="utf-8", errors="replace") as handle:
            maps = handle.read()
    except OSError:
        return found
    if root in maps:
        for line in maps.splitlines():
            parts = line.split(None, 5)
            shared_writable = len(parts) == 6 and parts[1][1] == "w" and parts[1][3] == "s"
            if shared_writable and parts[5].startswith(root):
                found.add(parts[5])
    return found


class WriterWatch:
    """The files of ``directory`` that the processes of script ``root_pid`` write (thread-safe).

    ``held()`` is what a commit asks; ``look()`` (and ``look_frozen()``, with the processes
    stopped by SIGSTOP) refresh it while the script runs; ``ended(trusted)`` fixes it once the
    script is gone: the last look's files, or none when ``trusted``.
    """

    def __init__(self, directory: Path, root_pid: int, proc: Path = PROC) -> None:
        self.root = os.path.realpath(directory).rstrip(os.sep) + os.sep
        self.root_pid = root_pid
        self.proc = proc
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}
        self._final: dict[str, str] | None = None

    def _scan(self, processes: Iterable[ProcessInfo]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for info in processes:
            for real in sorted(files_written(info.pid, self.root, self.proc)):
                rel = real[len(self.root) :].replace(os.sep, "/")
                seen.setdefault(rel, f"{info.command} (pid {info.pid}) has it open for writing")
        return seen

    def look(self) -> dict[str, str]:
        """Look now; remembered as the last look while any of the processes lives (an exited
        process has closed everything: a look at it says nothing of what it held)."""
        processes = job_processes(self.root_pid, self.proc)
        living = [info.pid for info in processes.values() if info.state not in GONE_STATES]
        seen = self._scan(processes.values())
        # A process that exited during the scan may have shown fewer files than it held when it
        # went: then keep what earlier looks saw as well.
        whole = all(self._lives(pid) for pid in living)
        with self._lock:
            if living and self._final is None:
                self._last = seen if whole else {**self._last, **seen}
        return seen

    def _lives(self, pid: int) -> bool:
        info = read_process(pid, self.proc)
        return info is not None and info.state not in GONE_STATES

    def look_frozen(self) -> dict[str, str]:
        """Look once every process of the job is stopped (or gone): call with the group
        SIGSTOPped, so that nothing is opened or closed between this look and the next signal."""
        deadline = time.monotonic() + FREEZE_TIMEOUT
        while time.monotonic() < deadline:
            running = [
                info
                for info in job_processes(self.root_pid, self.proc).values()
                if info.state not in STOPPED_STATES
            ]
            if not running:
                break
            time.sleep(0.001)
        return self.look()

    def ended(self, trusted: bool) -> None:
        """The script is gone: hold its last look's files against it, unless ``trusted``."""
        with self._lock:
            if self._final is not None:
                return
            self._final = (
                {}
                if trusted
                else {
                    rel: why.replace("has it open", "had it open") + " when the script ended"
                    for rel, why in self._last.items()
                }
            )

    def held(self) -> dict[str, str]:
        """The files a commit must not take now: a fresh look while the script runs, else
        what it held when it ended (path relative to the directory -> why)."""
        with self._lock:
            final = self._final
        if final is not None:
            return dict(final)
        return self.look()
