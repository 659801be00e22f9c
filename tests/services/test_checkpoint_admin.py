"""Checkpoint administration services on local stores and directories (no AWS)."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from runctl.errors import NotFoundError, UsageError, WrongStateError
from runctl.job.checkpoints import commit_checkpoint
from runctl.job.spec import CheckpointSettings, JobLocation, JobSpec, JobStatus
from runctl.job.stores import LocalStore
from runctl.services.checkpoints.admin import (
    checkpoint_info,
    cleanup_checkpoints,
    find_manifest,
    job_of_store,
    list_checkpoints,
    open_target,
)
from runctl.services.checkpoints.resume import (
    ResumePlan,
    plan_resume,
    resume_here,
    resume_on_instance,
)
from runctl.services.jobs.start import ensure_not_running

LATER = datetime.now(UTC) + timedelta(hours=2)


def _no_s3() -> Any:
    raise AssertionError("a local target must not need S3")


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def _commit(store: LocalStore, source: Path, steps: int, job_id: str = "job-1") -> list[str]:
    """``steps`` commits (newest id first) of a changing model beside a constant config."""
    ids = []
    source.mkdir(exist_ok=True)
    for step in range(steps):
        (source / "model.bin").write_bytes(f"step {step}".encode())
        (source / "config.json").write_text("{}")
        manifest = commit_checkpoint(store, source, job_id=job_id, attempt=step % 2).manifest
        assert manifest is not None
        ids.append(manifest.id)
    return ids[::-1]


def test_job_of_store_names_the_job_only_for_its_checkpoints_prefix() -> None:
    job = job_of_store("s3://b/runctl/p/jobs/p-20250101-000000-abcd/checkpoints/")
    assert job == JobLocation("b", "p", "p-20250101-000000-abcd")
    assert job_of_store("s3://b/runctl/p/jobs/p-1/outputs/") is None
    assert job_of_store("s3://b/elsewhere/checkpoints/") is None


def test_open_target_tells_stores_from_plain_directories(store: LocalStore, tmp_path: Path) -> None:
    _commit(store, tmp_path / "src", 1)
    plain = tmp_path / "plain"
    plain.mkdir()
    (tmp_path / "file").write_text("x")

    opened = open_target(str(store.root), _no_s3)
    as_dir = open_target(str(plain), _no_s3)

    assert opened.store is not None and opened.directory is None
    assert as_dir.store is None and as_dir.directory == plain
    for missing in (tmp_path / "nope", tmp_path / "file"):
        with pytest.raises(NotFoundError):
            open_target(str(missing), _no_s3)


def test_list_is_newest_first_and_skips_unreadable_manifests(
    store: LocalStore, tmp_path: Path
) -> None:
    ids = _commit(store, tmp_path / "src", 3)
    store.write("manifests/00000009-20250101T000000Z-a0.json", b"{not json")

    listing = list_checkpoints(open_target(str(store.root), _no_s3))

    assert [e.id for e in listing.entries] == ids
    assert [e.attempt for e in listing.entries] == [0, 1, 0]
    assert all(e.file_count == 2 and e.total_size == 8 for e in listing.entries)
    assert listing.unreadable == ["00000009-20250101T000000Z-a0"]
    assert listing.is_store


def test_plain_directory_is_one_uncommitted_entry(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "sub").mkdir(parents=True)
    (plain / "sub" / "a.pt").write_bytes(b"abc")
    (plain / "b.pt.tmp").write_bytes(b"unfinished")
    target = open_target(str(plain), _no_s3)

    listing = list_checkpoints(target)
    detail = checkpoint_info(target)

    assert [(e.id, e.committed, e.file_count, e.total_size) for e in listing.entries] == [
        (None, False, 1, 3)
    ]
    assert [f.path for f in listing.files or []] == ["sub/a.pt"]
    assert [(f.path, f.size) for f in detail.files] == [("sub/a.pt", 3)]
    assert detail.files[0].modified is not None
    with pytest.raises(UsageError):
        checkpoint_info(target, "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert list_checkpoints(open_target(str(empty), _no_s3)).entries == []
    with pytest.raises(NotFoundError):
        checkpoint_info(open_target(str(empty), _no_s3))


def test_find_manifest_by_id_sequence_or_unique_prefix(store: LocalStore, tmp_path: Path) -> None:
    ids = _commit(store, tmp_path / "src", 2)

    assert find_manifest(store, ids[1]).id == ids[1]
    assert find_manifest(store, "2").id == ids[0]
    assert find_manifest(store, ids[0][:9]).id == ids[0]
    with pytest.raises(NotFoundError, match="several"):
        find_manifest(store, "0000000")
    with pytest.raises(NotFoundError, match="does not exist") as missing:
        find_manifest(store, "7")
    assert ids[0] in (missing.value.hint or "")


def test_info_defaults_to_the_newest_and_an_empty_store_has_none(
    store: LocalStore, tmp_path: Path
) -> None:
    ids = _commit(store, tmp_path / "src", 2)
    (tmp_path / "empty" / "blobs").mkdir(parents=True)

    detail = checkpoint_info(open_target(str(store.root), _no_s3))

    assert detail.entry.id == ids[0]
    assert {f.path for f in detail.files} == {"model.bin", "config.json"}
    assert list(detail.to_dict()["files"][0]) == ["path", "size", "sha256", "modified"]
    with pytest.raises(NotFoundError, match="no committed checkpoint"):
        checkpoint_info(open_target(str(tmp_path / "empty"), _no_s3))


def test_cleanup_dry_run_deletes_nothing_and_young_blobs_are_deferred(
    store: LocalStore, tmp_path: Path
) -> None:
    ids = _commit(store, tmp_path / "src", 4)
    target = open_target(str(store.root), _no_s3)
    before = sorted(store.list(""))

    preview = cleanup_checkpoints(target, 2, dry_run=True)
    assert sorted(store.list("")) == before
    young = cleanup_checkpoints(target, 2, dry_run=False)
    old = cleanup_checkpoints(target, 2, dry_run=False, now=LATER)

    assert (preview.deleted_manifests, preview.deleted_blobs, preview.deferred_blobs) == (
        ids[2:],
        0,
        2,
    )
    assert young.deleted_manifests == ids[2:] and young.deferred_blobs == 2
    assert (old.deleted_blobs, old.deferred_blobs, old.kept) == (2, 0, ids[:2])
    assert len(store.list("blobs/")) == 3


def test_cleanup_refuses_plain_directories_and_keeping_nothing(
    store: LocalStore, tmp_path: Path
) -> None:
    _commit(store, tmp_path / "src", 1)
    with pytest.raises(UsageError, match="plain checkpoint directory"):
        cleanup_checkpoints(open_target(str(tmp_path / "src"), _no_s3), 1, dry_run=True)
    with pytest.raises(UsageError):
        cleanup_checkpoints(open_target(str(store.root), _no_s3), 0, dry_run=True)


def _local_job(project: Path, store: Path, script: str, status: JobStatus | None) -> JobSpec:
    """A ``runctl local`` job of ``project`` committing to ``store`` (relative checkpoints)."""
    spec = JobSpec(
        job_id="demo-20250101-000000-abcd",
        project="demo",
        script=script,
        args=["--from-job"],
        env={"FROM_JOB": "yes"},
        checkpoint_s3=str(store),
        checkpoint=CheckpointSettings(dir="checkpoints", sync_interval_seconds=60),
    )
    job_dir = project / ".runctl" / "jobs" / spec.job_id
    job_dir.mkdir(parents=True)
    (job_dir / "job.json").write_text(spec.to_json())
    if status is not None:
        (job_dir / "status.json").write_text(status.to_json())
    return spec


def test_plan_resume_finds_a_local_job_by_the_manifest_job_id(
    store: LocalStore, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    status = JobStatus(job_id="demo-20250101-000000-abcd", state="failed", attempt=2)
    spec = _local_job(project, store.root, "train.py", status)
    ids = _commit(store, tmp_path / "src", 1, job_id=spec.job_id)
    target = open_target(str(store.root), _no_s3)

    plan = plan_resume(target, cwd=project / "sub", s3_client=_no_s3)

    assert (plan.spec.job_id, plan.manifest.id, plan.next_attempt) == (spec.job_id, ids[0], 3)
    with pytest.raises(NotFoundError, match=r"job\.json"):
        plan_resume(target, cwd=tmp_path / "elsewhere", s3_client=_no_s3)
    with pytest.raises(NotFoundError, match="no committed checkpoint"):
        plan_resume(open_target(str(tmp_path / "src"), _no_s3), cwd=project, s3_client=_no_s3)


def test_check_not_running_unless_forced() -> None:
    spec = JobSpec(job_id="j", project="p", script="t.py")
    status = JobStatus(job_id="j", state="running", instance_ids=["i-1"])
    plan = ResumePlan(spec, status, None, cast(Any, None), "store")

    with pytest.raises(WrongStateError, match="still running on i-1"):
        ensure_not_running(plan.status, plan.spec.job_id, force=False)
    ensure_not_running(plan.status, plan.spec.job_id, force=True)


def test_resume_on_instance_needs_an_s3_job(tmp_path: Path) -> None:
    spec = JobSpec(job_id="j", project="p", script="t.py")
    plan = ResumePlan(spec, None, None, cast(Any, None), "store")
    with pytest.raises(UsageError, match="not in S3"):
        resume_on_instance(cast(Any, None), plan, "i-0123456789abcdef0")
    with pytest.raises(UsageError, match="instance id"):
        resume_on_instance(cast(Any, None), plan, "box-1")


ENV_SCRIPT = """
import json, os, pathlib, sys
ckpt = pathlib.Path(os.environ["RUNCTL_CHECKPOINT_DIR"])
seen = {k: os.environ[k] for k in ("RUNCTL_JOB_ID", "RUNCTL_ATTEMPT", "RUNCTL_RESUMED", "FROM_JOB")}
seen["files"] = sorted(p.name for p in ckpt.iterdir())
seen["argv"] = sys.argv[1:]
print("SEEN " + json.dumps(seen, sort_keys=True))
(ckpt / "model.bin").write_bytes(b"next")
"""


def test_resume_here_runs_the_next_attempt_from_the_committed_checkpoint(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    (project / "train.py").write_text(ENV_SCRIPT)
    status = JobStatus(job_id="demo-20250101-000000-abcd", state="interrupted", attempt=0)
    spec = _local_job(project, store.root, "train.py", status)
    _commit(store, tmp_path / "src", 2, job_id=spec.job_id)
    stale = project / ".runctl" / "jobs" / spec.job_id / "checkpoints"
    stale.mkdir()
    (stale / "stale.bin").write_text("not committed")
    for name in [n for n in os.environ if n.startswith("RUNCTL_")]:
        monkeypatch.delenv(name)
    printed = io.BytesIO()
    plan = plan_resume(open_target(str(store.root), _no_s3), cwd=project, s3_client=_no_s3)

    result = resume_here(plan, cwd=project, args=["--lr", "0.1"], echo=printed.write)

    assert result.status.state == "succeeded", printed.getvalue()
    line = next(x for x in printed.getvalue().decode().splitlines() if x.startswith("SEEN "))
    assert json.loads(line[5:]) == {
        "RUNCTL_ATTEMPT": "1",
        "RUNCTL_JOB_ID": spec.job_id,
        "RUNCTL_RESUMED": "1",
        "FROM_JOB": "yes",
        "argv": ["--lr", "0.1"],
        "files": ["config.json", "model.bin"],
    }
    assert result.log_path.name == "attempt-1.log"
    newest = list_checkpoints(open_target(str(store.root), _no_s3)).entries[0]
    assert (newest.attempt, newest.job_id) == (1, spec.job_id)


class _StatusBucket:
    """Answers GetObject for status.json with the next document of ``statuses``."""

    def __init__(self, statuses: list[JobStatus]) -> None:
        self.statuses = statuses

    def get_object(self, **_kwargs: Any) -> dict[str, Any]:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"Body": io.BytesIO(status.to_json().encode())}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def time(self) -> float:
        return self.now
