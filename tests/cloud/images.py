"""Docker images for the tests, built without a network: ``FROM scratch`` plus files of this host.

No image can be pulled here, so the tests build their own bases in the ``dockerd`` fixture:

``busybox`` (:data:`BUSYBOX_IMAGE`)
    A static busybox (apt ``busybox-static``) as ``/bin/busybox`` with ``/bin/sh`` and the other
    applets linked to it: a container with a shell, for ``RUN`` lines.
``python`` (:data:`PYTHON_IMAGE`)
    The busybox image plus the interpreter running the tests: its binary (at the path it has here,
    so it finds its standard library as it does here), ``python3``/``python`` on ``PATH``, the
    standard library without ``site-packages``, tests, IDLE and tkinter, and every shared library
    the binary and its extension modules load (from ``ldd``). Enough for runctl's example
    training scripts (standard library only).

:func:`build_base_images` builds both once per session (the ``docker_images`` fixture).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.cloud.services import DockerDaemon

BUSYBOX_IMAGE = "runctl-test/busybox:1"
PYTHON_IMAGE = "runctl-test/python:1"
BUSYBOX = "/usr/bin/busybox"
#: Not needed by a training script, and large (or, for tkinter, linked to X11).
STDLIB_SKIP = frozenset(
    {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
     "__pycache__", "pydoc_data"}
)  # fmt: skip


@dataclass(frozen=True)
class BaseImages:
    """The tags of the test base images in the test dockerd."""

    busybox: str = BUSYBOX_IMAGE
    python: str = PYTHON_IMAGE


def _copy(source: Path, root: Path) -> None:
    """Copy ``source`` into ``root`` at its absolute path (symlinks resolved to files)."""
    target = root / source.as_posix().lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source.resolve(), target)


def _libraries(binary: Path) -> set[Path]:
    """The shared libraries ``binary`` loads (``ldd``), the loader included."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False).stdout
    found = set()
    for line in out.splitlines():
        parts = line.split()
        for part in parts:
            if part.startswith("/"):
                found.add(Path(part))
                break
    return found


def busybox_context(root: Path) -> Path:
    """A build context for the busybox image."""
    if not Path(BUSYBOX).exists():
        raise FileNotFoundError(f"{BUSYBOX} is missing: install busybox-static (.ci/services.sh)")
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "busybox")
    (root / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "ENV PATH=/usr/local/bin:/usr/bin:/bin\n"
        'CMD ["/bin/sh"]\n'
    )
    return root


def python_context(root: Path) -> Path:
    """A build context for the python image: this interpreter and what it needs."""
    files = root / "files"
    binary = Path(os.path.realpath(sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    libraries = _libraries(binary)
    _copy(binary, files)
    for directory, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = [d for d in dirnames if d not in STDLIB_SKIP]
        for name in filenames:
            path = Path(directory) / name
            if name.startswith("_tkinter") or name.endswith((".pyc", ".a")):
                continue
            _copy(path, files)
            if name.endswith(".so"):
                libraries |= _libraries(path)
    for library in libraries:
        _copy(library, files)
    (root / "Dockerfile").write_text(
        f"FROM {BUSYBOX_IMAGE}\n"
        "COPY files/ /\n"
        f"RUN mkdir -p /usr/bin && ln -s {binary} /usr/bin/python3 "
        f"&& ln -s {binary} /usr/bin/python\n"
        "ENV PYTHONDONTWRITEBYTECODE=1\n"
    )
    return root


def build_base_images(dockerd: DockerDaemon, workdir: Path) -> BaseImages:
    """Build the busybox and python images in ``dockerd`` (fast when they exist already)."""
    images = BaseImages()
    dockerd.docker("build", "-q", "-t", images.busybox, str(busybox_context(workdir / "busybox")))
    dockerd.docker("build", "-q", "-t", images.python, str(python_context(workdir / "python")))
    return images
