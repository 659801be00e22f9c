"""The code bundle: the project's files (chosen by :mod:`runctl.services.bundles.selection`),
packed deterministically and uploaded once.

The project root is the nearest enclosing directory holding ``.git``, ``pyproject.toml``,
``requirements.txt`` or ``.runctl.toml``. The archive is deterministic
(:mod:`runctl.services.bundles.tarball`), so unchanged code has the same sha256 and is uploaded
once to ``runctl/<project>/code/<sha256>.tar.gz``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runctl.errors import NotFoundError, UsageError
from runctl.paths import cache_dir as user_cache_dir
from runctl.services.bundles.selection import select_files
from runctl.services.bundles.tarball import write_deterministic_targz

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

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


def build_code_bundle(
    root: Path,
    cache_dir: Path | None = None,
    *,
    include_patterns: Sequence[str] = (),
) -> CodeBundle:
    """Pack the project at ``root`` into ``<cache_dir>/<sha256>.tar.gz`` (default cache:
    :func:`runctl.paths.cache_dir`).

    Returns the CodeBundle, with warnings for what was skipped (links out of the project,
    unreadable files) and naming the largest files past 100 MB. Raises NotFoundError when
    ``root`` is not a directory, UsageError naming the file when one cannot be read after all.
    """
    if not root.is_dir():
        raise NotFoundError(f"project directory {root} does not exist", resource=str(root))
    cache_dir = cache_dir or user_cache_dir("code")
    selection = select_files(root, include_patterns)
    files = selection.files
    entries = [(rel, root / rel) for rel in files]
    try:
        sizes = sorted(((rel, (root / rel).stat().st_size) for rel in files), key=lambda x: -x[1])
        result = write_deterministic_targz(entries, cache_dir / f"building-{os.getpid()}.tar.gz")
    except OSError as exc:
        if not str(exc.filename or "").startswith(str(root)):
            raise  # the cache directory, not the project
        # Changed under us since the walk (removed, permissions): say which file.
        raise UsageError(
            f"cannot pack {exc.filename} into the code bundle: {exc.strerror}",
            hint="fix its permissions, or leave it out with .runctlignore",
            resource=str(exc.filename),
        ) from None
    final = cache_dir / f"{result.sha256}.tar.gz"
    os.replace(result.path, final)
    bundle = CodeBundle(
        path=final,
        sha256=result.sha256,
        size=result.size,
        root=root,
        files=files,
        largest=sizes[:LARGEST_SHOWN],
        warnings=selection.warnings,
        ignored=selection.ignored,
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
