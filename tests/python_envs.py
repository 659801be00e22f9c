"""Python environments for tests: a wheel pip installs offline, and a "framework Python".

``write_probe_wheel``: a hand-made pure-Python wheel, ``runctl_probe_pkg-1.0``, holding
``runctl_probe_pkg`` (``VALUE = 42``) and a console script ``runctl-probe`` that prints ``probe 42``
(what a requirements venv's ``bin`` holds for ``torchrun`` or ``accelerate``).

``make_framework_python``: what a Deep Learning AMI's ``/opt/pytorch`` is -- a virtualenv with
the framework installed in it -- made from a bare python3, with a stand-in ``torch`` package
(``torch.__version__ == FRAMEWORK_TORCH``) in its site-packages.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

NAME = "runctl_probe_pkg-1.0-py3-none-any.whl"
#: A requirements.txt that installs it from ``wheels/`` beside itself, with no index.
REQUIREMENTS = "--no-index\n--find-links wheels\nrunctl-probe-pkg==1.0\n"


def write_probe_wheel(directory: Path) -> Path:
    """Write the wheel into ``directory``; its path."""
    info = "runctl_probe_pkg-1.0.dist-info"
    files = {
        "runctl_probe_pkg/__init__.py": (
            b"VALUE = 42\n\n\ndef main():\n    print('probe', VALUE)\n"
        ),
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: runctl-probe-pkg\nVersion: 1.0\n",
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{info}/entry_points.txt": b"[console_scripts]\nrunctl-probe = runctl_probe_pkg:main\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / NAME
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


FRAMEWORK_TORCH = "2.5.1+dlami"


def make_framework_python(prefix: Path, base_python: Path) -> Path:
    """A virtualenv at ``prefix`` made by ``base_python`` with a stand-in ``torch``; its python."""
    subprocess.run([str(base_python), "-m", "venv", "--without-pip", str(prefix)], check=True)
    (site,) = prefix.glob("lib/python3*/site-packages")
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text(f"__version__ = {FRAMEWORK_TORCH!r}\n")
    (site / "torch-2.5.1.dist-info").mkdir()
    (site / "torch-2.5.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1\n"
    )
    (prefix / "bin" / "torchrun").write_text(f"#!{prefix}/bin/python\nprint('torchrun here')\n")
    (prefix / "bin" / "torchrun").chmod(0o755)
    return prefix / "bin" / "python"
