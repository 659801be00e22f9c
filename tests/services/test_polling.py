"""The one polling loop: checks first, backs off, honours the timeout with an injected clock."""

from __future__ import annotations

from runctl.polling import Timing, poll_until
from tests.services.fakes import FakeClock


def test_timeout_zero_checks_once() -> None:
    calls: list[int] = []
    clock = FakeClock()
    assert poll_until(lambda: calls.append(1), timeout=0, timing=Timing(clock.sleep, clock)) is None
    assert calls == [1] and clock.sleeps == []


def test_returns_the_first_result_and_backs_off() -> None:
    clock = FakeClock()
    answers = iter([None, None, None, "done"])
    result = poll_until(
        lambda: next(answers),
        timeout=100,
        timing=Timing(clock.sleep, clock, interval=2, max_interval=4),
    )
    assert result == "done"
    assert clock.sleeps == [2, 3, 4]


def test_gives_up_after_the_timeout() -> None:
    clock = FakeClock()
    assert (
        poll_until(
            lambda: None, timeout=10, timing=Timing(clock.sleep, clock, interval=4, backoff=1)
        )
        is None
    )
    assert clock.now == 10
