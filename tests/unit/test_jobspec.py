"""job.json and status.json documents, job ids and the S3 location of a job."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runctl.job.layout import JobPaths, RemoteRoot
from runctl.job.spec import (
    RESTORE_FAILED,
    RUN_FAILED,
    CheckpointFallback,
    CheckpointSettings,
    JobLocation,
    JobSpec,
    JobStatus,
    code_key,
    new_job_id,
    parse_time,
    project_key,
    read_json,
    runtime_key,
    seconds_between,
    split_s3_uri,
    utc_now,
    write_json_atomic,
)


def test_job_id_format() -> None:
    moment = datetime(2024, 5, 1, 12, 3, 4, tzinfo=UTC)

    assert new_job_id("My Project", moment, "a1b2") == "my-project-20240501-120304-a1b2"
    assert re.fullmatch(r"mnist-\d{8}-\d{6}-[0-9a-f]{4}", new_job_id("mnist"))


@pytest.mark.parametrize(
    "name,key", [("ok-name_1.0", "ok-name_1.0"), ("My Proj", "my-proj"), ("  a  b ", "a-b")]
)
def test_project_key(name: str, key: str) -> None:
    assert project_key(name) == key
    assert project_key(key) == key  # a key is its own key


@pytest.mark.parametrize(
    "name", ["../../x", "a/b", "a\\b", "two\nlines", "tab\there", "///", "...", ""]
)
def test_project_names_that_cannot_be_keys_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        project_key(name)


def test_layout_keys() -> None:
    location = JobLocation.from_uri("s3://bkt/runctl/proj/jobs/proj-20240501-120304-a1b2/")

    assert location == JobLocation("bkt", "proj", "proj-20240501-120304-a1b2")
    assert location.uri == "s3://bkt/runctl/proj/jobs/proj-20240501-120304-a1b2/"
    assert location.job_key.endswith("/job.json")
    assert location.status_key.endswith("/status.json")
    assert location.log_key(2).endswith("/logs/attempt-2.log")
    assert location.checkpoints_uri.endswith("/checkpoints/")
    assert location.outputs_uri.endswith("/outputs/")
    assert code_key("proj", "ab") == "runctl/proj/code/ab.tar.gz"
    assert runtime_key("cd") == "runctl/runtime/cd.tar.gz"


@pytest.mark.parametrize("uri", ["s3://bkt/other/proj/jobs/x/", "file:///x", "s3://bkt/runctl/p/"])
def test_layout_rejects_other_locations(uri: str) -> None:
    with pytest.raises(ValueError):
        JobLocation.from_uri(uri)


def test_split_s3_uri() -> None:
    assert split_s3_uri("s3://b/k/x") == ("b", "k/x")
    assert split_s3_uri("s3://b") == ("b", "")
    with pytest.raises(ValueError):
        split_s3_uri("/local/path")


def test_job_spec_round_trips_and_defaults() -> None:
    spec = JobSpec(
        job_id="p-20240501-120304-a1b2",
        project="p",
        script="train.py",
        args=["--x", "'$(y)'", "ü"],
        env={"A": "1"},
        bucket="bkt",
        checkpoint=CheckpointSettings(sync_interval_seconds=5, keep_last_n=2),
        launch_spec={"InstanceType": "t3.micro"},
        user="alice",
    )

    again = JobSpec.from_json(spec.to_json())

    assert again == spec and again.user == "alice"
    assert JobSpec.from_dict({"job_id": "j", "project": "p", "script": "s.py"}).user is None
    assert spec.checkpoint_uri == "s3://bkt/runctl/p/jobs/p-20240501-120304-a1b2/checkpoints/"
    assert spec.output_uri == "s3://bkt/runctl/p/jobs/p-20240501-120304-a1b2/outputs/"
    local = JobSpec(job_id="j", project="p", script="s.py")
    assert local.location is None and local.checkpoint_uri is None and local.output_uri is None
    custom = JobSpec(job_id="j", project="p", script="s.py", checkpoint_s3="s3://x/c/")
    assert custom.checkpoint_uri == "s3://x/c/"


def test_job_spec_ignores_unknown_keys_and_names_missing_ones() -> None:
    data = {"job_id": "j", "project": "p", "script": "s.py", "from_the_future": 1}
    assert JobSpec.from_dict(data).script == "s.py"
    with pytest.raises(ValueError, match="script"):
        JobSpec.from_dict({"job_id": "j", "project": "p"})
    with pytest.raises(ValueError, match="args"):
        JobSpec.from_dict({**data, "args": "not a list"})
    with pytest.raises(ValueError, match="env"):
        JobSpec.from_dict({**data, "env": {"A": 1}})


def test_status_round_trips_and_measures_the_interruption() -> None:
    status = JobStatus(
        job_id="j",
        state="interrupted",
        attempt=1,
        instance_ids=["i-1", "i-2"],
        exit_code=143,
        notice="2024-05-01T12:00:00.000Z",
        checkpoint_committed="2024-05-01T12:00:07.250Z",
    )

    assert JobStatus.from_json(status.to_json()) == status
    assert status.is_terminal
    assert status.notice_to_commit_seconds == 7.25
    assert not JobStatus(job_id="j", state="running").is_terminal
    with pytest.raises(ValueError):
        JobStatus.from_dict({"job_id": "j", "state": "exploded"})


def test_status_records_the_restored_checkpoint_and_the_fallbacks() -> None:
    fallbacks = [
        CheckpointFallback(1, "00000003-x-a0", RESTORE_FAILED, "blob is corrupt", "t1"),
        CheckpointFallback(2, "00000002-x-a0", RUN_FAILED, "exited 1 before committing", "t2"),
    ]
    status = JobStatus(
        job_id="j", attempt=2, restored_checkpoint="00000001-x-a0", fallbacks=fallbacks
    )

    again = JobStatus.from_json(status.to_json())
    written_before = JobStatus.from_dict({"job_id": "j", "state": "running", "attempt": 2})

    assert again == status
    assert json.loads(status.to_json())["fallbacks"][1] == {
        "attempt": 2,
        "checkpoint_id": "00000002-x-a0",
        "kind": "run",
        "reason": "exited 1 before committing",
        "time": "t2",
    }
    assert again.fallbacks_of() == fallbacks[1:] and again.fallbacks_of(1) == fallbacks[:1]
    assert written_before.fallbacks == [] and written_before.restored_checkpoint is None
    with pytest.raises(ValueError, match="fallback"):
        JobStatus.from_dict({"job_id": "j", "fallbacks": [{"attempt": 1}]})


def test_a_pinned_checkpoint_is_for_one_attempt_only() -> None:
    spec = JobSpec(
        job_id="j", project="p", script="s.py", restore_checkpoint="c-2", restore_attempt=3
    )

    assert spec.checkpoint_to_restore(3) == "c-2"
    assert spec.checkpoint_to_restore(4) is None
    assert JobSpec.from_dict({"job_id": "j", "project": "p", "script": "s"}).max_restarts == 3


def test_times() -> None:
    now = utc_now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now)
    assert parse_time("2024-05-01T12:00:00Z") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert seconds_between(None, now) is None


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "status.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, JobStatus(job_id="j").to_json())

    assert json.loads(target.read_text())["job_id"] == "j"
    assert [p.name for p in target.parent.iterdir()] == ["status.json"]
    assert read_json(tmp_path / "missing.json") is None


def test_remote_root_reads_the_environment(tmp_path: Path) -> None:
    assert RemoteRoot.from_env("/opt/runctl", {}).path == Path("/opt/runctl")
    assert (
        RemoteRoot.from_env("/opt/runctl", {"RUNCTL_REMOTE_ROOT": str(tmp_path)}).path == tmp_path
    )
    root = RemoteRoot(tmp_path)
    assert root.current_job() is None and root.running_job() is None
    root.current_job_file.write_text("job-1\n")
    assert root.current_job() == "job-1"
    assert root.running_job() is None  # no live runner pid
    paths = JobPaths(tmp_path / "jobs" / "j")
    assert paths.checkpoint_dir("checkpoints") == tmp_path / "jobs" / "j" / "checkpoints"
    assert paths.checkpoint_dir("/abs/ckpt") == Path("/abs/ckpt")
