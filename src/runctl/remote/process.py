"""Child processes of the runner: the training script, pip, venv.

The script runs in its own session (process group) so that a signal reaches everything it
started and so that a terminal's Ctrl-C reaches only the runner, which then stops the script
gracefully. Its stdout and stderr are merged and copied, as they come, to the job log (flushed
every write, so the log shipper and ``tail`` see lines at once) and, for ``runctl local``, to the
terminal. Stopping it can be watched (:class:`Observer`, the checkpoint writer watch): the group
is frozen with SIGSTOP around each signal so the observer sees exactly what the signal finds,
and observed every few milliseconds while it winds down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from runctl.job.spec import UTC, format_time

Echo = Callable[[bytes], None]
CHUNK = 64 * 1024
OBSERVE_INTERVAL = 0.02


class Observer(Protocol):
    """Looks at the script's processes while it is being stopped."""

    def look(self) -> object: ...

    def look_frozen(self) -> object: ...


class JobLog:
    """The job's log file, shared by the output pump and the runner's own messages."""

    def __init__(self, path: Path, echo: Echo | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle: BinaryIO = path.open("ab")
        self._echo = echo
        self._lock = threading.Lock()

    def write(self, data: bytes, *, echo: bool = True) -> None:
        with self._lock:
            self._handle.write(data)
            self._handle.flush()
        if echo and self._echo is not None:
            self._echo(data)

    def note(self, message: str) -> None:
        """A runner message in the log: ``[runctl <time>] message``."""
        stamp = format_time(datetime.now(UTC))
        self.write(f"[runctl {stamp}] {message}\n".encode("utf-8", "replace"), echo=False)

    def close(self) -> None:
        with self._lock:
            self._handle.close()


class ScriptProcess:
    """A child in its own process group whose merged output is pumped into a JobLog."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str], log: JobLog) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        self._pump = threading.Thread(target=self._copy, args=(log,), daemon=True)
        self._pump.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _copy(self, log: JobLog) -> None:
        stream = self.proc.stdout
        assert stream is not None
        fd = stream.fileno()
        while True:
            try:
                data = os.read(fd, CHUNK)
            except OSError:
                break
            if not data:
                break
            log.write(data)
        stream.close()

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None when ``timeout`` passed first. Waits for the output too."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._pump.join(timeout=5.0)
        return code

    def signal_group(self, signum: int) -> bool:
        """Send ``signum`` to the script's whole process group; False when it is already gone."""
        try:
            os.killpg(self.proc.pid, signum)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def terminate(
        self,
        grace: float,
        on_sigterm: Callable[[], None] | None = None,
        observer: Observer | None = None,
    ) -> int:
        """SIGTERM the group, wait up to ``grace`` seconds, SIGKILL if still alive; exit code.

        With an ``observer``, each signal is sent to the group while it is frozen, right after
        ``observer.look_frozen()``, and ``observer.look()`` runs every few ms meanwhile.
        """
        if self.poll() is None and self._signal(signal.SIGTERM, observer) and on_sigterm:
            on_sigterm()
        code = self._wait_observed(max(0.0, grace), observer)
        if code is None:
            self._signal(signal.SIGKILL, observer)
            code = self.proc.wait()
            self._pump.join(timeout=5.0)
        # Anything the script left running in its group goes too.
        self.signal_group(signal.SIGKILL)
        return code

    def _signal(self, signum: int, observer: Observer | None) -> bool:
        if observer is None:
            return self.signal_group(signum)
        if not self.signal_group(signal.SIGSTOP):
            return False
        try:
            observer.look_frozen()
        finally:
            sent = self.signal_group(signum)
            self.signal_group(signal.SIGCONT)
        return sent

    def _wait_observed(self, grace: float, observer: Observer | None) -> int | None:
        if observer is None:
            return self.wait(timeout=grace)
        deadline = time.monotonic() + grace
        while True:
            code = self.wait(timeout=min(OBSERVE_INTERVAL, max(0.0, deadline - time.monotonic())))
            if code is not None or time.monotonic() >= deadline:
                return code
            observer.look()


def run_logged(
    argv: Sequence[str],
    *,
    log: JobLog,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    poll: float = 0.2,
) -> int:
    """Run a helper command (pip, venv) with its output in the log; its exit code.

    Returns -15 (SIGTERM'd) when ``should_stop()`` became true while it ran.
    """
    log.note("$ " + " ".join(argv))
    process = ScriptProcess(argv, cwd=cwd or Path.cwd(), env=env or dict(os.environ), log=log)
    while True:
        code = process.wait(timeout=poll)
        if code is not None:
            return code
        if should_stop():
            return process.terminate(grace=5.0) or -signal.SIGTERM
