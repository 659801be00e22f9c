"""Which files of a project go into its code bundle.

A file is left out when, in order of precedence:

1. it matches ``--include-pattern`` (gitignore syntax): then it is always IN, even if ignored,
   a default exclude or a secret;
2. it is a secret, at any depth (:data:`SECRET_PATTERNS`: what people keep next to code --
   ``.env*``, keys and certificates, ssh keys, ``.ssh/``, ``.aws/``, ``.netrc``,
   ``.git-credentials``, ``.pypirc``, ``.npmrc``, ``.docker/config.json``, service-account and
   credentials JSON, ``.runctl.toml``);
3. it is a default exclude (``.git``, virtualenvs -- ``.venv``, ``venv`` and any directory
   holding ``pyvenv.cfg`` --, ``__pycache__``, ``*.pyc``, tool caches, ``node_modules``,
   ``checkpoints/``, ``.runctl/``);
4. git would ignore it: every ``.gitignore`` and ``.runctlignore`` in the tree applies to its
   own directory with git's semantics (pathspec's GitIgnoreSpec: directory patterns, negation,
   anchoring, ``**``; the deepest file with a matching pattern decides; a file inside an
   ignored directory cannot be re-included, as in git).

Symbolic links are followed only while they stay inside the project: a link (to a file or a
directory) whose target is outside, or that does not resolve, is skipped with a warning, and a
directory link is entered once per link, never into a directory it is already inside (no loops).
Files and directories that cannot be read are skipped with a warning too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from runctl.errors import UsageError

IGNORE_FILES = (".gitignore", ".runctlignore")
DEFAULT_EXCLUDES = (
    ".git/",
    ".hg/",
    ".svn/",
    ".venv/",
    "venv/",
    "__pycache__/",
    "*.pyc",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".ipynb_checkpoints/",
    "node_modules/",
    "checkpoints/",
    ".runctl/",
    ".DS_Store",
)
SECRET_PATTERNS = (
    ".env*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".ssh/",
    ".aws/",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    "**/.docker/config.json",  # a pattern with a slash is anchored unless it starts with **/
    "*service-account*.json",
    "credentials.json",
    ".runctl.toml",
)
SHOWN_PER_WARNING = 5


def _spec(lines: Sequence[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(lines)


DEFAULT_SPEC = _spec(DEFAULT_EXCLUDES)
SECRET_SPEC = _spec(SECRET_PATTERNS)


_REASONS = {  # in the order the warnings are printed
    "outside": "symbolic links that point outside the project",
    "broken": "symbolic links whose target does not exist",
    "loop": "directory links back into a directory they are in",
    "unreadable": "permission denied; fix the permissions or list them in .runctlignore",
}


@dataclass
class FileSelection:
    """The ``/``-separated relative paths a bundle holds (sorted), and what was skipped that the
    user should hear about, by reason (``outside``, ``broken``, ``loop``, ``unreadable``)."""

    files: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    #: What a .gitignore/.runctlignore left out (relative path, is a directory) -- not the
    #: secrets or default excludes, which are left out by design -- for
    #: :mod:`runctl.services.bundles.left_out`.
    ignored: list[tuple[str, bool]] = field(default_factory=list)

    def skip(self, reason: str, rel: str) -> None:
        self.skipped.setdefault(reason, []).append(rel)

    @property
    def warnings(self) -> list[str]:
        """One line per reason, naming the first few paths."""
        lines = []
        for reason, what in _REASONS.items():
            paths = self.skipped.get(reason)
            if not paths:
                continue
            shown = ", ".join(paths[:SHOWN_PER_WARNING])
            hidden = len(paths) - SHOWN_PER_WARNING
            more = f" and {hidden} more" if hidden > 0 else ""
            lines.append(f"not in the code bundle ({what}): {shown}{more}")
        return lines


class _Rules:
    """The ignore files seen on the way down, innermost last."""

    def __init__(self) -> None:
        self.stack: list[tuple[str, pathspec.GitIgnoreSpec]] = []

    def load(self, rel_dir: str, directory: Path) -> None:
        lines: list[str] = []
        for name in IGNORE_FILES:
            path = directory / name
            try:
                lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
            except OSError:
                continue  # absent, or unreadable (the walk reports that file itself)
        if lines:
            self.stack.append((rel_dir, _spec(lines)))

    def leave(self, rel_dir: str) -> None:
        while self.stack and not _within(self.stack[-1][0], rel_dir):
            self.stack.pop()

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """git's verdict: the deepest ignore file with a matching pattern decides."""
        for base, spec in reversed(self.stack):
            if not _within(base, rel):
                continue
            local = rel[len(base) + 1 :] if base else rel
            result = spec.check_file(local + "/" if is_dir else local)
            if result.include is not None:
                return bool(result.include)
        return False

    def excluded(self, rel: str, is_dir: bool) -> bool:
        return (
            _matches(SECRET_SPEC, rel, is_dir)
            or _matches(DEFAULT_SPEC, rel, is_dir)
            or self.ignored(rel, is_dir)
        )


