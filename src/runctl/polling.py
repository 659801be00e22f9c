"""Polling with injected time: the one loop every ``wait`` in runctl goes through.

Callers pass ``sleep`` and ``clock`` so tests run instantly and can simulate a timeout without
waiting for one. The check runs first, so ``timeout=0`` means "look once".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Timing:
    """How a polling loop waits: the injected sleep and monotonic clock, and its intervals."""

    sleep: Sleep = time.sleep
    clock: Clock = time.monotonic
    interval: float = 2.0
    max_interval: float = 10.0
    backoff: float = 1.5


def poll_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    timing: Timing | None = None,
) -> T | None:
    """Call ``check`` until it returns something other than None, or ``timeout`` seconds pass.

    Returns the first non-None result, or None on timeout. The interval between checks grows
    from ``timing.interval`` to ``timing.max_interval`` so long waits do not hammer the API.
    """
    timing = timing or Timing()
    deadline = timing.clock() + max(timeout, 0.0)
    interval = timing.interval
    while True:
        result = check()
        if result is not None:
            return result
        remaining = deadline - timing.clock()
        if remaining <= 0:
            return None
        timing.sleep(min(interval, remaining))
        interval = min(interval * timing.backoff, timing.max_interval)
