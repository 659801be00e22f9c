"""The requirements venv: built once per (requirements.txt, Python), reused on every instance.

A job whose code has a ``requirements.txt`` runs in a venv made from the job's Python
(:mod:`runctl.remote.pythons`) with ``--system-site-packages``, so what that Python's
installation provides stays importable. A framework Python is often itself a virtualenv (a
DLAMI's ``/opt/pytorch``); a venv made from it sees the *base* interpreter's site-packages, not
``/opt/pytorch``'s, so a ``.pth`` file in the new venv adds the framework environment's
site-packages after its own: the AMI's torch is importable, pip counts it as installed (a
``torch`` line does not download it again), and a version pinned in requirements.txt wins.

The venv's **key** is the sha256 of its identity: requirements.txt's sha256, the interpreter's
path, version, implementation and platform, and the distributions its site-packages already hold.
It lives in ``<root>/venvs/<key>/`` (complete once ``.runctl-complete`` is written). When it is
not on this machine, a packed copy from S3 is unpacked (:mod:`runctl.remote.venv_cache`) instead
of running pip; only when there is none is it built with pip, and then packed and uploaded in the
background for the next instance. pip's output goes to the job log, and pip reads its usual
environment and configuration (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``pip.conf``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runctl.errors import RunctlError
from runctl.remote.process import JobLog, run_logged
from runctl.remote.pythons import PythonInfo, PythonNotFound, describe_python
from runctl.remote.staging import StagingError, helper_env, sha256_of
from runctl.remote.venv_cache import VenvStore, pack_venv, unpack_venv

VENV_MARKER = ".runctl-complete"
BASE_PTH = "_runctl_framework.pth"
IDENTITY_FORMAT = 1
BUILT = "built"
RESTORED = "restored"
REUSED = "reused"


@dataclass(frozen=True)
class Venv:
    """A ready requirements venv: where it is, its key, and how it came to be here."""

    path: Path
    key: str
    how: str
    seconds: float
    identity: dict[str, object]

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.path / "bin"


def venv_identity(requirements: Path, python: PythonInfo) -> dict[str, object]:
    """What a venv built from ``requirements`` on ``python`` depends on."""
    return {
        "format": IDENTITY_FORMAT,
        "requirements_sha256": sha256_of(requirements),
        "python": python.path,
        "version": python.version,
        "implementation": python.implementation,
        "platform": python.platform,
        "base_packages": _installed_digest(python.site_packages),
    }


def venv_key(identity: dict[str, object]) -> str:
    """The content address of a venv: the sha256 of its identity."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _installed_digest(site_packages: tuple[str, ...]) -> str:
    """A digest of the distributions (name and version) in ``site_packages``."""
    names: list[str] = []
    for directory in site_packages:
        try:
            listed = os.listdir(directory)
        except OSError:
            continue
        names.extend(n for n in listed if n.endswith((".dist-info", ".egg-info")))
    return hashlib.sha256("\n".join(sorted(names)).encode("utf-8")).hexdigest()


