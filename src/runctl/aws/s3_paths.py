"""Local files on one side, keys on the other: walking directories, include/exclude filters,
safe key-to-path mapping, the temporary names downloads land under before they are complete, and
file times set from S3's.

Part of the instance-shipped S3 engine: standard library and :mod:`runctl.errors` only.
"""

from __future__ import annotations

import calendar
import contextlib
import fnmatch
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from runctl.errors import NotFoundError, UsageError

TEMP_SUFFIX = ".runctl-part"
# Our temporary name, and s3transfer's own ``.XXXXXXXX`` (hex) suffix on top of it while writing.
_TEMP_RE = re.compile(re.escape(TEMP_SUFFIX) + r"(\.[0-9A-Fa-f]{8})?$")
# ``.<final name>.<token>.runctl-part`` or, for long names, ``.runctl-<digest>.<token>...``.
_TEMP_OWNER_RE = re.compile(
    r"^\.(?P<owner>.+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + r"(\.[0-9A-Fa-f]{8})?$"
)
_LONG_NAME_PREFIX = "runctl-"
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
    """A fresh hidden temporary name beside ``final``, so the last rename is atomic.

    The name says whose it is (:func:`stale_temp_paths` finds it again after a crash).
    """
    return final.with_name(f".{_temp_owner(final.name)}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _temp_owner(name: str) -> str:
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        return f"{_LONG_NAME_PREFIX}{digest}"
    return name


def stale_temp_paths(final: Path) -> list[Path]:
    """Temporary files a killed download of ``final`` left beside it (ours and s3transfer's).

    A re-run that writes ``final`` removes them: they can be as big as the object (s3transfer
    writes ranges into a sparse file), and nothing else ever would.
    """
    owner = _temp_owner(final.name)
    found: list[Path] = []
    with contextlib.suppress(OSError), os.scandir(final.parent) as entries:
        for entry in entries:
            match = _TEMP_OWNER_RE.match(entry.name)
            if match and match.group("owner") == owner:
                found.append(Path(entry.path))
    return found


def set_mtime(path: Path, moment: datetime) -> None:
    """Set ``path``'s access and modification times to ``moment`` exactly.

    In integer nanoseconds: a float timestamp turns S3's ``.449`` into ``.448999881``, and tools
    that compare times to the nanosecond (s5cmd) then see a changed file.
    """
    seconds = calendar.timegm(moment.utctimetuple())
    nanoseconds = (seconds * 1_000_000 + moment.microsecond) * 1000
    os.utime(path, ns=(nanoseconds, nanoseconds))


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


def normalize_relkey(relkey: str) -> str | None:
    """The ``/``-separated local path a key part stands for, as the AWS CLI maps it: empty and
    ``.`` segments dropped (``x//a.txt``, ``./a.txt`` and ``/a.txt`` land as ``x/a.txt`` and
    ``a.txt``). None when it cannot land safely: ``..`` segments, NUL, a key ending in ``/`` (a
    directory, not a file), or nothing left."""
    if not relkey or relkey.endswith("/") or "\x00" in relkey:
        return None
    parts = [p for p in relkey.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    if os.sep != "/" and any(os.sep in p for p in parts):
        return None
    return "/".join(parts)


def local_path_for(root: Path, relkey: str) -> Path | None:
    """Where the key part ``relkey`` lands under ``root`` (see :func:`normalize_relkey`), or
    None when it cannot land there safely."""
    normal = normalize_relkey(relkey)
    return None if normal is None else root.joinpath(*normal.split("/"))


@dataclass
class Placement:
    """Where each key of a download lands (``paths``: key part -> local relative path), and the
    key parts that do not land, with why: ``skipped`` (unsafe, or the same path as another key;
    the AWS CLI skips or overwrites these too) and ``conflicts`` (a path that other keys need
    as a directory: a failure the caller reports)."""

    paths: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, str] = field(default_factory=dict)


def place_keys(relkeys: Iterable[str], name: Callable[[str], str] = str) -> Placement:
    """Map key parts (relative to the downloaded prefix) to local paths, safely and
    deterministically; ``name`` turns a key part into what messages call it (its URI)."""
    placement = Placement()
    owners: dict[str, str] = {}
    for relkey in sorted(relkeys):
        normal = normalize_relkey(relkey)
        if normal is None:
            placement.skipped[relkey] = "its key cannot be a local path"
            continue
        held = owners.get(normal)
        if held is None or (relkey == normal and held != normal):
            owners[normal] = relkey
            if held is not None:
                placement.skipped[held] = f"it lands on the same path as {name(relkey)}"
        else:
            placement.skipped[relkey] = f"it lands on the same path as {name(held)}"
    directories: dict[str, str] = {}
    for normal, relkey in sorted(owners.items()):
        parts = normal.split("/")
        for depth in range(1, len(parts)):
            directories.setdefault("/".join(parts[:depth]), relkey)
    for normal, relkey in sorted(owners.items()):
        if normal in directories:
            placement.conflicts[relkey] = (
                f"{normal} would be both a file and the directory of {name(directories[normal])}"
            )
        else:
            placement.paths[relkey] = normal
    return placement


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
