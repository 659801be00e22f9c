"""The Python an attempt's script runs with, and the ``PATH`` every script sees.

On an instance the interpreter is chosen by :func:`runctl.remote.pythons.choose_python`
(``--python``, a framework Python, the system's python3) and a ``requirements.txt`` (at the code
root, else beside the script) gets its venv (:mod:`runctl.remote.venvs`), unpacked from S3 when
another instance built it already. Under ``runctl local`` the interpreter is this machine's
(``$RUNCTL_PYTHON`` or ``python3``) and no venv is made.

Whatever the script is -- ``.py``, a ``.sh`` wrapper calling ``python3``, ``torchrun`` or
``accelerate launch``, any executable -- it finds the same packages: the venv's ``bin`` comes
first on ``PATH`` (``VIRTUAL_ENV`` names it), then the ``bin`` of the framework environment the
interpreter belongs to (its ``torchrun``). status.json records the interpreter, its version, why
it was chosen and the venv. Python 3.9-safe: this runs on the instance.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runctl.remote.process import JobLog
from runctl.remote.pythons import PythonInfo, PythonNotFound, choose_python, describe_python
from runctl.remote.staging import StagingError
from runctl.remote.venv_cache import VenvStore
from runctl.remote.venvs import BUILT, Venv, VenvPublisher, ensure_venv

LOCAL = "local"
REQUIREMENTS = "requirements.txt"


def find_requirements(workdir: Path, script: str) -> Path | None:
    """``requirements.txt`` at the code root, else beside the script, else None."""
    for directory in (workdir, (workdir / script).parent):
        candidate = directory / REQUIREMENTS
        if candidate.is_file():
            return candidate
    return None


class ScriptPython:
    """Chooses the interpreter, readies the venv, and gives the script its ``PATH``."""

    def __init__(
        self,
        *,
        requested: str | None,
        default: str,
        on_instance: bool,
        venvs_dir: Path | None,
        store: Callable[[], VenvStore | None],
        log: JobLog,
        say: Callable[[str], None],
    ) -> None:
        self.requested = requested
        self.default = default
        self.on_instance = on_instance
        self.venvs_dir = venvs_dir
        self._store = store
        self.log = log
        self.say = say
        self.info: PythonInfo | None = None
        self.venv: Venv | None = None
        self.publisher: VenvPublisher | None = None

    @property
    def python(self) -> str:
        """The interpreter a ``.py`` script is run with."""
        if self.venv is not None:
            return str(self.venv.python)
        return self.info.path if self.info is not None else self.default

    def prepare(
        self, requirements: Path | None, should_stop: Callable[[], bool] = lambda: False
    ) -> None:
        """Choose the interpreter and ready the requirements venv (instance only).

        Raises StagingError when ``--python`` is not there or the venv cannot be made.
        """
        self.info = self._choose()
        if self.info is not None:
            self.say(f"python: {self.info.describe()}")
        if requirements is None or self.venvs_dir is None or should_stop():
            return
        assert self.info is not None
        store = self._store()
        self.say(f"requirements: {requirements.name} for Python {self.info.version}")
        self.venv = ensure_venv(
            requirements, self.info, self.venvs_dir, self.log, store=store, should_stop=should_stop
        )
        self.say(f"venv {self.venv.path}: {self.venv.how} in {self.venv.seconds:.1f}s")
        if self.venv.how == BUILT and store is not None:
            self.publisher = VenvPublisher(self.venv, store, self.say).start()

    def _choose(self) -> PythonInfo | None:
        if not self.on_instance:
            try:
                return describe_python(self.default, LOCAL)
            except PythonNotFound:
                return None  # the script's own start says what is wrong
        try:
            return choose_python(self.requested, self.default, say=self.say)
        except PythonNotFound as exc:
            raise StagingError(str(exc)) from None

    def status_fields(self) -> dict[str, Any]:
        """What status.json says about the script's Python."""
        info = self.info
        return {
            "python": info.path if info else self.default,
            "python_version": info.version if info else None,
            "python_source": info.source if info else LOCAL,
            "venv": str(self.venv.path) if self.venv else None,
        }

    def apply(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with the venv's and the environment's ``bin`` first on ``PATH``."""
        first = []
        if self.venv is not None:
            first.append(str(self.venv.bin))
            env["VIRTUAL_ENV"] = str(self.venv.path)
        environment = self.info.environment_bin if self.info else None
        if environment:
            first.append(environment)
        if first:
            rest = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p not in first]
            env["PATH"] = os.pathsep.join(first + rest)
        return env

    def cancel_upload(self) -> None:
        """Give up the venv upload now (a stop: the final checkpoint needs the bandwidth)."""
        if self.publisher is not None:
            self.publisher.cancelled.set()

    def finish(self, wait: bool) -> None:
        """Let the venv upload end (``wait``), or give it up (a stop: the instance may go)."""
        if self.publisher is None:
            return
        if wait and not self.publisher.done.is_set():
            self.say("waiting for the venv upload to end before the job does")
        self.publisher.finish(wait)
