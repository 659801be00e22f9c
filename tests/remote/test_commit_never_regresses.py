"""A commit never makes the checkpoint worse: files held for writing, files changing while read,
files not uploaded before a deadline keep their last committed version; and what a killed
commit left unfinished in S3 is aborted by the next one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from runctl.job.checkpoints import NOT_UPLOADED, commit_checkpoint, restore_checkpoint
from runctl.job.manifests import list_manifests
from runctl.job.s3store import S3Store
from runctl.job.snapshot import Unstable, copy_and_hash, snapshot_file
from runctl.job.stores import CheckpointStore, LocalStore
from runctl.remote.sync import CheckpointSync
from runctl.remote.writers import WriterWatch
from tests.remote.test_checkpoints import Recording

REWRITER = """
import os, sys
path, ready = sys.argv[1], sys.argv[2]
block = os.urandom(1 << 20)
n = 0
while True:
    with open(path, "r+b") as f:  # in place: truncate, then write it again
        f.truncate(0)
        for _ in range(8):
            f.write(block)
    n += 1
    if n == 2:
        open(ready, "w").close()
"""
SCRIBBLER = """
import os, sys
path, ready = sys.argv[1], sys.argv[2]
size = 64 << 20
with open(path, "r+b") as f:
    f.truncate(size)
    open(ready, "w").close()
    offset = 0
    while True:  # the file never holds still (and never grows)
        os.pwrite(f.fileno(), os.urandom(4096), offset)
        offset = (offset + (1 << 20)) % size
