"""The one place that knows how things look.

Data goes to stdout: a rich table or plain lines in text mode, one JSON document (or NDJSON, one
object a line, for streaming commands) in json mode. Everything else (progress, spinners, hints,
warnings, errors) goes to stderr, so ``--output json | jq`` and ``$(...)`` always work.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from runctl.errors import RunctlError, UsageError

FORMATS = ("text", "json")


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses, pydantic models, paths and datetimes into JSON-ready values."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        return {name: to_jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


@dataclass
class Output:
    """Renders results and messages for one command invocation."""

    format: str = "text"
    verbose: bool = False
    _err: Console = field(
        default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True)
    )

    @property
    def is_json(self) -> bool:
        return self.format == "json"

    @property
    def is_text(self) -> bool:
        return self.format == "text"

    @property
    def stderr(self) -> Console:
        return self._err

    def _stdout(self) -> Console:
        # Built per call so that whatever sys.stdout is right now (a pipe, CliRunner) is used.
        # Piped output has no terminal width; rich would fold tables at 80 columns.
        width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "200"))
        return Console(file=sys.stdout, highlight=False, soft_wrap=True, width=width)

    # -- data (stdout) ---------------------------------------------------------------------------

    def document(self, data: Any, text: Callable[[Output], None] | None = None) -> None:
        """Emit a command's result: ``data`` as JSON, or ``text(self)`` in text mode."""
        if self.is_json or text is None:
            self.json_line(data)
        else:
            text(self)

    def json_line(self, data: Any) -> None:
        """Write one JSON document (one NDJSON line) to stdout."""
        sys.stdout.write(json.dumps(to_jsonable(data), sort_keys=False) + "\n")
        sys.stdout.flush()

    def line(self, text: str = "") -> None:
        """Write one plain line of data to stdout, with no markup interpretation."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def raw(self, text: str) -> None:
        """Write text to stdout exactly as given (log streaming)."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        title: str | None = None,
    ) -> None:
        """A table of data on stdout (text mode)."""
        table = Table(title=title, show_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("" if cell is None else escape(str(cell)) for cell in row))
        self._stdout().print(table)

    def render(self, renderable: Any) -> None:
        """A rich renderable (tables grouped into a screen) on stdout (text mode)."""
        self._stdout().print(renderable)

    def mark_line(self, mark: str, text: str) -> None:
        """One line of data on stdout led by ``mark`` (rich markup: a coloured ✓ or ✗); the
        text is taken literally."""
        self._stdout().print(f"{mark} {escape(text)}")

    def fields(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """Aligned ``name: value`` lines on stdout (text mode)."""
        width = max((len(name) for name, _ in pairs), default=0)
        for name, value in pairs:
            self.line(f"{name + ':':<{width + 1}} {'-' if value is None else value}")

    # -- messages (stderr) -----------------------------------------------------------------------

    def info(self, message: str) -> None:
        self._err.print(escape(message))

    def detail(self, message: str) -> None:
        """A message shown only with --verbose."""
        if self.verbose:
            self._err.print(f"[dim]{escape(message)}[/dim]")

    def success(self, message: str) -> None:
        self._err.print(f"[green]✓[/green] {escape(message)}")

    def warn(self, message: str) -> None:
        self._err.print(f"[yellow]warning:[/yellow] {escape(message)}")

    def error(self, err: RunctlError) -> None:
        """Report an error: one line (plus a hint) on stderr; a JSON document too in json mode."""
        self._err.print(f"[red]error:[/red] {escape(err.message)}")
        if err.hint:
            self._err.print(f"  [dim]hint:[/dim] {escape(err.hint)}")
        if self.is_json:
            self.json_line(err.to_dict())

    def stream(self, text: str) -> None:
        """Another program's output (a docker build's), to stderr exactly as it comes."""
        self._err.file.write(text)
        self._err.file.flush()

    def confirm(self, question: str, *, refusing: str) -> None:
        """Ask ``question`` on the terminal; exit 1 on "no". Without a terminal to ask on, a
        UsageError saying what was refused (``refusing``) and that ``--yes`` confirms."""
        if not sys.stdin.isatty():
            raise UsageError(
                f"refusing to {refusing} without confirmation: stdin is not a terminal",
                hint="pass --yes to confirm",
            )
        if not typer.confirm(question, err=True):
            self.info("nothing done")
            raise typer.Exit(1)

    @contextmanager
    def spinner(self, message: str) -> Iterator[Callable[[str], None]]:
        """A spinner on stderr; yields a function that updates its message."""
        with self._err.status(escape(message)) as status:
            yield lambda text: status.update(escape(text))

    @contextmanager
    def transfer_progress(
        self, description: str, total: int | None
    ) -> Iterator[Callable[[int], None]]:
        """A bytes progress bar on stderr (done/total, rate, ETA); yields ``advance(nbytes)``,
        which worker threads may call. Nothing is drawn when stderr is not a terminal."""
        if not self._err.is_terminal:
            yield _ignore_progress
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._err,
            transient=True,
        )
        with bar:
            task = bar.add_task(escape(description), total=total)
            yield lambda nbytes: bar.advance(task, nbytes)

    @contextmanager
    def item_progress(self) -> Iterator[Callable[[str, str, int | None, int | None], None]]:
        """A progress bar per item (each layer of a push) on stderr; yields
        ``update(item, status, done, total)``. Without a terminal, only ``--verbose`` shows
        anything: one line per item when its status changes."""
        if not self._err.is_terminal:
            seen: dict[str, str] = {}

            def line(item: str, status: str, done: int | None, total: int | None) -> None:
                if seen.get(item) != status:
                    seen[item] = status
                    self.detail(f"{item}: {status}")

            yield line
            return
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[status]}"),
            console=self._err,
            transient=True,
        )
        tasks: dict[str, Any] = {}

        def update(item: str, status: str, done: int | None, total: int | None) -> None:
            if item not in tasks:
                tasks[item] = bar.add_task(escape(item), total=None, status="")
            bar.update(tasks[item], completed=done or 0, total=total, status=escape(status))

        with bar:
            yield update


def _ignore_progress(nbytes: int) -> None:
    return


def format_bytes(size: float) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ``20.0 MiB``."""
    if abs(size) < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if abs(size) < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"


def parse_format(value: str | None, *, allowed: Sequence[str] = FORMATS) -> str | None:
    """Check an ``--output`` value against what a command supports (exit 2 otherwise)."""
    if value is None:
        return None
    lowered = value.lower()
    if lowered not in allowed:
        raise UsageError(
            f"--output {value!r} is not supported here",
            hint=f"use one of: {', '.join(allowed)}",
        )
    return lowered
