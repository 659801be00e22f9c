"""Checkpoints that never get worse, end to end on the harness with the real CLI: a script
stopped in the middle of writing its checkpoint in place, a script rewriting it all the time,
outputs and unfinished uploads around an interruption.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tests.cli.aws_helpers import run
from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cli.spot_helpers import (
    TRAINER,
    finish,
    log_text,
    manifests,
    read_json,
    spawn,
    wait_until,
)
from tests.cli.torn_helpers import INPLACE_TRAINER, expected, intact_state
from tests.cloud.harness import Cloud


def _blob(cloud: Cloud, store: str, manifest: dict[str, Any], name: str) -> bytes:
    (entry,) = [f for f in manifest["files"] if f["path"] == name]
    body: bytes = (
        cloud.client("s3").get_object(Bucket=BUCKET, Key=f"{store}blobs/{entry['sha256']}")["Body"]
    ).read()
    return body


def _newest(cloud: Cloud, store: str) -> dict[str, Any] | None:
    committed = manifests(cloud, store)
    return read_json(cloud, committed[-1]) if committed else None


def _committed_step(cloud: Cloud, store: str) -> int:
    newest = _newest(cloud, store)
    if newest is None or "ckpt.pt" not in [f["path"] for f in newest["files"]]:
        return 0
    state = intact_state(_blob(cloud, store, newest, "ckpt.pt"))
    return int(state["step"]) if state else -1


def test_stopped_mid_write_the_previous_checkpoint_stays_and_resume_finishes(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": INPLACE_TRAINER})
    instance_id = ready_instance(cloud)
    script = ["--steps", "8", "--mb", "2", "--write-seconds", "0.2", "--pause-seconds", "0.4"]
    started = spawn(
        cloud, project, shared_cache,
        "aws", "train", instance_id, "train.py", "-o", "json", "--", *script, "--stall-at", "5",
    )  # fmt: skip
    code, out, err = finish(started)
    assert code == 0, err
    job_uri = json.loads(out)["job_uri"]
    store = job_uri.removeprefix(f"s3://{BUCKET}/") + "checkpoints/"
    wait_until(lambda: _committed_step(cloud, store) >= 2, what="an intact checkpoint")
    wait_until(lambda: "stalled half-way" in log_text(cloud, instance_id), what="the stall")
    before = _newest(cloud, store)
    assert before is not None

    stop = spawn(cloud, project, shared_cache, "aws", "stop", instance_id, "--wait", "-o", "json")
    code, out, err = finish(stop)

    assert code == 0, err
    on_disk = next(cloud.sandbox(instance_id).rglob("checkpoints/ckpt.pt")).read_bytes()
    assert intact_state(on_disk) is None  # the script really was killed mid-write
    after = _newest(cloud, store)
    assert after is not None
    state = intact_state(_blob(cloud, store, after, "ckpt.pt"))
    assert state is not None and state == intact_state(_blob(cloud, store, before, "ckpt.pt"))
    assert "keeping ckpt.pt at its last committed version" in log_text(cloud, instance_id)

    resumed = run("checkpoint", "resume", job_uri, "-o", "json", "--", *script)

    assert resumed.exit_code == 0, resumed.stderr
    assert f"resumed=1 from step {state['step']}" in resumed.stderr
    result = read_json(cloud, job_uri.removeprefix(f"s3://{BUCKET}/") + "outputs/result.json")
    assert result == expected(8)


def test_a_checkpoint_rewritten_all_the_time_is_committed_whole_every_time(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": INPLACE_TRAINER})
    instance_id = ready_instance(cloud)
    store = "experiments/rewrite/"
    cloud.allow_s3(f"s3://{BUCKET}/{store}")  # outside runctl/: a grant, as on AWS
    proc = spawn(
        cloud, project, shared_cache,
        "aws", "train", instance_id, "train.py", "--wait", "-o", "json",
        "--checkpoint-s3", f"s3://{BUCKET}/{store}",
        "--", "--steps", "50", "--mb", "8", "--write-seconds", "0.1", "--pause-seconds", "0.1",
    )  # fmt: skip
    code, _out, err = finish(proc)

    assert code == 0, err
    committed = [read_json(cloud, key) for key in manifests(cloud, store)]
    assert len(committed) >= 3
    counts = [len(m["files"]) for m in committed]
    assert counts == sorted(counts), counts  # no commit has fewer files than the one before
    for manifest in committed:
        download = run(
            "checkpoint", "download", f"s3://{BUCKET}/{store}", str(project / manifest["id"]),
            "--checkpoint", manifest["id"],
        )  # fmt: skip
        assert download.exit_code == 0, download.stderr
        if "ckpt.pt" in [f["path"] for f in manifest["files"]]:
            state = intact_state((project / manifest["id"] / "ckpt.pt").read_bytes())
            assert state is not None, f"{manifest['id']} holds a torn ckpt.pt"
    # No upload stalled and was sent again: every blob went up in exactly one request.
    puts = Counter(
        c.key for c in cloud.calls("PutObject", "s3") if c.key and c.key.startswith(store)
    )
    assert puts and max(puts.values()) == 1, puts


INTERRUPTED_TRAINER = """
import os, time
out = os.environ["RUNCTL_OUTPUT_DIR"]
with open(os.path.join(out, "partial.json"), "w") as f:
    f.write('{"written": "before the interruption"}')