def ensure_venv(
    requirements: Path,
    python: PythonInfo,
    venvs_dir: Path,
    log: JobLog,
    *,
    store: VenvStore | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Venv:
    """A venv with ``requirements`` installed for ``python``: the one already here, else the one
    packed in ``store``, else a new one built with pip.

    Raises StagingError naming the step that failed (venv creation, pip).
    """
    started = time.monotonic()
    identity = venv_identity(requirements, python)
    key = venv_key(identity)
    venv = venvs_dir / key
    if (venv / VENV_MARKER).is_file() and (venv / "bin" / "python").exists():
        log.note(f"venv {key[:12]}: already on this instance ({venv})")
        return Venv(venv, key, REUSED, time.monotonic() - started, identity)
    venvs_dir.mkdir(parents=True, exist_ok=True)
    if store is not None and _restore(store, key, venv, python, log, should_stop):
        seconds = time.monotonic() - started
        log.note(f"venv {key[:12]}: unpacked from {store.uri} in {seconds:.1f}s; pip not run")
        return Venv(venv, key, RESTORED, seconds, identity)
    build_venv(requirements, python, venv, log, should_stop=should_stop)
    (venv / VENV_MARKER).write_text(json.dumps(identity, sort_keys=True) + "\n")
    return Venv(venv, key, BUILT, time.monotonic() - started, identity)


def _restore(
    store: VenvStore,
    key: str,
    venv: Path,
    python: PythonInfo,
    log: JobLog,
    should_stop: Callable[[], bool],
) -> bool:
    """Unpack the packed venv ``key`` from ``store`` into ``venv``; False when there is none or
    it cannot be used (the caller builds it then)."""
    archive = venv.with_name(venv.name + ".tar.gz")
    try:
        meta = store.fetch(key, archive)
        if meta is None or should_stop():
            return False
        shutil.rmtree(venv, ignore_errors=True)
        _create(python.path, venv, log, should_stop, with_pip=False)
        unpack_venv(archive, venv, packed_from=str(meta["venv"]))
        (venv / VENV_MARKER).write_text(json.dumps(meta["identity"], sort_keys=True) + "\n")
        return True
    except (RunctlError, StagingError, OSError, ValueError, KeyError) as exc:
        # S3 refusing or missing the archive, or an archive that does not fit: build it instead.
        log.note(f"venv {key[:12]}: the packed copy in {store.uri} cannot be used ({exc})")
        shutil.rmtree(venv, ignore_errors=True)
        return False
    finally:
        archive.unlink(missing_ok=True)


def build_venv(
    requirements: Path,
    python: PythonInfo,
    venv: Path,
    log: JobLog,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Create ``venv`` from ``python``, see its framework packages, pip install requirements."""
    shutil.rmtree(venv, ignore_errors=True)
    _create(python.path, venv, log, should_stop, with_pip=True)
    if python.prefix != python.base_prefix and python.site_packages:
        _add_base_site_packages(venv, python)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    code = run_logged(
        [*pip, "-r", str(requirements)],
        log=log,
        env=helper_env(),
        cwd=requirements.parent,
        should_stop=should_stop,
    )
    if code != 0:
        raise StagingError(f"pip install -r requirements.txt failed (exit {code}); see the log")


def _create(
    python: str, venv: Path, log: JobLog, should_stop: Callable[[], bool], *, with_pip: bool
) -> None:
    """``python -m venv --system-site-packages``; without pip when ``with_pip`` is false or
    when ensurepip is missing (Debian without python3-venv: the system's pip is still visible
    through --system-site-packages)."""
    base = [python, "-m", "venv", "--system-site-packages"]
    bare = [*base, "--without-pip", str(venv)]
    code = 0
    for argv in ([*base, str(venv)], bare) if with_pip else (bare,):
        code = run_logged(argv, log=log, env=helper_env(), should_stop=should_stop)
        if code == 0:
            return
        shutil.rmtree(venv, ignore_errors=True)
    raise StagingError(f"could not create a venv with {python} (exit {code})")


def _add_base_site_packages(venv: Path, python: PythonInfo) -> None:
    """Make the framework environment's packages importable after the venv's own."""
    try:
        own = describe_python(str(venv / "bin" / "python"), "venv")
    except PythonNotFound as exc:
        raise StagingError(f"the new venv {venv} does not run: {exc}") from None
    lines = [p for p in python.site_packages if p not in own.site_packages]
    if own.site_packages and lines:
        Path(own.site_packages[0], BASE_PTH).write_text("\n".join(lines) + "\n")


class VenvPublisher:
    """Packs a venv built here and uploads it to the store, in the background, for the next
    instance; a publish that fails only costs that instance a pip run."""

    def __init__(self, venv: Venv, store: VenvStore, say: Callable[[str], None]) -> None:
        self.venv = venv
        self.store = store
        self.say = say
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="runctl-venv", daemon=True)

    def start(self) -> VenvPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        archive = self.venv.path.with_name(self.venv.path.name + ".packing.tar.gz")
        try:
            started = time.monotonic()
            digest, size = pack_venv(self.venv.path, archive)
            meta = {"identity": self.venv.identity, "venv": str(self.venv.path), "sha256": digest}
            if self.store.publish(self.venv.key, archive, meta, stop=self.cancelled.is_set):
                seconds = time.monotonic() - started
                self.say(
                    f"venv {self.venv.key[:12]}: packed and uploaded to {self.store.uri} "
                    f"({size / 1e6:.1f} MB in {seconds:.1f}s) for the next instance"
                )
        except Exception as exc:  # never the job's failure: the next instance builds it again
            self.say(f"venv {self.venv.key[:12]}: not uploaded ({type(exc).__name__}: {exc})")
        finally:
            archive.unlink(missing_ok=True)
            self.done.set()

    def finish(self, wait: bool, timeout: float = 600.0) -> None:
        """Wait for the upload (``wait``), or give it up."""
        if not wait:
            self.cancelled.set()
        self._thread.join(timeout=timeout if wait else 5.0)
