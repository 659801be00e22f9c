"""``runctl checkpoint download SOURCE DIR [--checkpoint SEQ]``: a checkpoint's files restored
byte for byte and verified, from a local store and from S3 (a job URI or a store prefix)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from runctl.job.checkpoints import commit_checkpoint
from runctl.job.manifests import list_manifests, read_manifest
from runctl.job.s3store import S3Store
from runctl.job.spec import JobLocation, JobSpec
from runctl.job.stores import CheckpointStore, LocalStore
from tests.cli.aws_helpers import run
from tests.cli.jobs_helpers import BUCKET
from tests.cloud.harness import Cloud

DOWNLOAD_KEYS = [
    "source",
    "destination",
    "checkpoint_id",
    "sequence",
    "job_id",
    "attempt",
    "created",
    "file_count",
    "total_size",
    "files",
    "verified",
    "fallbacks",
]


def _commits(store: CheckpointStore, source: Path) -> list[dict[str, bytes]]:
    """Three commits of a small tree (a nested file, a large one, an unchanged one)."""
    versions = []
    for step in range(3):
        files = {
            "model.bin": bytes([step]) * 3_000_000,
            "opt/state.pt": f"optimizer {step}".encode(),
            "config.json": b'{"lr": 0.1}',
        }
        for rel, data in files.items():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            (source / rel).write_bytes(data)
        assert commit_checkpoint(store, source, job_id="demo-job", attempt=0).created
        versions.append(files)
    return versions


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file()
    }


def _json(*args: str) -> Any:
    result = run(*args, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _download_everything(source: str, store: CheckpointStore, tmp_path: Path) -> None:
    versions = _commits(store, tmp_path / "work")
    ids = [r.id for r in list_manifests(store)][::-1]

    newest = _json("checkpoint", "download", source, str(tmp_path / "newest"))
    first = _json("checkpoint", "download", source, str(tmp_path / "first"), "--checkpoint", "1")
    again = run("checkpoint", "download", source, str(tmp_path / "newest"))

    assert list(newest) == DOWNLOAD_KEYS
    assert (newest["checkpoint_id"], newest["verified"], newest["fallbacks"]) == (ids[2], True, [])
    assert _tree(tmp_path / "newest") == versions[2]
    assert (first["checkpoint_id"], first["sequence"]) == (ids[0], 1)
    assert _tree(tmp_path / "first") == versions[0]
    assert newest["files"] == [
        {"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for rel, data in sorted(versions[2].items())
    ]
    assert again.exit_code == 0 and f"checkpoint {ids[2]}: 3 file(s)" in again.stderr
    assert "verified" in again.stderr and "model.bin" in again.stdout


def test_download_from_a_local_store(tmp_path: Path, workdir: Path) -> None:
    store = LocalStore(tmp_path / "store")
    _download_everything(str(store.root), store, tmp_path)


def test_download_from_an_s3_job_and_an_s3_store_prefix(cloud_env: Cloud, tmp_path: Path) -> None:
    s3 = cloud_env.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    location = JobLocation(BUCKET, "demo", "demo-20250101-000000-abcd")
    spec = JobSpec(job_id=location.job_id, project="demo", script="train.py", bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=location.job_key, Body=spec.to_json().encode())
    store = S3Store(s3, location.checkpoints_uri)

    _download_everything(location.uri, store, tmp_path)
    by_prefix = _json("checkpoint", "download", location.checkpoints_uri, str(tmp_path / "p"))

    assert _tree(tmp_path / "p") == _tree(tmp_path / "newest")
    assert by_prefix["source"] == location.checkpoints_uri


def test_a_checkpoint_that_cannot_be_restored_is_named(tmp_path: Path, workdir: Path) -> None:
    store = LocalStore(tmp_path / "store")
    versions = _commits(store, tmp_path / "work")
    newest, previous = list_manifests(store)[:2]
    model = next(f for f in read_manifest(store, newest.id).files if f.path == "model.bin")
    (store.root / "blobs" / model.sha256).write_bytes(b"\1" * 3_000_000)  # same size, wrong bytes
    (tmp_path / "a-file").write_text("not a directory")

    fell_back = _json("checkpoint", "download", str(store.root), str(tmp_path / "out"))
    text = run("checkpoint", "download", str(store.root), str(tmp_path / "out2"))
    asked = run("checkpoint", "download", str(store.root), str(tmp_path / "x"), "--checkpoint", "3")
    plain = run("checkpoint", "download", str(tmp_path / "work"), str(tmp_path / "y"))
    onto_file = run("checkpoint", "download", str(store.root), str(tmp_path / "a-file"))

    assert fell_back["checkpoint_id"] == previous.id
    assert _tree(tmp_path / "out") == versions[1]
    assert [f["checkpoint_id"] for f in fell_back["fallbacks"]] == [newest.id]
    assert "is corrupt" in fell_back["fallbacks"][0]["reason"]
    assert f"checkpoint {newest.id} given up" in text.stderr
    assert asked.exit_code == 6
    assert f"checkpoint {newest.id} cannot be restored intact" in asked.stderr
    assert not (tmp_path / "x" / "model.bin").exists()
    assert plain.exit_code == 6 and "no committed checkpoint" in plain.stderr
    assert onto_file.exit_code == 2 and "is a file" in onto_file.stderr
