"""A resumed run whose checkpoint makes the script fail before it commits anything new falls back
to the previous committed checkpoint, here (``checkpoint resume``, ``runctl local``) and on an
instance; the terminal and status.json say which checkpoint the run started from and every
fallback it took. Also ``checkpoint resume --checkpoint``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from runctl.cli.app import app
from runctl.job.checkpoints import commit_checkpoint
from runctl.job.manifests import latest_manifest, list_manifests, read_manifest
from runctl.job.spec import JobLocation
from runctl.job.stores import CheckpointStore, LocalStore, open_store
from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cli.spot_helpers import TRAINER, finish, read_json, spawn
from tests.cloud.harness import Cloud

TRAINING = Path(__file__).resolve().parents[2] / "training"
FAILED_EARLY = "the script exited with code 1 before committing a new checkpoint"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def project(workdir: Path) -> Path:
    (workdir / "pyproject.toml").write_text("")
    (workdir / ".runctl.toml").write_text("[checkpoint]\nsync_interval_seconds = 1\n")
    shutil.copytree(TRAINING, workdir / "training")
    return workdir


def _train(store: Path, steps: int, *extra: str) -> Result:
    return invoke(
        "local", "training/train_with_checkpoints.py", "--checkpoint-s3", str(store), *extra,
        "--", "--steps", str(steps), "--step-seconds", "0",
    )  # fmt: skip


def _poison(store: CheckpointStore, tmp_path: Path, job_id: str, attempt: int = 0) -> str:
    """Commit a checkpoint the script cannot load, as a commit of a torn file once did."""
    torn = tmp_path / "torn"
    torn.mkdir(exist_ok=True)
    (torn / "state.json").write_text('{"step": 9, "tot')
    manifest = commit_checkpoint(store, torn, job_id=job_id, attempt=attempt).manifest
    assert manifest is not None
    return manifest.id


def test_resume_falls_back_from_a_checkpoint_the_script_cannot_load(
    project: Path, tmp_path: Path
) -> None:
    store = LocalStore(project / "store")
    assert _train(store.root, 3).exit_code == 0
    good = latest_manifest(store)
    assert good is not None
    bad = _poison(store, tmp_path, good.job_id)

    result = invoke("checkpoint", "resume", str(store.root), "-o", "json",
                    "--", "--steps", "5", "--step-seconds", "0")  # fmt: skip

    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["state"], doc["restored_checkpoint"]) == ("succeeded", good.id)
    assert [
        (f["checkpoint_id"], f["kind"], f["reason"], f["attempt"]) for f in doc["fallbacks"]
    ] == [(bad, "run", FAILED_EARLY, 1)]
    assert f"fallback: checkpoint {bad} given up: {FAILED_EARLY}" in result.stderr
    assert f"the run started from checkpoint {good.id}" in result.stderr
    assert "resumed=1 from step 3" in result.stderr and "done: total 15" in result.stderr
    newest = latest_manifest(store)
    assert newest is not None and newest.sequence > good.sequence + 1 and newest.attempt == 1


def test_runctl_local_names_a_corrupt_checkpoint_it_fell_back_from(
    project: Path, tmp_path: Path
) -> None:
    store = LocalStore(project / "store")
    assert _train(store.root, 2).exit_code == 0
    assert _train(store.root, 3).exit_code == 0
    newest, previous = list_manifests(store)[:2]
    blob = store.root / "blobs" / read_manifest(store, newest.id).files[0].sha256
    blob.write_text("garbage!" * 3)
    shutil.rmtree(project / "checkpoints")

    result = _train(store.root, 4)

    assert result.exit_code == 0, result.stderr
    assert f"fallback: checkpoint {newest.id} given up: blob {blob.name[:12]} is corrupt" in (
        result.stderr
    )
    assert f"the run started from checkpoint {previous.id}" in result.stderr
    assert "resumed=1 from step 2" in result.stdout


def test_no_fallback_beyond_max_restarts_and_nothing_committed_over(
    project: Path, tmp_path: Path
) -> None:
    store = LocalStore(project / "store")
    assert _train(store.root, 3).exit_code == 0
    committed = latest_manifest(store)
    assert committed is not None
    job_id = committed.job_id
    job_json = project / ".runctl" / "jobs" / job_id / "job.json"
    spec = json.loads(job_json.read_text())
    job_json.write_text(json.dumps({**spec, "max_restarts": 0}))
    bad = _poison(store, tmp_path, job_id)

    result = invoke("checkpoint", "resume", str(store.root), "-o", "json")

    assert result.exit_code == 7, result.stderr
    assert json.loads(result.stdout)["fallbacks"] == []
    assert f"the run started from checkpoint {bad}" in result.stderr
    log = (project / ".runctl" / "jobs" / job_id / "logs" / "attempt-1.log").read_text()
    assert "no fallback from checkpoint" in log and "max-restarts 0" in log
    assert "not committing the checkpoint directory" in log
    assert list_manifests(store)[0].id == bad  # the failed run did not commit over it


def test_resume_from_a_chosen_checkpoint(project: Path) -> None:
    store = LocalStore(project / "store")
    for steps in (1, 2, 3):
        assert _train(store.root, steps).exit_code == 0
    oldest = list_manifests(store)[-1]

    result = invoke("checkpoint", "resume", str(store.root), "--checkpoint", str(oldest.sequence),
                    "-o", "json", "--", "--steps", "4", "--step-seconds", "0")  # fmt: skip
    missing = invoke("checkpoint", "resume", str(store.root), "--checkpoint", "99")

    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["resumed_from"], doc["restored_checkpoint"]) == (oldest.id, oldest.id)
    assert "resumed=1 from step 1" in result.stderr and "done: total 10" in result.stderr
    assert missing.exit_code == 6 and "does not exist" in missing.stderr


def test_an_instance_falls_back_and_records_it_in_status_json(
    cloud_env: Cloud, tmp_path: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    root = make_project(tmp_path / "demo", {"train.py": TRAINER})
    instance_id = ready_instance(cloud)
    uri = f"s3://{BUCKET}/experiments/poisoned/"
    cloud.allow_s3(uri)  # outside runctl/: a grant, as on AWS
    args = ["aws", "train", instance_id, "train.py", "--wait", "-o", "json", "--checkpoint-s3"]
    code, out, err = finish(spawn(cloud, root, shared_cache, *args, uri, "--", "--steps", "3"))
    assert code == 0, err
    store = open_store(uri, lambda: cloud.client("s3"))
    good = latest_manifest(store)
    assert good is not None
    bad = _poison(store, tmp_path, good.job_id)

    code, out, err = finish(spawn(cloud, root, shared_cache, *args, uri, "--", "--steps", "5"))

    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    location = JobLocation.from_uri(doc["job_uri"])
    status = read_json(cloud, location.status_key)
    assert status["restored_checkpoint"] == good.id
    assert [(f["checkpoint_id"], f["kind"]) for f in status["fallbacks"]] == [(bad, "run")]
    assert f"checkpoint {bad}: {FAILED_EARLY}; retrying from the previous" in err
    assert read_json(cloud, f"{location.prefix}outputs/result.json") == {"step": 5, "total": 15}
    # The terminal and the JSON document of aws train --wait name the fallback and the restore.
    assert f"fallback: checkpoint {bad} given up" in err
    assert f"the run started from checkpoint {good.id}" in err
    assert doc["restored_checkpoint"] == good.id
    assert [f["checkpoint_id"] for f in doc["fallbacks"]] == [bad]
