"""Which checkpoint files the job's processes write, read from /proc, with real processes: a
script, its children, mappings, and the moment it is signalled or dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runctl.remote.process import JobLog, ScriptProcess
from runctl.remote.writers import WriterWatch, job_processes

HOLDER = """
import mmap, os, subprocess, sys, time
ckpt, elsewhere, ready = sys.argv[1], sys.argv[2], sys.argv[3]
writing = open(os.path.join(ckpt, "model.pt"), "wb")
reading = open(os.path.join(ckpt, "config.json"), "rb")
outside = open(os.path.join(elsewhere, "log.txt"), "wb")
with open(os.path.join(ckpt, "mapped.bin"), "r+b") as f:
    mapped = mmap.mmap(f.fileno(), 4096)  # shared and writable; the descriptor is closed
log = os.path.join(ckpt, "sub", "child.log")
child = subprocess.Popen([sys.executable, "-c",
    "import sys, time; f = open(sys.argv[1], 'ab'); time.sleep(600)", log])
def child_holds():
    fds = f"/proc/{child.pid}/fd"
    real = os.path.realpath(log)
    return any(os.readlink(os.path.join(fds, fd)) == real for fd in os.listdir(fds))
while not child_holds():
    time.sleep(0.01)
open(ready, "w").close()
time.sleep(600)
"""

SAVER = """
import os, signal, sys, time
ckpt, ready, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def save_and_exit(*_):
    with open(os.path.join(ckpt, "model.pt"), "wb") as f:
        f.write(b"complete")
    time.sleep(0.3)  # then winds down (interpreter exit, GPU teardown ...)
    sys.exit(143)
if mode == "handler":
    signal.signal(signal.SIGTERM, save_and_exit)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
f = open(os.path.join(ckpt, "model.pt"), "wb")  # torch.save straight onto the file, no handler
f.write(b"half of the")
f.flush()
if mode == "handler":
    f.close()
open(ready, "w").close()
time.sleep(600)
"""


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    ckpt, elsewhere = tmp_path / "ckpt", tmp_path / "elsewhere"
    (ckpt / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (ckpt / "config.json").write_text("{}")
    (ckpt / "mapped.bin").write_bytes(b"\0" * 4096)
    return ckpt, elsewhere


def _wait_for(path: Path, proc: subprocess.Popen[bytes] | ScriptProcess) -> None:
    while not path.exists():
        assert proc.poll() is None, "the script died before it was ready"
        time.sleep(0.01)


@pytest.fixture
def holder(dirs: tuple[Path, Path], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    ckpt, elsewhere = dirs
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ckpt), str(elsewhere), str(ready)],
        start_new_session=True,
    )
    _wait_for(ready, proc)
    yield proc
    with_group(proc.pid, signal.SIGKILL)
    proc.wait()


def with_group(pid: int, signum: int) -> None:
    import contextlib

    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def test_files_held_for_writing_by_the_script_and_its_children(
    holder: subprocess.Popen[bytes], dirs: tuple[Path, Path]
) -> None:
    ckpt, _ = dirs
    watch = WriterWatch(ckpt, holder.pid)

    held = watch.held()

    assert sorted(held) == ["mapped.bin", "model.pt", "sub/child.log"]
    assert held["model.pt"].endswith(f"(pid {holder.pid}) has it open for writing")
    assert len(job_processes(holder.pid)) == 2


def test_after_a_kill_the_last_look_is_held_against_the_script(
    holder: subprocess.Popen[bytes], dirs: tuple[Path, Path]
) -> None:
    ckpt, _ = dirs
    watch = WriterWatch(ckpt, holder.pid)
    watch.look()
    with_group(holder.pid, signal.SIGKILL)
    holder.wait()
    watch.look()  # gone: a look at nothing says nothing

    watch.ended(trusted=False)

    assert sorted(watch.held()) == ["mapped.bin", "model.pt", "sub/child.log"]
    assert watch.held()["model.pt"].endswith("had it open for writing when the script ended")
    trusting = WriterWatch(ckpt, holder.pid)
    trusting.ended(trusted=True)
    assert trusting.held() == {}


def _script(tmp_path: Path, ckpt: Path, mode: str) -> tuple[ScriptProcess, WriterWatch]:
    ready = tmp_path / f"ready-{mode}"
    argv = [sys.executable, "-c", SAVER, str(ckpt), str(ready), mode]
    log = JobLog(tmp_path / f"{mode}.log")
    process = ScriptProcess(argv, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, log=log)
    _wait_for(ready, process)
    return process, WriterWatch(ckpt, process.pid)


def test_sigterm_finds_the_script_mid_write(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    ckpt, _ = dirs
    process, watch = _script(tmp_path, ckpt, "no-handler")

    code = process.terminate(5.0, observer=watch)
    watch.ended(trusted=False)

    assert code == -signal.SIGTERM
    assert list(watch.held()) == ["model.pt"]


def test_a_script_that_saves_on_sigterm_and_closes_is_trusted(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    ckpt, _ = dirs
    process, watch = _script(tmp_path, ckpt, "handler")

    code = process.terminate(5.0, observer=watch)
    watch.ended(trusted=False)

    assert code == 143
    assert watch.held() == {}
    assert (ckpt / "model.pt").read_bytes() == b"complete"


def test_sigkill_after_the_grace_period_finds_the_script_mid_write(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    ckpt, _ = dirs
    process, watch = _script(tmp_path, ckpt, "stubborn")
    stranger = subprocess.Popen(  # not the job's: its files are none of the job's business
        [sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'wb'); time.sleep(600)",
         str(ckpt / "other.pt")],
    )  # fmt: skip
    try:
        _wait_for_fd(stranger.pid, ckpt / "other.pt")
        code = process.terminate(0.2, observer=watch)
        watch.ended(trusted=False)
    finally:
        stranger.kill()
        stranger.wait()

    assert code == -signal.SIGKILL
    assert list(watch.held()) == ["model.pt"]


def _wait_for_fd(pid: int, path: Path) -> None:
    fds = Path(f"/proc/{pid}/fd")
    while not any(os.readlink(fd) == str(path.resolve()) for fd in fds.iterdir()):
        time.sleep(0.01)
