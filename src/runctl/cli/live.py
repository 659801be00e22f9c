"""The live loop of ``top``: redraw a rich Live display every interval until ``q`` or Ctrl-C.

Live redraws in place (the alternate screen, like ``top``), so a refresh never flickers through
an empty screen. Keys are read from the terminal in cbreak mode (no Enter needed, nothing
echoed) and the terminal is restored however the loop ends. The clock and the key reader are
passed in, so tests run the loop on a recording console without waiting.
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

from rich.console import Console, RenderableType
from rich.live import Live

QUIT_KEYS = ("q", "Q")


class Keys(Protocol):
    def wait(self, timeout: float) -> str | None:
        """The key pressed within ``timeout`` seconds, or None."""
        ...


class TerminalKeys:
    """Keys from a terminal's stdin, one at a time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def wait(self, timeout: float) -> str | None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        data = os.read(self.fd, 32)
        return data.decode("utf-8", "replace")[:1] if data else None


@contextmanager
def terminal_keys() -> Iterator[Keys]:
    """Keys from stdin in cbreak mode, restored on exit."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield TerminalKeys(fd)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_live(
    console: Console,
    frame: Callable[[], Any],
    render: Callable[[Any, str], RenderableType],
    *,
    interval: float,
    keys: Keys,
    clock: Callable[[], datetime],
    screen: bool = True,
    limit: int | None = None,
) -> int:
    """Show ``render(frame(), footer)`` on ``console``, refreshed every ``interval`` seconds,
    until a quit key (or ``limit`` frames); returns the number of frames shown."""
    shown = 0
    with Live(console=console, screen=screen, auto_refresh=False, transient=False) as live:
        while True:
            taken = frame()
            footer = (f"updated {clock():%H:%M:%S}, every {interval:g}s; "
                      "q or Ctrl-C to leave")  # fmt: skip
            live.update(render(taken, footer), refresh=True)
            shown += 1
            if limit is not None and shown >= limit:
                return shown
            if keys.wait(interval) in QUIT_KEYS:
                return shown
