"""Which Python runs a job's script on an instance, and builds its requirements venv.

In order, first match wins (status.json records the choice: ``python``, ``python_version``,
``python_source``):

1. ``--python PATH`` (``JobSpec.python``): an absolute path, or a command name looked up on the
   instance's ``PATH``. The job fails before its script runs when it is not there.
2. A framework Python the AMI ships (:data:`FRAMEWORK_PYTHONS`). The AWS Deep Learning AMIs
   document their Python in each release note (``python_location``): the single-framework
   PyTorch DLAMIs (OSS Nvidia driver; Ubuntu 22.04/24.04 and Amazon Linux 2023; x86_64 and
   ARM64) install PyTorch in a virtual environment at ``/opt/pytorch`` (``/opt/pytorch/bin/
   python``), while the Base DLAMIs list the system ``/usr/bin/python3.X``; the older "Deep
   Learning AMI with Conda" keeps one conda environment per framework
   (``/opt/conda/envs/pytorch``, activated with ``source activate pytorch``). None of them is on
   the ``PATH`` of a non-interactive shell such as the SSM command that starts the runner (the
   AMI's login message tells people to activate them), so the runner looks at those paths
   itself instead of trusting ``python3``. Other environments (TensorFlow, Neuron's
   ``/opt/aws_neuronx_venv_*``, your own) are named with ``--python``.
3. The ``python3`` the runner itself runs on (Base DLAMIs, Amazon Linux, Ubuntu).

The well-known paths are looked up under ``$RUNCTL_SYSTEM_ROOT`` (default ``/``; see
:func:`runctl.job.layout.system_path`), which the test harness points at an instance's sandbox.
Python 3.9-safe, standard library only: this runs on the instance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runctl.job.layout import SYSTEM_ROOT_ENV, system_path

REQUESTED = "--python"
FRAMEWORK = "framework"
SYSTEM = "system"
#: Framework environments of the AWS Deep Learning AMIs, in the order they are tried.
FRAMEWORK_PYTHONS = (
    "/opt/pytorch/bin/python",
    "/opt/conda/envs/pytorch/bin/python",
)
PROBE_TIMEOUT_SECONDS = 60.0

# Run with -I (isolated: no PYTHON* variables, no user site) so the answer is the interpreter's
# own, whatever the runner's environment holds.
_PROBE = """\
import json, site, sys, sysconfig
paths = sysconfig.get_paths()
try:
    sites = list(site.getsitepackages())
except AttributeError:  # an old virtualenv's site module
    sites = []
for key in ("purelib", "platlib"):
    if paths.get(key) and paths[key] not in sites:
        sites.append(paths[key])
print(json.dumps({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "implementation": sys.implementation.name,
    "platform": sysconfig.get_platform(),
    "prefix": sys.prefix,
    "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "site_packages": sites,
}))
"""


class PythonNotFound(Exception):
    """The Python a job asked for is not there, or does not run (the message says which)."""


@dataclass(frozen=True)
class PythonInfo:
    """An interpreter on this machine, as it describes itself, and why it was chosen."""

    path: str
    version: str
    implementation: str
    platform: str
    prefix: str
    base_prefix: str
    site_packages: tuple[str, ...] = ()
    source: str = SYSTEM

    @property
    def environment_bin(self) -> str | None:
        """The ``bin`` directory of the virtualenv or conda environment this interpreter belongs
        to (its console scripts: ``torchrun``, ``accelerate``), or None for a system Python."""
        prefix = Path(self.prefix)
        if (prefix / "pyvenv.cfg").is_file() or (prefix / "conda-meta").is_dir():
            return str(prefix / "bin")
        return None

    def describe(self) -> str:
        return f"{self.path} (Python {self.version}, {self.source})"


def describe_python(path: str, source: str, env: dict[str, str] | None = None) -> PythonInfo:
    """Ask the interpreter at ``path`` what it is; PythonNotFound when it cannot answer."""
    try:
        done = subprocess.run(
            [path, "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PythonNotFound(f"{path} does not run: {exc}") from None
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise PythonNotFound(f"{path} does not run: {detail[0]}")
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise PythonNotFound(f"{path} is not a Python interpreter runctl can use") from None
    return PythonInfo(
        path=path,
        version=str(data["version"]),
        implementation=str(data["implementation"]),
        platform=str(data["platform"]),
        prefix=str(data["prefix"]),
        base_prefix=str(data["base_prefix"]),
        site_packages=tuple(str(p) for p in data["site_packages"]),
        source=source,
    )


def choose_python(
    requested: str | None,
    default: str,
    *,
    root: Path | None = None,
    env: dict[str, str] | None = None,
    say: Callable[[str], None] = lambda message: None,
) -> PythonInfo:
    """The Python for a job (see the module docstring): ``requested`` (``--python``), else the
    first framework Python under ``root`` that runs, else ``default`` (the runner's python3).

    Raises PythonNotFound when ``requested`` is missing or does not run, or when nothing does.
    """
    if requested:
        found = requested if os.path.isabs(requested) else shutil.which(requested)
        if not found or not os.path.exists(found):
            raise PythonNotFound(f"--python {requested} does not exist on this instance")
        return describe_python(found, REQUESTED, env)
    under = None if root is None else {SYSTEM_ROOT_ENV: str(root)}
    for well_known in FRAMEWORK_PYTHONS:
        candidate = system_path(well_known, under)
        if not os.access(str(candidate), os.X_OK):
            continue
        try:
            return describe_python(str(candidate), FRAMEWORK, env)
        except PythonNotFound as exc:  # a broken environment: try the next one
            say(f"skipping framework Python {candidate}: {exc}")
    return describe_python(default, SYSTEM, env)
