"""How a workflow is interrupted: SIGHUP and SIGTERM as Ctrl-C, workers woken from their sleep,
and the last terminations held safe from signals."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from runctl.services.workflow.interrupts import (
    Cancelled,
    Hangup,
    Stopper,
    hangup_as_interrupt,
    shielded,
)


def test_a_cancelled_stopper_wakes_a_sleeping_worker_with_cancelled() -> None:
    stopper = Stopper()
    stopper.sleep(0)  # an ordinary sleep until cancelled
    outcome: list[BaseException] = []

    def worker() -> None:
        try:
            stopper.sleep(3600)
        except Cancelled as exc:
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    stopper.cancel()
    thread.join(timeout=10)
    assert not thread.is_alive() and len(outcome) == 1
    assert stopper.cancelled
    with pytest.raises(Cancelled):
        stopper.check()
    # Not an Exception: no `except Exception` on the way takes it for the job's own failure.
    assert not isinstance(outcome[0], Exception)


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_sighup_and_sigterm_raise_like_ctrl_c_and_the_handlers_come_back(signum: int) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt) as info, hangup_as_interrupt():
        os.kill(os.getpid(), signum)
        for _ in range(1000):  # the handler runs between bytecodes
            pass
    assert isinstance(info.value, Hangup) and info.value.signum == signum
    assert signal.getsignal(signum) == before


def test_shielded_holds_a_signal_until_the_block_is_done() -> None:
    done: list[str] = []
    # Another thread, as a workflow has: a signal blocked in the main thread alone would be
    # handed to this one, and Python would still raise in the main thread.
    release = threading.Event()
    bystander = threading.Thread(target=release.wait)
    bystander.start()
    try:
        with pytest.raises(Hangup), hangup_as_interrupt():
            with shielded():
                os.kill(os.getpid(), signal.SIGHUP)
                for _ in range(20):  # the signal has every chance to be handled in here
                    time.sleep(0.01)
                done.append("terminations sent")
            for _ in range(1000):
                pass
    finally:
        release.set()
        bystander.join()
    assert done == ["terminations sent"]
