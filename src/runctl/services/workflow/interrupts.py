"""How a workflow is interrupted and torn down: Ctrl-C, a lost terminal, and its own workers.

A workflow must terminate what it launched however it ends. Ctrl-C raises KeyboardInterrupt in
the main thread; :func:`hangup_as_interrupt` makes SIGHUP (the terminal went away) and SIGTERM do
the same, as :class:`Hangup`, so one ``except KeyboardInterrupt`` path cleans up for all three.
The jobs run in worker threads, which no signal reaches: they sleep through a :class:`Stopper`,
whose :meth:`~Stopper.sleep` raises :class:`Cancelled` once the workflow is being torn down, so
every polling loop of a job (waiting, following, launching a replacement) ends at its next sleep.
:func:`shielded` holds those signals back while the last terminations are sent.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

#: The signals that end a workflow: Ctrl-C, a lost terminal, ``kill``.
ENDING_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)
#: The ones Python would end the process on without cleaning up.
HANGUP_SIGNALS = (signal.SIGHUP, signal.SIGTERM)


class Cancelled(BaseException):
    """A worker's job is being torn down with the workflow: stop where it is.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way (a
    failed attempt, a replacement that could not start) mistakes it for the job's own failure.
    """


class Hangup(KeyboardInterrupt):
    """SIGHUP or SIGTERM: handled like Ctrl-C, and says which signal it was."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Stopper:
    """The sleep of a workflow's workers: an ordinary sleep until :meth:`cancel`, then
    :class:`Cancelled` at once (a sleeping worker wakes up)."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def check(self) -> None:
        """Raise :class:`Cancelled` once the workflow is being torn down."""
        if self._cancelled.is_set():
            raise Cancelled()

    def sleep(self, seconds: float) -> None:
        if self._cancelled.wait(max(seconds, 0.0)):
            raise Cancelled()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def hangup_as_interrupt() -> Iterator[None]:
    """Within the block, SIGHUP and SIGTERM raise :class:`Hangup` in the main thread (Python's
    default for both would end the process without cleaning up). Does nothing outside the main
    thread, where Python delivers no signals."""
    if not _in_main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Hangup(signum)

    previous = {signum: signal.signal(signum, handler) for signum in HANGUP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def shielded() -> Iterator[None]:
    """Hold Ctrl-C, SIGHUP and SIGTERM back within the block and deliver them after it: the
    last terminations of a teardown are sent whatever the user presses.

    The handlers are swapped for ones that only note the signal: blocking it in the main thread
    (``pthread_sigmask``) is not enough, since the kernel then hands it to another thread and
    Python still runs the handler in the main thread.
    """
    if not _in_main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        held.append(signum)

    previous = {signum: signal.signal(signum, hold) for signum in ENDING_SIGNALS}
    try:
        yield
    finally:
        for ending, old in previous.items():
            signal.signal(ending, old)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)