def _within(base: str, rel: str) -> bool:
    return base in ("", rel) or rel.startswith(base + "/")


def _matches(spec: pathspec.GitIgnoreSpec, rel: str, is_dir: bool) -> bool:
    return bool(spec.check_file(rel + "/" if is_dir else rel).include)


@dataclass(frozen=True)
class _Dir:
    rel: str  # as the bundle names it ("" for the root)
    real: str  # where it really is
    forced_only: bool  # excluded: entered only for what --include-pattern names
    chain: frozenset[str]  # the real directories it is inside (itself included)


def select_files(root: Path, include_patterns: Sequence[str] = ()) -> FileSelection:
    """The files the bundle of ``root`` holds, and what was skipped with a reason worth saying."""
    include = _spec(include_patterns) if include_patterns else None
    top = os.path.realpath(root)
    rules = _Rules()
    selection = FileSelection()
    # Depth first and in name order, so that the ignore-file stack matches the path.
    stack = [_Dir("", top, False, frozenset({top}))]
    while stack:
        current = stack.pop()
        rules.leave(current.rel)
        if not current.forced_only:
            rules.load(current.rel, Path(current.real))
        try:
            entries = sorted(os.scandir(current.real), key=lambda e: e.name)
        except OSError as exc:
            if not current.rel:
                raise UsageError(
                    f"cannot read the project directory {root}: {exc.strerror}",
                    resource=str(root),
                ) from None
            selection.skip("unreadable", f"{current.rel}/")
            continue
        subdirs: list[_Dir] = []
        for entry in entries:
            rel = f"{current.rel}/{entry.name}" if current.rel else entry.name
            link = entry.is_symlink()
            real = os.path.realpath(entry.path) if link else entry.path
            is_dir = entry.is_dir()  # through a link too
            forced = include is not None and _matches(include, rel, is_dir)
            wanted = forced or (
                not current.forced_only
                and not rules.excluded(rel, is_dir)
                and not (is_dir and os.path.exists(os.path.join(real, "pyvenv.cfg")))
            )
            if not wanted and not current.forced_only:
                _note_ignored(selection, rules, rel, is_dir, real)
            if not wanted and not (is_dir and include is not None):
                continue
            if link and not (os.path.exists(real) and _inside(real, top)):
                if wanted:
                    selection.skip("outside" if os.path.exists(real) else "broken", rel)
            elif is_dir:
                if real not in current.chain:
                    subdirs.append(_Dir(rel, real, not wanted, current.chain | {real}))
                elif wanted:
                    selection.skip("loop", rel)
            elif not wanted or not entry.is_file():
                continue  # sockets, fifos, devices
            elif not _readable(real):
                selection.skip("unreadable", rel)
            else:
                selection.files.append(rel)
        stack.extend(reversed(subdirs))
    selection.files.sort()
    return selection


def _note_ignored(
    selection: FileSelection, rules: _Rules, rel: str, is_dir: bool, real: str
) -> None:
    by_design = (
        _matches(SECRET_SPEC, rel, is_dir)
        or _matches(DEFAULT_SPEC, rel, is_dir)
        or (is_dir and os.path.exists(os.path.join(real, "pyvenv.cfg")))
    )
    if not by_design and rules.ignored(rel, is_dir):
        selection.ignored.append((rel, is_dir))


def _readable(path: str) -> bool:
    # With the effective ids, as open() will check them (a root without CAP_DAC_OVERRIDE too).
    if os.access in os.supports_effective_ids:
        return os.access(path, os.R_OK, effective_ids=True)
    return os.access(path, os.R_OK)


def _inside(real: str, top: str) -> bool:
    return real == top or real.startswith(top.rstrip("/") + "/")
