"""The code bundle's sha256 without packing the project again when nothing in it changed.

An image's default tag is the sha256 of the project's code bundle, and packing a project
(gzip) costs about a second per 50 MB, on every ``docker build``, even when nothing changed.
:func:`cached_code_sha` remembers, per fingerprint of the bundle's files -- each path, size,
modification time (ns) and execute bit, and runctl's version (the archive format) --, the sha256
the bundle had, and packs again only when the fingerprint is new or that bundle is no longer
in the cache. A file rewritten with the same size inside the same nanosecond would be missed;
that is the bargain ``make`` and ``rsync`` strike too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from runctl import __version__
from runctl.job.spec import write_bytes_atomic
from runctl.services.bundles.code import build_code_bundle
from runctl.services.bundles.selection import select_files

FINGERPRINTS = "fingerprints"


def code_fingerprint(root: Path, files: Sequence[str]) -> str:
    """A digest of what the bundle of ``files`` (relative to ``root``) is made of."""
    digest = hashlib.sha256(f"runctl {__version__}\n".encode())
    for rel in files:
        info = os.stat(root / rel)
        line = f"{rel}\0{info.st_size}\0{info.st_mtime_ns}\0{bool(info.st_mode & 0o111)}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def cached_code_sha(root: Path, cache_dir: Path) -> str:
    """The sha256 of ``root``'s code bundle (built into ``cache_dir`` when not known)."""
    try:
        before: str | None = code_fingerprint(root, select_files(root).files)
    except OSError:  # a file vanished while it was looked at
        before = None
    if before is not None:
        try:
            known = (cache_dir / FINGERPRINTS / before).read_text(encoding="ascii").strip()
        except OSError:
            known = ""
        if known and (cache_dir / f"{known}.tar.gz").is_file():
            return known
    bundle = build_code_bundle(root, cache_dir)
    try:
        after = code_fingerprint(root, bundle.files)
    except OSError:
        after = None
    # A file that changed while it was packed: do not tie the old fingerprint to this bundle.
    if before is not None and after == before:
        write_bytes_atomic(cache_dir / FINGERPRINTS / before, f"{bundle.sha256}\n".encode())
    return bundle.sha256