ckpt = os.environ["RUNCTL_CHECKPOINT_DIR"]
step = 0
while True:
    step += 1
    with open(os.path.join(ckpt, "s.tmp"), "w") as f:
        f.write(str(step))
    os.replace(os.path.join(ckpt, "s.tmp"), os.path.join(ckpt, "step.txt"))
    print(f"step {step}", flush=True)
    time.sleep(0.1)
"""


def test_on_an_interruption_outputs_are_uploaded_before_the_final_status(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": INTERRUPTED_TRAINER})
    instance_id = ready_instance(cloud, spot=True)
    proc = spawn(
        cloud, project, shared_cache,
        "aws", "train", instance_id, "train.py", "--wait", "-o", "json",
    )  # fmt: skip
    wait_until(lambda: "step 5" in log_text(cloud, instance_id), what="step 5")
    cloud.interrupt(instance_id, notice_seconds=15)
    code, out, err = finish(proc)

    assert code == 7, err
    doc = json.loads(out)
    assert doc["state"] == "interrupted"
    prefix = str(doc["job_uri"]).removeprefix(f"s3://{BUCKET}/")
    puts = [c.key for c in cloud.calls("PutObject", "s3")]
    output = puts.index(f"{prefix}outputs/partial.json")
    final_status = len(puts) - 1 - puts[::-1].index(f"{prefix}status.json")
    assert output < final_status
    assert read_json(cloud, f"{prefix}status.json")["state"] == "interrupted"


def test_the_next_commit_aborts_the_upload_a_killed_commit_left(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": INPLACE_TRAINER})
    instance_id = ready_instance(cloud)
    store = "experiments/killed/"
    cloud.allow_s3(f"s3://{BUCKET}/{store}")  # outside runctl/: a grant, as on AWS
    s3 = cloud.client("s3")
    left = s3.create_multipart_upload(Bucket=BUCKET, Key=f"{store}blobs/{'f' * 64}")
    s3.upload_part(
        Bucket=BUCKET, Key=left["Key"], UploadId=left["UploadId"], PartNumber=1, Body=b"x" * 99
    )

    proc = spawn(
        cloud, project, shared_cache,
        "aws", "train", instance_id, "train.py", "--wait", "-o", "json",
        "--checkpoint-s3", f"s3://{BUCKET}/{store}", "--", "--steps", "2", "--mb", "0.1",
    )  # fmt: skip
    code, _out, err = finish(proc)

    assert code == 0, err
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert f"aborted 1 unfinished upload(s) an earlier commit left: blobs/{'f' * 64}" in err


def test_after_a_short_notice_the_final_commit_stops_at_its_deadline_and_says_so(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    instance_id = ready_instance(cloud, spot=True)
    store = "experiments/deadline/"
    cloud.allow_s3(f"s3://{BUCKET}/{store}")  # outside runctl/: a grant, as on AWS
    proc = spawn(
        cloud, project, shared_cache,
        "aws", "train", instance_id, "train.py", "--wait", "-o", "json",
        "--checkpoint-s3", f"s3://{BUCKET}/{store}",
        "--", "--steps", "300", "--step-seconds", "0.1",
    )  # fmt: skip
    wait_until(lambda: manifests(cloud, store), what="a periodic commit")
    cloud.interrupt(instance_id, notice_seconds=5)  # the deadline (notice time - 5 s) is now
    code, _out, err = finish(proc)

    assert code == 7, err
    assert (
        "keeping state.json at its last committed version: its upload did not finish before "
        "the commit's deadline" in err
    )
    assert "the spot notice's deadline came before every file was uploaded" in err
    newest = _newest(cloud, store)
    assert newest is not None and [f["path"] for f in newest["files"]] == ["state.json"]
