"""The requirements venv on the instance side: which Python builds it, the framework packages it
keeps visible, and the packed copy in S3 that a second machine unpacks instead of running pip."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runctl.remote.process import JobLog
from runctl.remote.pythons import (
    FRAMEWORK,
    REQUESTED,
    SYSTEM,
    PythonInfo,
    PythonNotFound,
    choose_python,
    describe_python,
)
from runctl.remote.venv_cache import VenvStore, relocate_scripts
from runctl.remote.venvs import (
    BUILT,
    RESTORED,
    REUSED,
    Venv,
    VenvPublisher,
    ensure_venv,
    venv_key,
)
from tests.python_envs import (
    FRAMEWORK_TORCH,
    REQUIREMENTS,
    make_framework_python,
    write_probe_wheel,
)


def _project(root: Path) -> Path:
    """Code with a requirements.txt that installs the probe wheel offline; the requirements."""
    write_probe_wheel(root / "wheels")
    requirements = root / "requirements.txt"
    requirements.write_text(REQUIREMENTS)
    return requirements


def _run(*argv: str | Path) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=True)
    return done.stdout.strip()


# -- choosing the Python ------------------------------------------------------------------------


def test_without_a_framework_python_the_runners_own_python_is_used(tmp_path: Path) -> None:
    info = choose_python(None, sys.executable, root=tmp_path)
    assert info.source == SYSTEM
    assert info.path == sys.executable
    assert info.version == ".".join(str(part) for part in sys.version_info[:3])


def test_a_python_named_with_python_that_is_not_there_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PythonNotFound, match="--python /nope/bin/python does not exist"):
        choose_python("/nope/bin/python", sys.executable, root=tmp_path)
    with pytest.raises(PythonNotFound, match=r"--python no-such-python3\.99"):
        choose_python("no-such-python3.99", sys.executable, root=tmp_path)


def test_a_python_named_with_python_wins_over_a_framework_python(tmp_path: Path) -> None:
    fake = tmp_path / "opt" / "pytorch" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    info = choose_python(sys.executable, "/does/not/matter", root=tmp_path)
    assert (info.path, info.source) == (sys.executable, REQUESTED)


def test_a_broken_framework_python_is_skipped_and_said(tmp_path: Path) -> None:
    broken = tmp_path / "opt" / "pytorch" / "bin" / "python"
    broken.parent.mkdir(parents=True)
    broken.write_text("#!/bin/sh\necho 'libcuda.so: cannot open' >&2\nexit 3\n")
    broken.chmod(0o755)
    said: list[str] = []
    info = choose_python(None, sys.executable, root=tmp_path, say=said.append)
    assert info.source == SYSTEM
    assert said and "libcuda.so: cannot open" in said[0] and str(broken) in said[0]


def test_the_venv_key_follows_requirements_and_python(tmp_path: Path) -> None:
    from runctl.remote.venvs import venv_identity

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.1.0\n")
    python = describe_python(sys.executable, SYSTEM)
    key = venv_key(venv_identity(requirements, python))
    assert key == venv_key(venv_identity(requirements, python))
    other_python = describe_python(sys.executable, SYSTEM)
    object.__setattr__(other_python, "version", "3.12.0")
    assert venv_key(venv_identity(requirements, other_python)) != key
    requirements.write_text("numpy==2.2.0\n")
    assert venv_key(venv_identity(requirements, python)) != key


def test_relocated_scripts_point_at_the_new_venv(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    old = "/opt/runctl/venvs/abc"
    (bin_dir / "short").write_text(f"#!{old}/bin/python\nimport x\n")
    long_exec = f"#!/bin/sh\n'''exec' \"{old}/bin/python\" \"$0\" \"$@\"\n' '''\nimport x\n"
    (bin_dir / "long").write_text(long_exec)
    (bin_dir / "other").write_text("#!/usr/bin/env python3\nprint(1)\n")
    (bin_dir / "short").chmod(0o755)
    changed = relocate_scripts(bin_dir, old, "/new/place")
    assert changed == ["long", "short"]
    assert (bin_dir / "short").read_text() == "#!/new/place/bin/python\nimport x\n"
    assert '"/new/place/bin/python"' in (bin_dir / "long").read_text()
    assert (bin_dir / "short").stat().st_mode & 0o111


# -- building, packing, unpacking (pip runs offline from a local wheel) -------------------------


@pytest.mark.slow
def test_a_framework_pythons_packages_stay_visible_in_the_requirements_venv(
    tmp_path: Path, bare_python: Path
) -> None:
    root = tmp_path / "system"
    framework = make_framework_python(root / "opt" / "pytorch", bare_python / "python3")
    requirements = _project(tmp_path / "code")

    info = choose_python(None, str(bare_python / "python3"), root=root)
    venv = ensure_venv(requirements, info, tmp_path / "venvs", JobLog(tmp_path / "log"))

    assert (info.source, info.path) == (FRAMEWORK, str(framework))
    assert venv.how == BUILT
    code = "import torch, runctl_probe_pkg; print(torch.__version__, torch.__file__)"
    version, where = _run(venv.python, "-c", code).split()
    assert version == FRAMEWORK_TORCH
    assert where.startswith(str(root / "opt" / "pytorch"))
    # pip saw the framework's torch as installed: nothing of it in the venv itself.
    assert not list(venv.path.glob("lib/python3*/site-packages/torch"))


@dataclass
class _Published:
    """A venv built on "machine one" and published to the S3 store."""

    requirements: Path
    python: PythonInfo
    store: VenvStore
    first: Venv
    said: list[str]


def _build_and_publish(tmp_path: Path, bare_python: Path, s3: Any, bucket: str) -> _Published:
    requirements = _project(tmp_path / "code")
    python = describe_python(str(bare_python / "python3"), SYSTEM)
    store = VenvStore(s3, bucket, "runctl/proj/venvs/")
    first_log = JobLog(tmp_path / "first.log")
    first = ensure_venv(requirements, python, tmp_path / "one" / "venvs", first_log, store=store)
    said: list[str] = []
    VenvPublisher(first, store, said.append).start().finish(wait=True)
    return _Published(requirements, python, store, first, said)


@pytest.mark.slow
def test_a_venv_built_on_one_machine_is_unpacked_on_another_without_pip(
    tmp_path: Path, bare_python: Path, s3: Any, bucket: str
) -> None:
    built = _build_and_publish(tmp_path, bare_python, s3, bucket)
    requirements, python, store, first = built.requirements, built.python, built.store, built.first
    assert "uploaded" in built.said[0]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == [
        f"runctl/proj/venvs/{first.key}.json",
        f"runctl/proj/venvs/{first.key}.tar.gz",
    ]

    second_log = tmp_path / "second.log"
    second = ensure_venv(
        requirements, python, tmp_path / "two" / "venvs", JobLog(second_log), store=store
    )

    assert (first.how, second.how, second.key) == (BUILT, RESTORED, first.key)
    assert "-m pip" in (tmp_path / "first.log").read_text()
    assert "-m pip" not in second_log.read_text()  # what the second machine executed
    assert _run(second.bin / "runctl-probe") == "probe 42"  # its #! names the new venv
    assert str(second.path) in _run(second.bin / "pip", "--version")
    again = ensure_venv(
        requirements, python, tmp_path / "two" / "venvs", JobLog(second_log), store=store
    )
    assert again.how == REUSED


@pytest.mark.slow
def test_a_packed_venv_that_does_not_match_its_sha256_is_built_again(
    tmp_path: Path, bare_python: Path, s3: Any, bucket: str
) -> None:
    built = _build_and_publish(tmp_path, bare_python, s3, bucket)
    key = f"runctl/proj/venvs/{built.first.key}.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=b"garbage")

    log = tmp_path / "2"
    second = ensure_venv(
        built.requirements, built.python, tmp_path / "two", JobLog(log), store=built.store
    )

    assert second.how == BUILT
    assert "does not match its sha256" in log.read_text()
    assert _run(second.python, "-c", "import runctl_probe_pkg as p; print(p.VALUE)") == "42"


def test_a_venv_nobody_published_is_no_cache(tmp_path: Path, s3: Any, bucket: str) -> None:
    store = VenvStore(s3, bucket, "runctl/proj/venvs/")
    assert store.fetch("0" * 64, tmp_path / "x.tar.gz") is None
    meta = {"sha256": "0", "venv": "/x", "identity": {}}
    (tmp_path / "a.tar.gz").write_bytes(b"x")
    assert store.publish("k", tmp_path / "a.tar.gz", meta) is True
    body = s3.get_object(Bucket=bucket, Key="runctl/proj/venvs/k.json")["Body"].read()
    assert json.loads(body)["size"] == 1


class _DeniedStore(VenvStore):
    """A store the instance role may not read (as when the bucket policy refuses it)."""

    def fetch(self, key: str, dest: Path) -> dict[str, Any] | None:
        from runctl.errors import AuthError

        raise AuthError(f"AccessDenied: s3:GetObject on {self.uri}{key}.json")


@pytest.mark.slow
def test_a_store_that_cannot_be_read_means_building_the_venv_here(
    tmp_path: Path, bare_python: Path
) -> None:
    requirements = _project(tmp_path / "code")
    python = describe_python(str(bare_python / "python3"), SYSTEM)
    log = tmp_path / "log"
    store = _DeniedStore(None, "bucket", "runctl/proj/venvs/")

    venv = ensure_venv(requirements, python, tmp_path / "venvs", JobLog(log), store=store)

    assert venv.how == BUILT
    assert "cannot be used (AccessDenied" in log.read_text()
