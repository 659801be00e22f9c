"""``runctl checkpoint list|info|resume|cleanup`` end to end: local stores, S3 jobs, instances."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from runctl.job.checkpoints import commit_checkpoint
from runctl.job.s3store import S3Store
from runctl.job.spec import JobLocation, JobSpec
from runctl.job.stores import CheckpointStore, LocalStore
from tests.cli.aws_helpers import run
from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cloud.harness import Cloud

TRAIN = (Path(__file__).resolve().parents[2] / "training" / "train_with_checkpoints.py").read_text()
LIST_KEYS = [
    "id",
    "sequence",
    "created",
    "attempt",
    "job_id",
    "file_count",
    "total_size",
    "committed",
    "location",
]
CLEANUP_KEYS = [
    "location",
    "keep_last_n",
    "dry_run",
    "kept",
    "deleted_manifests",
    "deleted_blobs",
    "freed_bytes",
    "deferred_blobs",
]


def _json(*args: str) -> Any:
    result = run(*args, "--output", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _local_run(store: Path, steps: int) -> None:
    result = run(
        "local", "train.py", "--checkpoint-s3", str(store),
        "--", "--steps", str(steps), "--step-seconds", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def _commit_steps(store: CheckpointStore, source: Path, steps: int) -> list[str]:
    """``steps`` commits of a changing ``model`` beside an unchanging ``config``."""
    ids = []
    for step in range(steps):
        (source / "model.bin").write_bytes(f"weights after step {step}".encode() * 10)
        (source / "config.json").write_text('{"lr": 0.1}')
        manifest = commit_checkpoint(store, source, job_id="demo-job", attempt=0).manifest
        assert manifest is not None
        ids.append(manifest.id)
    return ids[::-1]


def _train_on_instance(cloud: Cloud, steps: int = 3) -> tuple[str, str]:
    """A finished ``aws train`` job that committed checkpoints: (instance id, job prefix)."""
    instance_id = ready_instance(cloud)
    result = run(
        "aws", "train", instance_id, "train.py", "--wait", "-o", "json",
        "--", "--steps", str(steps), "--step-seconds", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return instance_id, str(json.loads(result.stdout)["job_uri"])


def _s3_keys(cloud: Cloud, prefix: str) -> list[str]:
    pages = (
        cloud.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    )
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _s3_json(cloud: Cloud, key: str) -> Any:
    return json.loads(cloud.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


# -- list and info ------------------------------------------------------------------------------


def test_list_and_info_on_a_local_store(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": TRAIN})
    store = project / "store"
    _local_run(store, 2)
    _local_run(store, 3)

    listed = _json("checkpoint", "list", str(store))
    info = _json("checkpoint", "info", str(store))
    first = _json("checkpoint", "info", str(store), "--checkpoint", "1")
    text = run("checkpoint", "list", str(store))

    assert [list(e) for e in listed] == [LIST_KEYS, LIST_KEYS]
    assert [e["sequence"] for e in listed] == [2, 1]
    assert all(e["committed"] and e["file_count"] == 1 and e["attempt"] == 0 for e in listed)
    assert list(info) == [*LIST_KEYS, "files"]
    assert info["id"] == listed[0]["id"] and info["job_id"] == listed[0]["job_id"]
    state = (project / "checkpoints" / "state.json").read_bytes()
    assert info["files"] == [
        {
            "path": "state.json",
            "size": len(state),
            "sha256": hashlib.sha256(state).hexdigest(),
            "modified": None,
        }
    ]
    assert info["total_size"] == len(state)
    assert first["id"] == listed[1]["id"]
    assert text.exit_code == 0
    assert listed[0]["id"] in text.stdout
    assert "2 committed checkpoint(s)" in text.stderr


def test_plain_directory_shows_its_files_and_has_no_committed_checkpoint(
    cloud_env: Cloud, project: Path
) -> None:
    plain = project / "checkpoints"
    plain.mkdir()
    (plain / "model.pt").write_bytes(b"w" * 100)
    (plain / "model.pt.tmp").write_bytes(b"half-written")

    listed = _json("checkpoint", "list", str(plain))
    info = _json("checkpoint", "info", str(plain))
    text = run("checkpoint", "list", str(plain))
    resumed = run("checkpoint", "resume", str(plain))
    cleaned = run("checkpoint", "cleanup", str(plain), "--yes")

    assert len(listed) == 1
    assert listed[0]["committed"] is False and listed[0]["id"] is None
    assert (listed[0]["file_count"], listed[0]["total_size"]) == (1, 100)
    assert [f["path"] for f in info["files"]] == ["model.pt"]
    assert info["files"][0]["sha256"] == hashlib.sha256(b"w" * 100).hexdigest()
    assert info["files"][0]["modified"] is not None
    assert "model.pt" in text.stdout and "no committed manifests" in text.stderr
    assert resumed.exit_code == 6 and "no committed checkpoint" in resumed.stderr
    assert cleaned.exit_code == 2
    assert (plain / "model.pt").exists()


def test_list_and_info_on_an_s3_job_prefix(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": TRAIN})
    _instance, prefix = _train_on_instance(cloud_env)
    store_prefix = prefix + "checkpoints/"

    listed = _json("checkpoint", "list", prefix)
    direct = _json("checkpoint", "list", store_prefix)
    info = _json("checkpoint", "info", prefix, "--checkpoint", listed[-1]["id"][:8])

    assert listed and [list(e) for e in listed] == [LIST_KEYS] * len(listed)
    assert [e["id"] for e in direct] == [e["id"] for e in listed]
    assert all(e["location"] == store_prefix for e in listed)
    assert listed[0]["job_id"] == JobLocation.from_uri(prefix).job_id
    assert info["id"] == listed[-1]["id"]
    assert [f["path"] for f in info["files"]] == ["state.json"]
    by_id = _json("checkpoint", "list", JobLocation.from_uri(prefix).job_id)  # as jobs list shows
    assert [e["id"] for e in by_id] == [e["id"] for e in listed]


def test_missing_targets_exit_6(cloud_env: Cloud, project: Path) -> None:
    cloud_env.client("s3").create_bucket(Bucket=BUCKET)
    store = LocalStore(project / "store")
    source = project / "ckpt"
    source.mkdir()
    _commit_steps(store, source, 1)
    empty = project / "empty-store" / "manifests"
    empty.mkdir(parents=True)

    cases = {
        "missing dir": run("checkpoint", "list", str(project / "nope")),
        "missing job": run("checkpoint", "info", f"s3://{BUCKET}/runctl/demo/jobs/demo-x/"),
        "empty prefix": run("checkpoint", "list", f"s3://{BUCKET}/nothing/here/"),
        "unknown id": run("checkpoint", "info", str(store.root), "--checkpoint", "zzz"),
        "empty store": run("checkpoint", "info", str(empty.parent)),
        "nothing to resume": run("checkpoint", "resume", str(empty.parent)),
    }

    assert {name: r.exit_code for name, r in cases.items()} == dict.fromkeys(cases, 6)
    assert "does not exist" in cases["missing dir"].stderr
    assert "hint:" in cases["missing dir"].stderr
    assert "job.json" in cases["missing job"].stderr
    assert "no committed checkpoint" in cases["nothing to resume"].stderr


# -- cleanup ------------------------------------------------------------------------------------


def _age_local(store: Path) -> None:
    for blob in (store / "blobs").iterdir():
        past = blob.stat().st_mtime - 7200
        os.utime(blob, (past, past))


def test_cleanup_on_a_local_store(cloud_env: Cloud, project: Path) -> None:
    store = LocalStore(project / "store")
    source = project / "ckpt"
    source.mkdir()
    ids = _commit_steps(store, source, 4)
    (project / ".runctl.toml").write_text(
        (project / ".runctl.toml").read_text() + "keep_last_n = 3\n"
    )
    before = sorted(p.relative_to(store.root) for p in store.root.rglob("*"))

    refused = run("checkpoint", "cleanup", str(store.root), "--keep-last-n", "2")
    preview = _json("checkpoint", "cleanup", str(store.root), "--keep-last-n", "2", "--dry-run")
    assert sorted(p.relative_to(store.root) for p in store.root.rglob("*")) == before
    young = _json("checkpoint", "cleanup", str(store.root), "--yes")
    _age_local(store.root)
    done = _json("checkpoint", "cleanup", str(store.root), "--keep-last-n", "2", "--yes")

    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert list(preview) == CLEANUP_KEYS
    assert preview["dry_run"] is True and preview["deleted_manifests"] == ids[2:]
    assert (young["keep_last_n"], young["deleted_manifests"]) == (3, ids[3:])
    assert young["deleted_blobs"] == 0 and young["deferred_blobs"] == 1
    assert done["kept"] == ids[:2] and done["deleted_manifests"] == [ids[2]]
    assert done["deleted_blobs"] == 2 and done["freed_bytes"] > 0
    remaining = {p.name for p in (store.root / "blobs").iterdir()}
    wanted = {f["sha256"] for i in ids[:2] for f in _json("checkpoint", "info", str(store.root),
              "--checkpoint", i)["files"]}  # fmt: skip
    assert remaining == wanted
    assert [e["id"] for e in _json("checkpoint", "list", str(store.root))] == ids[:2]


def test_cleanup_on_an_s3_job_prefix(cloud_env: Cloud, project: Path) -> None:
    cloud = cloud_env
    cloud.client("s3").create_bucket(Bucket=BUCKET)
    location = JobLocation(BUCKET, "demo", "demo-20250101-000000-abcd")
    spec = JobSpec(job_id=location.job_id, project="demo", script="train.py", bucket=BUCKET)
    cloud.client("s3").put_object(Bucket=BUCKET, Key=location.job_key, Body=spec.to_json().encode())
    store = S3Store(cloud.client("s3"), location.checkpoints_uri)
    source = project / "ckpt"
    source.mkdir()
    ids = _commit_steps(store, source, 3)
    prefix = location.prefix + "checkpoints/"
    before = _s3_keys(cloud, prefix)

    preview = _json("checkpoint", "cleanup", location.uri, "--keep-last-n", "1", "--dry-run")
    assert _s3_keys(cloud, prefix) == before
    for key in cloud.s3_backend().buckets[BUCKET].keys.values():
        key.last_modified -= timedelta(hours=2)
    done = _json("checkpoint", "cleanup", location.uri, "--keep-last-n", "1", "--yes")

    assert preview["deleted_manifests"] == ids[1:] and preview["deferred_blobs"] == 2
    assert done["kept"] == [ids[0]] and done["deleted_blobs"] == 2
    assert done["location"] == location.checkpoints_uri
    model = hashlib.sha256(b"weights after step 2" * 10).hexdigest()
    config = hashlib.sha256(b'{"lr": 0.1}').hexdigest()
    assert _s3_keys(cloud, prefix) == sorted(
        [f"{prefix}manifests/{ids[0]}.json", f"{prefix}blobs/{model}", f"{prefix}blobs/{config}"]
    )


# -- resume -------------------------------------------------------------------------------------


def test_resume_here_from_a_local_store_continues_the_job(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": TRAIN})
    store = project / "store"
    _local_run(store, 3)
    job_id = _json("checkpoint", "list", str(store))[0]["job_id"]
    (project / "checkpoints" / "state.json").unlink()  # the store alone must bring it back

    result = run("checkpoint", "resume", str(store), "-o", "json", "--", "--steps", "5",
                 "--step-seconds", "0")  # fmt: skip
    failed = run("checkpoint", "resume", str(store), "--", "--no-such-flag")

    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["job_id"], doc["attempt"], doc["state"]) == (job_id, 1, "succeeded")
    assert doc["resumed_from"].startswith("00000001-")
    assert f"job {job_id} attempt 1 resumed=1 from step 3" in result.stderr
    assert "done: total 15" in result.stderr
    assert _json("checkpoint", "list", str(store))[0]["attempt"] == 1
    assert failed.exit_code == 7
    assert "code 2" in failed.stderr


def test_resume_here_needs_the_script(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": TRAIN})
    store = project / "store"
    _local_run(store, 1)
    (project / "train.py").rename(project / "trainer.py")

    result = run("checkpoint", "resume", str(store))
    on_instance = run("checkpoint", "resume", str(store), "--instance-id", "i-0123456789abcdef0")
    timeout = run("checkpoint", "resume", str(store), "--timeout", "1")

    assert result.exit_code == 6
    assert "train.py" in result.stderr and "trainer.py" in result.stderr
    assert on_instance.exit_code == 2 and "not in S3" in on_instance.stderr
    assert timeout.exit_code == 2


def test_resume_here_from_an_s3_job(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": TRAIN})
    instance_id, prefix = _train_on_instance(cloud_env)
    location = JobLocation.from_uri(prefix)

    result = run("checkpoint", "resume", prefix, "-o", "json", "--", "--steps", "5",
                 "--step-seconds", "0")  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert f"job {location.job_id} attempt 1 resumed=1 from step 3" in result.stderr
    status = _s3_json(cloud_env, location.status_key)
    assert (status["state"], status["attempt"]) == ("succeeded", 1)
    assert status["instance_ids"] == [instance_id, "local"]
    log = cloud_env.client("s3").get_object(Bucket=BUCKET, Key=location.log_key(1))["Body"].read()
    assert b"from step 3" in log
    newest = _json("checkpoint", "list", prefix)[0]
    assert (newest["attempt"], newest["id"]) == (1, status["checkpoint_id"])


def test_resume_on_an_instance_waits_for_the_verdict(cloud_env: Cloud, project: Path) -> None:
    make_project(project, {"train.py": TRAIN})
    instance_id, prefix = _train_on_instance(cloud_env)
    location = JobLocation.from_uri(prefix)
    checkpoint = _json("checkpoint", "list", prefix)[0]["id"]

    result = run(
        "checkpoint", "resume", prefix, "--instance-id", instance_id, "--wait", "-o", "json",
        "--", "--steps", "5", "--step-seconds", "0",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["state"], doc["attempt"], doc["exit_code"]) == ("succeeded", 1, 0)
    assert doc["resumed_from"] == checkpoint and doc["instance_id"] == instance_id
    assert f"job {location.job_id} attempt 1 resumed=1 from step 3" in result.stderr
    assert _s3_json(cloud_env, location.job_key)["args"] == ["--steps", "5", "--step-seconds", "0"]
    assert _s3_json(cloud_env, location.status_key)["attempt"] == 1


def test_resume_of_a_job_without_checkpoints_exits_6(cloud_env: Cloud, project: Path) -> None:
    cloud_env.client("s3").create_bucket(Bucket=BUCKET)
    location = JobLocation(BUCKET, "demo", "demo-20250101-000000-abcd")
    spec = JobSpec(job_id=location.job_id, project="demo", script="train.py", bucket=BUCKET)
    cloud_env.client("s3").put_object(
        Bucket=BUCKET, Key=location.job_key, Body=spec.to_json().encode()
    )

    listed = _json("checkpoint", "list", location.uri)
    result = run("checkpoint", "resume", location.uri, "--instance-id", "i-0123456789abcdef0")

    assert listed == []
    assert result.exit_code == 6
    assert f"no committed checkpoint in {location.checkpoints_uri}" in result.stderr
