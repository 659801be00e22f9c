"""The code bundle: which files of the project go to the instance, packed deterministically.

The project root is the nearest enclosing directory holding ``.git``, ``pyproject.toml``,
``requirements.txt`` or ``.runctl.toml``. A file is left out when, in order of precedence:

1. it matches ``--include-pattern`` (gitignore syntax): then it is always IN, even if ignored,
   a default exclude or a secret;
2. it is a secret (``.env*``, ``*.pem``, ``*.key``, ``id_rsa*``, ``.aws/``, ``.runctl.toml``);
3. it is a default exclude (``.git``, virtualenvs -- ``.venv``, ``venv`` and any directory
   holding ``pyvenv.cfg`` --, ``__pycache__``, ``*.pyc``, tool caches, ``node_modules``,
   ``checkpoints/``, ``.runctl/``);
4. git would ignore it: every ``.gitignore`` and ``.runctlignore`` in the tree applies to its
   own directory with git's semantics (pathspec's GitIgnoreSpec: directory patterns, negation,
   anchoring, ``**``; the deepest file with a matching pattern decides; a file inside an
   ignored directory cannot be re-included, as in git).

The archive is deterministic (:mod:`runctl.services.bundles.tarball`), so unchanged code has the
same sha256 and is uploaded once to ``runctl/<project>/code/<sha256>.tar.gz``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pathspec

from runctl.errors import NotFoundError, UsageError
from runctl.paths import cache_dir as user_cache_dir
from runctl.services.bundles.tarball import write_deterministic_targz

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

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
SECRET_PATTERNS = (".env*", "*.pem", "*.key", "id_rsa*", ".aws/", ".runctl.toml")
WARN_BYTES = 100 * 1024 * 1024
LARGEST_SHOWN = 10


@dataclass
class CodeBundle:
    """A built code bundle: archive path, sha256, size and what is in it."""

    path: Path
    sha256: str
    size: int
    root: Path
    files: list[str] = field(default_factory=list)
    largest: list[tuple[str, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: What a .gitignore/.runctlignore left out: (relative path, is a directory).
    ignored: list[tuple[str, bool]] = field(default_factory=list)


def _spec(lines: Sequence[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(lines)


DEFAULT_SPEC = _spec(DEFAULT_EXCLUDES)
SECRET_SPEC = _spec(SECRET_PATTERNS)


class _Rules:
    """The ignore files seen on the way down, innermost last."""

    def __init__(self) -> None:
        self.stack: list[tuple[str, pathspec.GitIgnoreSpec]] = []

    def load(self, rel_dir: str, directory: Path) -> None:
        lines: list[str] = []
        for name in IGNORE_FILES:
            path = directory / name
            if path.is_file():
                lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
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


def _within(base: str, rel: str) -> bool:
    return base in ("", rel) or rel.startswith(base + "/")


def _matches(spec: pathspec.GitIgnoreSpec, rel: str, is_dir: bool) -> bool:
    return bool(spec.check_file(rel + "/" if is_dir else rel).include)


def collect_files(
    root: Path,
    include_patterns: Sequence[str] = (),
    *,
    ignored: list[tuple[str, bool]] | None = None,
) -> list[str]:
    """The ``/``-separated relative paths of every file the bundle of ``root`` holds, sorted.

    ``ignored`` receives each path (and whether it is a directory) that a ``.gitignore`` or
    ``.runctlignore`` left out (not a default exclude or a secret), for
    :mod:`runctl.services.bundles.left_out`."""
    include = _spec(include_patterns) if include_patterns else None
    rules = _Rules()
    selected: list[str] = []
    # Walk top-down; a directory is entered while it is not excluded, or when include
    # patterns might pick something inside it.
    stack: list[tuple[str, bool]] = [("", False)]
    while stack:
        rel_dir, forced_only = stack.pop()
        directory = root / rel_dir if rel_dir else root
        rules.leave(rel_dir)
        if not forced_only:
            rules.load(rel_dir, directory)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        subdirs: list[tuple[str, bool]] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_dir:
                if (Path(entry.path) / "pyvenv.cfg").exists():
                    excluded = True
                else:
                    excluded = forced_only or _excluded(rules, rel, True)
                    if excluded and ignored is not None and not forced_only:
                        _note_ignored(ignored, rules, rel, True)
                if not excluded:
                    subdirs.append((rel, False))
                elif include is not None:
                    subdirs.append((rel, True))
                continue
            if not entry.is_file():  # sockets, fifos, dangling or directory symlinks
                continue
            forced = include is not None and _matches(include, rel, False)
            if forced or (not forced_only and not _excluded(rules, rel, False)):
                selected.append(rel)
            elif ignored is not None and not forced_only:
                _note_ignored(ignored, rules, rel, False)
        stack.extend(reversed(subdirs))
    return sorted(selected)


def _note_ignored(ignored: list[tuple[str, bool]], rules: _Rules, rel: str, is_dir: bool) -> None:
    by_design = _matches(SECRET_SPEC, rel, is_dir) or _matches(DEFAULT_SPEC, rel, is_dir)
    if not by_design and rules.ignored(rel, is_dir):
        ignored.append((rel, is_dir))


def _excluded(rules: _Rules, rel: str, is_dir: bool) -> bool:
    return (
        _matches(SECRET_SPEC, rel, is_dir)
        or _matches(DEFAULT_SPEC, rel, is_dir)
        or rules.ignored(rel, is_dir)
    )


def build_code_bundle(
    root: Path,
    cache_dir: Path | None = None,
    *,
    include_patterns: Sequence[str] = (),
) -> CodeBundle:
    """Pack the project at ``root`` into ``<cache_dir>/<sha256>.tar.gz`` (default cache:
    :func:`runctl.paths.cache_dir`).

    Returns the CodeBundle (with a warning naming the largest files past 100 MB). Raises
    NotFoundError when ``root`` is not a directory.
    """
    if not root.is_dir():
        raise NotFoundError(f"project directory {root} does not exist", resource=str(root))
    cache_dir = cache_dir or user_cache_dir("code")
    ignored: list[tuple[str, bool]] = []
    files = collect_files(root, include_patterns, ignored=ignored)
    entries = [(rel, root / rel) for rel in files]
    sizes = sorted(((rel, (root / rel).stat().st_size) for rel in files), key=lambda x: -x[1])
    result = write_deterministic_targz(entries, cache_dir / f"building-{os.getpid()}.tar.gz")
    final = cache_dir / f"{result.sha256}.tar.gz"
    os.replace(result.path, final)
    bundle = CodeBundle(
        path=final,
        sha256=result.sha256,
        size=result.size,
        root=root,
        files=files,
        largest=sizes[:LARGEST_SHOWN],
        ignored=ignored,
    )
    if result.size > WARN_BYTES:
        names = ", ".join(f"{rel} ({size / 1e6:.0f} MB)" for rel, size in sizes[:5])
        bundle.warnings.append(
            f"the code bundle is {result.size / 1e6:.0f} MB; largest files: {names}. "
            "Add data and weights to .gitignore or .runctlignore and pass them with --data-s3"
        )
    return bundle


def upload_code_bundle(client: S3Client, bundle: CodeBundle, bucket: str, project: str) -> bool:
    """Upload the bundle to ``runctl/<project>/code/<sha256>.tar.gz`` unless it is there.

    Returns True when it was uploaded, False when an identical bundle already existed.
    """
    from runctl.aws.s3 import S3Uri, head_object
    from runctl.aws.s3_transfer import UploadItem, upload_files
    from runctl.job.spec import code_key

    uri = S3Uri(bucket, code_key(project, bundle.sha256))
    try:
        head_object(client, uri)
        return False
    except NotFoundError:
        pass
    upload_files(client, [UploadItem(bundle.path, uri, bundle.size)])
    return True


def latest_code_sha(client: S3Client, bucket: str, project: str) -> str:
    """The newest code bundle already in S3 for ``project`` (for ``--no-sync-code``).

    Raises UsageError when the project has no code in S3 yet.
    """
    from runctl.aws.s3 import S3Uri, iter_objects
    from runctl.job.spec import code_prefix

    prefix = S3Uri(bucket, code_prefix(project))
    bundles = [o for o in iter_objects(client, prefix) if o.key.endswith(".tar.gz")]
    if not bundles:
        raise UsageError(
            f"--no-sync-code: no code has been uploaded for project {project} yet",
            hint="run once without --no-sync-code to ship the code",
            resource=str(prefix),
        )
    newest = max(bundles, key=lambda o: o.last_modified)
    return newest.key.rsplit("/", 1)[-1].removesuffix(".tar.gz")
