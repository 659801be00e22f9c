"""What the code bundle left out, told before the job starts.

A ``.gitignore`` written for git often leaves out what a training script reads: the dataset it
prepared (``data/*.bin``), a tokenizer file, a config. :func:`left_out` counts the files and
bytes that the project's ``.gitignore``/``.runctlignore`` files kept out of the bundle (secrets,
``.git``, virtualenvs and caches are left out by design and not counted) and names the largest;
:func:`script_references` scans the script's string literals (Python's via :mod:`ast`, a shell
wrapper's words) for paths inside the project that were left out, so the user hears about them
now rather than from a ``FileNotFoundError`` on the instance.
"""

from __future__ import annotations

import ast
import heapq
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LARGEST = 3
#: Files looked at under ignored directories before the count is given as "at least".
WALK_LIMIT = 200_000
_SHELL_WORD = re.compile(r"""'([^'\n]*)'|"([^"\n]*)"|([^\s'"=;|&<>()]+)""")


@dataclass(frozen=True)
class IgnoredPath:
    """A file or directory an ignore file left out, with the files and bytes under it."""

    path: str
    is_dir: bool
    files: int
    bytes: int


@dataclass
class LeftOut:
    """Everything the ignore files left out of the bundle."""

    paths: list[IgnoredPath] = field(default_factory=list)
    largest: list[tuple[str, int]] = field(default_factory=list)
    truncated: bool = False

    @property
    def files(self) -> int:
        return sum(p.files for p in self.paths)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.paths)

    def describe(self) -> str:
        """``left out by .gitignore/.runctlignore: 3 files, 1.2 GB (largest: ...)``."""
        plural = "" if self.files == 1 else "s"
        count = f"{'at least ' if self.truncated else ''}{self.files:,} file{plural}"
        largest = ", ".join(f"{name} ({_size(size)})" for name, size in self.largest)
        return f"left out by .gitignore/.runctlignore: {count}, {_size(self.bytes)}" + (
            f" (largest: {largest})" if largest else ""
        )


@dataclass(frozen=True)
class Reference:
    """A path the script names that the bundle left out."""

    script: str
    literal: str
    left_out: tuple[IgnoredPath, ...]

    def describe(self) -> str:
        files = sum(p.files for p in self.left_out)
        size = sum(p.bytes for p in self.left_out)
        names = ", ".join(p.path + ("/" if p.is_dir else "") for p in self.left_out[:3])
        return (
            f"{self.script} refers to {self.literal!r}, which the code bundle leaves out "
            f"({names}: {files:,} files, {_size(size)}, by .gitignore/.runctlignore); stage it "
            f"with --data-s3, or ship it with --include-pattern {self.left_out[0].path!r}"
        )


def left_out(root: Path, ignored: Sequence[tuple[str, bool]], bundled: Iterable[str]) -> LeftOut:
    """Count what ``ignored`` (from :func:`runctl.services.bundles.selection.select_files`) holds
    under ``root``, minus the ``bundled`` files that ``--include-pattern`` took back."""
    shipped = set(bundled)
    found = LeftOut()
    heap: list[tuple[int, str]] = []
    budget = WALK_LIMIT
    for rel, is_dir in ignored:
        files = 0
        size = 0
        for name, length in _files_under(root, rel, is_dir):
            if name in shipped:
                continue
            budget -= 1
            if budget < 0:
                found.truncated = True
                break
            files += 1
            size += length
            heapq.heappush(heap, (length, name))
            if len(heap) > LARGEST:
                heapq.heappop(heap)
        if files:
            found.paths.append(IgnoredPath(rel, is_dir, files, size))
        if found.truncated:
            break
    found.largest = [(name, size) for size, name in sorted(heap, reverse=True)]
    return found


def _files_under(root: Path, rel: str, is_dir: bool) -> Iterable[tuple[str, int]]:
    """(relative path, size) of the file ``rel``, or of every file under the directory."""
    if not is_dir:
        try:
            size = (root / rel).stat().st_size
        except OSError:
            return
        yield rel, size
        return
    for directory, dirs, names in os.walk(root / rel):
        here = Path(directory)
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
        for name in names:
            path = here / name
            try:
                stat = path.lstat()
            except OSError:
                continue
            if not path.is_symlink():
                yield path.relative_to(root).as_posix(), stat.st_size


def script_references(root: Path, script: str, found: LeftOut) -> list[Reference]:
    """The paths inside the project that ``script`` (relative to ``root``) names in a string
    literal and that the bundle left out (the literal, a file or directory inside it, or a
    directory holding it)."""
    if not found.paths:
        return []
    path = root / script
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    literals = _python_literals(text) if path.suffix == ".py" else _shell_words(text)
    references = []
    seen: set[str] = set()
    for literal in literals:
        for candidate in _candidates(root, path.parent, literal):
            hits = tuple(p for p in found.paths if _overlaps(candidate, p.path))
            if hits and literal not in seen:
                seen.add(literal)
                references.append(Reference(script, literal, hits))
    return references


def _python_literals(text: str) -> list[str]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return _shell_words(text)
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _shell_words(text: str) -> list[str]:
    words = []
    for match in _SHELL_WORD.finditer(text):
        words.append(next(group for group in match.groups() if group is not None))
    return words


def _candidates(root: Path, script_dir: Path, literal: str) -> list[str]:
    """``literal`` as project-relative paths (from the root and from the script's directory),
    when it can be one: ``--data=data/x`` gives ``data/x``."""
    value = literal.rsplit("=", 1)[-1].strip()
    if not value or len(value) > 255 or "\n" in value or "://" in value or value.startswith("-"):
        return []
    if value.startswith("$") or os.path.isabs(value):
        return []
    found = []
    for base in (root, script_dir):
        rel = os.path.relpath(os.path.normpath(base / value), root)
        if rel != "." and not rel.startswith(".."):
            found.append(Path(rel).as_posix())
    return found


def _overlaps(candidate: str, ignored: str) -> bool:
    return (
        candidate == ignored
        or ignored.startswith(candidate + "/")
        or candidate.startswith(ignored + "/")
    )


def _size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
