"""The build context ``runctl docker build`` sends to the daemon.

What ``docker build`` would send -- the context directory minus what ``.dockerignore`` excludes,
with Docker's own pattern semantics (:func:`runctl.aws.docker_engine.context_paths`) -- minus two
things it would not leave out:

- the code bundle's secret denylist (``.env*``, keys, ``.aws/``, ``.ssh/``, credentials files,
  ``.runctl.toml`` ...: :data:`runctl.services.bundles.selection.SECRET_SPEC`), at any depth,
  whatever ``.dockerignore`` says;
- symbolic links that leave the project or lead nowhere (the code bundle's rule). Links that stay
  inside go in as links, as Docker sends them: their targets are never read.

A Dockerfile outside the context travels inside it under :data:`OUTSIDE_DOCKERFILE`, as the
Docker CLI does. Entries keep their modes and times (the builder's cache ignores times); owners
are written as root.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from runctl.services.bundles.selection import SECRET_SPEC

OUTSIDE_DOCKERFILE = ".runctl.Dockerfile"
SHOWN_PER_WARNING = 5
_REASONS = {
    "secret": "secrets (the code bundle's denylist)",
    "outside": "symbolic links that point outside the project",
    "broken": "symbolic links whose target does not exist",
}


@dataclass
class BuildContext:
    """What goes to the daemon: sorted relative paths (files, directories, links), the
    Dockerfile's name among them, and what was left out by reason."""

    root: Path
    dockerfile: str
    entries: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    dockerfile_source: Path | None = None  # set when the Dockerfile is outside ``root``

    @property
    def files(self) -> int:
        """How many regular files the context holds."""
        return sum(1 for rel in self.entries if (self.root / rel).is_file()) + (
            1 if self.dockerfile_source else 0
        )


def skipped_warnings(skipped: dict[str, list[str]]) -> list[str]:
    """One line per reason something was left out of a context, naming the first few paths."""
    lines = []
    for reason, what in _REASONS.items():
        paths = skipped.get(reason)
        if paths:
            shown = ", ".join(paths[:SHOWN_PER_WARNING])
            more = len(paths) - SHOWN_PER_WARNING
            lines.append(
                f"not in the build context ({what}): {shown}"
                + (f" and {more} more" if more > 0 else "")
            )
    return lines


def select_context(root: Path, dockerfile: Path) -> BuildContext:
    """The build context of ``root`` for ``dockerfile`` (an existing file)."""
    from runctl.aws.docker_engine import context_paths, read_dockerignore

    top = os.path.realpath(root)
    inside = _inside(os.path.realpath(dockerfile), top)
    name = Path(os.path.relpath(dockerfile, root)).as_posix() if inside else OUTSIDE_DOCKERFILE
    context = BuildContext(root, name, dockerfile_source=None if inside else dockerfile)
    left_out: set[str] = set()
    for rel in sorted(context_paths(root, read_dockerignore(root), name if inside else "")):
        if rel in ("", "."):
            continue
        full = os.path.join(root, rel)
        parent = rel.rpartition("/")[0]
        if parent in left_out:
            left_out.add(rel)
            continue
        link = os.path.islink(full)
        is_dir = not link and os.path.isdir(full)
        reason = None
        if SECRET_SPEC.check_file(rel + "/" if is_dir else rel).include:
            reason = "secret"
        elif link:
            real = os.path.realpath(full)
            if not os.path.exists(real):
                reason = "broken"
            elif not _inside(real, top):
                reason = "outside"
        if reason is not None:
            left_out.add(rel)
            context.skipped.setdefault(reason, []).append(rel)
            continue
        context.entries.append(rel)
    return context


def write_context(context: BuildContext, out: BinaryIO) -> int:
    """Write the context as an (uncompressed) tar to ``out``; the bytes written."""
    start = out.tell()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in context.entries:
            _add(tar, os.path.join(context.root, rel), rel)
        if context.dockerfile_source is not None:
            _add(tar, str(context.dockerfile_source), OUTSIDE_DOCKERFILE)
    return out.tell() - start


def _add(tar: tarfile.TarFile, path: str, name: str) -> None:
    info = tar.gettarinfo(path, arcname=name)
    if info is None or not (info.isfile() or info.isdir() or info.issym() or info.islnk()):
        return  # sockets, fifos, devices: nothing a build can use
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isfile():
        with open(path, "rb") as handle:
            tar.addfile(info, handle)
    else:
        tar.addfile(info)


def _inside(real: str, top: str) -> bool:
    return real == top or real.startswith(top.rstrip("/") + "/")
