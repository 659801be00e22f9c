"""Local files on one side, keys on the other: walking directories, include/exclude filters,
safe key-to-path mapping, and the temporary names downloads land under before they are complete.

Part of the instance-shipped S3 engine: standard library and :mod:`runctl.errors` only.
"""

from __future__ import annotations

import fnmatch
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from runctl.errors import NotFoundError, UsageError

TEMP_SUFFIX = ".runctl-part"
# Our temporary name, and s3transfer's own ``.XXXXXXXX`` (hex) suffix on top of it while writing.
_TEMP_RE = re.compile(re.escape(TEMP_SUFFIX) + r"(\.[0-9A-Fa-f]{8})?$")
_MAX_NAME_BYTES = 200  # leaves room for our suffix and s3transfer's within NAME_MAX (255)
EXCLUDE = "exclude"
INCLUDE = "include"


@dataclass(frozen=True)
class LocalFile:
    """A regular file under a walked root: its ``/``-separated relative path, size and mtime."""

    relpath: str
    path: Path
    size: int
    mtime: float


class PathFilter:
    """aws-cli's ``--exclude``/``--include`` semantics: every path is included, then each rule in
    command-line order may exclude or re-include it, so later rules win.

    Patterns are ``fnmatch`` globs matched against the path relative to the transfer's root (a
    ``*`` also matches ``/``, as in aws-cli).
    """

    def __init__(self, rules: Sequence[tuple[str, str]] = ()) -> None:
        for kind, _ in rules:
            if kind not in (EXCLUDE, INCLUDE):
                raise ValueError(f"filter kind must be {EXCLUDE!r} or {INCLUDE!r}, not {kind!r}")
        self.rules = tuple(rules)

    def __call__(self, relpath: str) -> bool:
        included = True
        for kind, pattern in self.rules:
            if fnmatch.fnmatchcase(relpath, pattern):
                included = kind == INCLUDE
        return included

    def __bool__(self) -> bool:
        return bool(self.rules)


ALL = PathFilter()


def is_temp_name(name: str) -> bool:
    """True for the names downloads use until they are complete (never synced or uploaded)."""
    return _TEMP_RE.search(name) is not None


def temp_path_for(final: Path) -> Path:
    """A fresh hidden temporary name beside ``final``, so the last rename is atomic."""
    token = secrets.token_hex(4)
    if len(final.name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        return final.with_name(f".runctl-{token}{TEMP_SUFFIX}")
    return final.with_name(f".{final.name}.{token}{TEMP_SUFFIX}")


def require_local_path(path: Path) -> None:
    """Raise NotFoundError (exit 6) when a local source does not exist."""
    if not path.exists():
        raise NotFoundError(
            f"local path {path} does not exist",
            hint="check the path (relative paths start in the current directory)",
            resource=str(path),
        )


def walk_local(root: Path, include: PathFilter = ALL) -> Iterator[LocalFile]:
    """Every regular file under ``root`` (symlinks to files followed, to directories not),
    in sorted order, skipping unfinished downloads and what ``include`` rejects."""
    require_local_path(root)
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(directory)
        for name in sorted(filenames):
            if is_temp_name(name):
                continue
            path = base / name
            relpath = path.relative_to(root).as_posix()
            if not include(relpath):
                continue
            try:
                stat = path.stat()
            except OSError:
                continue  # a dangling symlink, or a file removed while walking
            yield LocalFile(relpath, path, stat.st_size, stat.st_mtime)


def local_path_for(root: Path, relkey: str) -> Path | None:
    """Where the key part ``relkey`` lands under ``root``, or None when it cannot land there
    safely (``..`` or ``.`` segments, empty segments, a leading ``/``, NUL)."""
    parts = relkey.split("/")
    if not relkey or "\x00" in relkey or any(p in ("", ".", "..") for p in parts):
        return None
    if os.sep != "/" and any(os.sep in p for p in parts):
        return None
    return root.joinpath(*parts)


def parse_filter_args(args: Sequence[str]) -> list[tuple[str, str]]:
    """The ``--exclude``/``--include`` rules of raw command-line ``args``, in the order given.

    Typer hands the two options over as separate lists, which loses their interleaving; aws-cli
    semantics need it (``--exclude '*' --include '*.py'``).
    """
    rules: list[tuple[str, str]] = []
    it = iter(args)
    for arg in it:
        if arg == "--":
            break
        for kind in (EXCLUDE, INCLUDE):
            flag = f"--{kind}"
            if arg == flag:
                value = next(it, None)
                if value is None:
                    raise UsageError(f"{flag} needs a pattern")
                rules.append((kind, value))
            elif arg.startswith(flag + "="):
                rules.append((kind, arg[len(flag) + 1 :]))
    return rules