"""


def _write(directory: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _restored(store: CheckpointStore, tmp_path: Path, name: str) -> dict[str, bytes]:
    target = tmp_path / name
    assert restore_checkpoint(store, target) is not None
    return {p.name: p.read_bytes() for p in target.iterdir()}


def test_a_file_held_for_writing_keeps_its_last_committed_version(
    store: CheckpointStore, tmp_path: Path
) -> None:
    source = tmp_path / "ckpt"
    _write(source, {"model.pt": b"good weights", "step.json": b"1"})
    assert commit_checkpoint(store, source, job_id="j", attempt=0).created
    _write(source, {"model.pt": b"", "step.json": b"2", "new.pt": b"half"})
    messages: list[str] = []
    writing = {"model.pt": "python (pid 7) has it open", "new.pt": "python (pid 7) has it open"}

    result = commit_checkpoint(
        store, source, job_id="j", attempt=0, busy=lambda: writing, log=messages.append
    )

    assert result.created
    assert result.carried == {"model.pt": writing["model.pt"]}
    assert result.left_out == {"new.pt": writing["new.pt"]}
    assert _restored(store, tmp_path, "r") == {"model.pt": b"good weights", "step.json": b"2"}
    assert any("keeping model.pt at its last committed version" in m for m in messages)
    assert any("leaving new.pt out" in m for m in messages)


def test_no_manifest_when_only_held_files_changed(store: CheckpointStore, tmp_path: Path) -> None:
    source = tmp_path / "ckpt"
    _write(source, {"model.pt": b"good weights"})
    first = commit_checkpoint(store, source, job_id="j", attempt=0).manifest
    _write(source, {"model.pt": b"torn"})

    again = commit_checkpoint(
        store, source, job_id="j", attempt=0, busy=lambda: {"model.pt": "held"}
    )

    assert not again.created and again.manifest == first
    assert [r.id for r in list_manifests(store)] == [first.id if first else ""]


def test_a_writer_that_starts_during_the_read_is_caught_by_the_second_look(
    store: CheckpointStore, tmp_path: Path
) -> None:
    source = tmp_path / "ckpt"
    _write(source, {"model.pt": b"v1"})
    commit_checkpoint(store, source, job_id="j", attempt=0)
    _write(source, {"model.pt": b"v2, being written"})
    looks = iter([{}, {"model.pt": "opened meanwhile"}])

    result = commit_checkpoint(store, source, job_id="j", attempt=0, busy=lambda: next(looks))

    assert not result.created and result.carried == {"model.pt": "opened meanwhile"}


def _start_writer(path: Path, tmp_path: Path, program: str = REWRITER) -> subprocess.Popen[bytes]:
    ready = tmp_path / "ready"
    path.write_bytes(b"")
    proc = subprocess.Popen([sys.executable, "-c", program, str(path), str(ready)])
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError("the writer died")
        time.sleep(0.01)
    return proc


def test_a_file_rewritten_in_place_all_the_time_is_never_taken_torn(
    store: CheckpointStore, tmp_path: Path
) -> None:
    source = tmp_path / "ckpt"
    _write(source, {"model.pt": b"committed before", "step.json": b"1"})
    commit_checkpoint(store, source, job_id="j", attempt=0)
    _write(source, {"step.json": b"2"})
    rewriter = _start_writer(source / "model.pt", tmp_path)
    try:
        watch = WriterWatch(source, rewriter.pid)
        result = commit_checkpoint(store, source, job_id="j", attempt=0, busy=watch.held)
    finally:
        rewriter.kill()
        rewriter.wait()

    assert result.created
    assert "has it open for writing" in result.carried["model.pt"]
    files = _restored(store, tmp_path, "r")
    assert files == {"model.pt": b"committed before", "step.json": b"2"}


def test_snapshot_of_a_changing_file_gives_up_after_rereading(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    rewriter = _start_writer(path, tmp_path, SCRIBBLER)
    pauses: list[float] = []
    try:
        with pytest.raises(Unstable, match="changed each"):
            snapshot_file(path, tmp_path / "copy", sleep=pauses.append)
    finally:
        rewriter.kill()
        rewriter.wait()
    steady = tmp_path / "steady"
    steady.write_bytes(b"abc" * 1000)
    taken = copy_and_hash(steady, tmp_path / "copy2")

    assert pauses == [0.01, 0.05, 0.2]
    assert not (tmp_path / "copy").exists()
    assert taken is not None and taken.copy.read_bytes() == steady.read_bytes()


class Deadline(Recording):
    """Uploads ``allowed`` blobs, then the deadline has passed."""

    def __init__(self, inner: CheckpointStore, allowed: int) -> None:
        super().__init__(inner)
        self.allowed = allowed
        self.passed = False

    def upload(
        self, items: Sequence[tuple[Path, str]], *, stop: Callable[[], bool] | None = None
    ) -> Sequence[str]:
        done = []
        for item in items:
            if len(self.uploaded) >= self.allowed:
                self.passed = True
            if stop is not None and stop():
                break
            done.extend(super().upload([item], stop=stop))
        return done


def test_files_not_uploaded_before_the_deadline_keep_their_committed_version(
    store: CheckpointStore, tmp_path: Path
) -> None:
    source = tmp_path / "ckpt"
    _write(source, {"a.pt": b"a1", "b.pt": b"b1", "c.pt": b"c1"})
    commit_checkpoint(store, source, job_id="j", attempt=0)
    _write(source, {"a.pt": b"a2", "b.pt": b"b2", "c.pt": b"c2", "d.pt": b"d2"})
    late = Deadline(store, allowed=1)
    messages: list[str] = []

    result = commit_checkpoint(
        late, source, job_id="j", attempt=1, stop=lambda: late.passed, log=messages.append
    )

    assert result.created and result.uploaded_files == 1
    assert result.carried == {"b.pt": NOT_UPLOADED, "c.pt": NOT_UPLOADED}
    assert result.left_out == {"d.pt": NOT_UPLOADED}
    assert _restored(store, tmp_path, "r") == {"a.pt": b"a2", "b.pt": b"b1", "c.pt": b"c1"}
    assert sum("did not finish before the commit's deadline" in m for m in messages) == 3


def test_restore_from_a_chosen_checkpoint_and_below_one(
    store: CheckpointStore, tmp_path: Path
) -> None:
    source = tmp_path / "ckpt"
    ids = []
    for step in range(1, 5):
        _write(source, {"model": f"step {step}".encode()})
        manifest = commit_checkpoint(store, source, job_id="j", attempt=0).manifest
        assert manifest is not None
        ids.append(manifest.id)
    store.delete(["blobs/" + _sha(b"step 2")])
    skipped: list[tuple[str, str]] = []

    chosen = restore_checkpoint(store, tmp_path / "a", start=ids[2])
    below = restore_checkpoint(store, tmp_path / "b", below=3, on_skip=lambda *s: skipped.append(s))
    strict = restore_checkpoint(store, tmp_path / "c", start=ids[1], fallback=False)

    assert chosen is not None and chosen.id == ids[2]
    assert (tmp_path / "a" / "model").read_bytes() == b"step 3"
    assert below is not None and below.id == ids[0]
    assert skipped == [(ids[1], f"blob of model ({_sha(b'step 2')[:12]}) is missing")]
    assert strict is None


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_the_first_commit_aborts_what_a_killed_commit_left_unfinished(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    prefix = "runctl/p/jobs/j/checkpoints/"
    left = s3.create_multipart_upload(Bucket=bucket, Key=f"{prefix}blobs/{'0' * 64}")
    s3.upload_part(
        Bucket=bucket, Key=left["Key"], UploadId=left["UploadId"], PartNumber=1, Body=b"x" * 10
    )
    other = s3.create_multipart_upload(Bucket=bucket, Key="runctl/p/jobs/other/blobs/1")
    store = S3Store(s3, f"s3://{bucket}/{prefix}")
    source = tmp_path / "ckpt"
    _write(source, {"model": b"weights"})
    said: list[str] = []
    sync = CheckpointSync(
        lambda: store, source, job_id="j", attempt=1, keep_last_n=3, say=said.append, note=print
    )

    first = sync.commit()
    _write(source, {"model": b"weights 2"})
    second = sync.commit()

    assert first is not None and first.created and second is not None and second.created
    pending = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["UploadId"] for u in pending] == [other["UploadId"]]
    aborted = [m for m in said if "unfinished upload" in m]
    assert aborted == [f"aborted 1 unfinished upload(s) an earlier commit left: blobs/{'0' * 64}"]


def test_staging_a_killed_commit_left_is_removed_by_the_next(tmp_path: Path) -> None:
    source = tmp_path / "ckpt"
    _write(source, {"model": b"weights"})
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = source / f".runctl-snapshot-{gone.pid}"
    _write(stale, {"0": b"a copy of a big file" * 1000})
    alive = source / f".runctl-snapshot-{os.getppid()}"  # someone else's, still running
    _write(alive, {"0": b"in use"})

    result = commit_checkpoint(LocalStore(tmp_path / "store"), source, job_id="j", attempt=0)

    assert result.created and result.manifest is not None
    assert [f.path for f in result.manifest.files] == ["model"]
    assert not stale.exists() and alive.exists()
    assert sorted(p.name for p in source.iterdir()) == [alive.name, "model"]
