"""``runctl s3 ...`` end to end through the CLI, against the harness's moto server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.s3_helpers import BUCKET, read_tree, run, run_json, write_tree
from tests.cli.spot_helpers import interruptible
from tests.cloud.harness import Cloud

SYNC_KEYS = ["source", "destination", "dry_run", "files", "bytes", "seconds", "mb_per_s"]
SYNC_KEYS += ["unverified", "skipped", "failed", "deleted", "actions"]
TRANSFER_KEYS = [
    "source",
    "destination",
    "files",
    "bytes",
    "seconds",
    "mb_per_s",
    "unverified",
    "skipped",
    "failed",
]


def puts(cloud: Cloud) -> list[str | None]:
    return sorted(c.key for c in cloud.request_log if c.operation in ("PutObject", "UploadPart"))


ODD_TREE = {
    "top.txt": b"top",
    "nested/a/b/c/deep.txt": b"deep",
    "with space/and+plus.txt": b"plus",
    "ünïcödé/naïve ☃.txt": b"snow",
    "empty.bin": b"",
    "nested/empty-too": b"",
}


def test_upload_list_download_round_trip(s3_env: Cloud, tmp_path: Path) -> None:
    write_tree(tmp_path / "src", ODD_TREE)
    up = run_json("s3", "upload", str(tmp_path / "src"), f"s3://{BUCKET}/set", "--recursive")
    assert list(up) == TRANSFER_KEYS
    assert (up["files"], up["bytes"]) == (len(ODD_TREE), sum(map(len, ODD_TREE.values())))
    listing = run_json("s3", "list", f"s3://{BUCKET}/set/", "--recursive")
    assert list(listing) == ["uri", "prefixes", "objects", "count", "bytes"]
    assert list(listing["objects"][0]) == [
        "bucket",
        "key",
        "size",
        "last_modified",
        "etag",
        "checksum_algorithms",
    ]
    assert sorted(o["key"] for o in listing["objects"]) == sorted(f"set/{k}" for k in ODD_TREE)
    assert listing["count"] == len(ODD_TREE)
    shallow = run_json("s3", "list", f"s3://{BUCKET}/set/")
    assert shallow["prefixes"] == [
        "set/nested/",
        "set/with space/",
        "set/ünïcödé/",
    ]
    down = run_json("s3", "download", f"s3://{BUCKET}/set", str(tmp_path / "dst"), "-r")
    assert (down["files"], down["unverified"]) == (len(ODD_TREE), 0)
    assert read_tree(tmp_path / "dst") == ODD_TREE


def test_text_output_of_list(s3_env: Cloud, tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"x" * 2048)
    assert run("s3", "upload", str(tmp_path / "f.bin"), f"s3://{BUCKET}/d/").exit_code == 0
    plain = run("s3", "list", f"s3://{BUCKET}/")
    assert plain.exit_code == 0
    assert plain.stdout.split() == ["PRE", "d/"]
    human = run("s3", "list", f"s3://{BUCKET}/d/", "--human-readable")
    assert human.stdout.split()[-3:] == ["2.0", "KiB", "f.bin"]
    assert run("s3", "list", f"s3://{BUCKET}", "-h").stdout.startswith("Usage")


@pytest.mark.slow
def test_more_than_1000_keys(s3_env: Cloud, tmp_path: Path) -> None:
    backend = s3_env.s3_backend()
    for i in range(1050):
        backend.put_object(BUCKET, f"many/{i // 100}/{i:04d}.txt", b"%d" % i)
    listing = run_json("s3", "list", f"s3://{BUCKET}/many/", "--recursive")
    assert listing["count"] == 1050
    down = run_json("s3", "download", f"s3://{BUCKET}/many/", str(tmp_path / "many"), "-r")
    assert down["files"] == 1050
    assert (tmp_path / "many" / "10" / "1049.txt").read_bytes() == b"1049"
    assert s3_env.calls("HeadObject") == []  # sizes and ETags come from the listing


def test_multipart_round_trip_with_checksum(
    s3_env: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNCTL_S3__MULTIPART_THRESHOLD_MB", "8")
    monkeypatch.setenv("RUNCTL_S3__MULTIPART_CHUNKSIZE_MB", "5")
    data = os.urandom(20 * 1024 * 1024 + 777)
    (tmp_path / "model.pt").write_bytes(data)
    run_json("s3", "upload", str(tmp_path / "model.pt"), f"s3://{BUCKET}/ckpt/")
    assert len(s3_env.calls("UploadPart")) == 5
    head = s3_env.client("s3", internal=True).head_object(
        Bucket=BUCKET, Key="ckpt/model.pt", ChecksumMode="ENABLED"
    )
    assert head["ChecksumCRC32"]
    assert head["ETag"].endswith('-5"')
    down = run_json("s3", "download", f"s3://{BUCKET}/ckpt/model.pt", str(tmp_path / "back.pt"))
    assert (down["files"], down["bytes"], down["unverified"]) == (1, len(data), 0)
    assert (tmp_path / "back.pt").read_bytes() == data


def test_sync_uploads_only_what_changed(s3_env: Cloud, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {f"f{i}.txt": b"v1-%03d" % i for i in range(10)} | {"sub/x.bin": b"xx"})
    first = run_json("s3", "sync", str(src), f"s3://{BUCKET}/mirror")
    assert list(first) == SYNC_KEYS
    assert first["files"] == 11
    s3_env.request_log.clear()
    same = run_json("s3", "sync", str(src), f"s3://{BUCKET}/mirror")
    assert (same["files"], same["actions"], puts(s3_env)) == (0, [], [])
    assert [c.operation for c in s3_env.request_log] == ["ListObjectsV2"]  # no request per file
    # same size, new content, newer time
    (src / "f3.txt").write_bytes(b"v2-003")
    later = time.time() + 100
    os.utime(src / "f3.txt", (later, later))
    # touched but identical: compared by MD5 against the ETag, not uploaded
    os.utime(src / "f4.txt", (later, later))
    (src / "f5.txt").write_bytes(b"longer now")
    (src / "new.txt").write_bytes(b"new")
    s3_env.request_log.clear()
    changed = run_json("s3", "sync", str(src), f"s3://{BUCKET}/mirror")
    assert puts(s3_env) == ["mirror/f3.txt", "mirror/f5.txt", "mirror/new.txt"]
    reasons = {a["destination"]: a["reason"] for a in changed["actions"]}
    assert reasons == {
        f"s3://{BUCKET}/mirror/f3.txt": "changed",
        f"s3://{BUCKET}/mirror/f5.txt": "size",
        f"s3://{BUCKET}/mirror/new.txt": "new",
    }
    back = tmp_path / "back"
    run_json("s3", "sync", f"s3://{BUCKET}/mirror", str(back))
    assert read_tree(back) == read_tree(src)


def test_sync_download_then_nothing_then_remote_change(s3_env: Cloud, tmp_path: Path) -> None:
    backend = s3_env.s3_backend()
    for i in range(5):
        backend.put_object(BUCKET, f"data/{i}.txt", b"remote-%d" % i)
    dst = tmp_path / "dst"
    assert run_json("s3", "sync", f"s3://{BUCKET}/data/", str(dst))["files"] == 5
    s3_env.request_log.clear()
    assert run_json("s3", "sync", f"s3://{BUCKET}/data/", str(dst))["files"] == 0
    assert s3_env.calls("GetObject") == []
    key = backend.put_object(BUCKET, "data/2.txt", b"REMOTE-2")  # same size
    key.last_modified = datetime.now() + timedelta(seconds=30)
    again = run_json("s3", "sync", f"s3://{BUCKET}/data/", str(dst))
    assert [a["reason"] for a in again["actions"]] == ["changed"]
    assert (dst / "2.txt").read_bytes() == b"REMOTE-2"


def test_sync_delete_both_ways(s3_env: Cloud, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {"keep.txt": b"k", "gone.txt": b"g", "logs/skip.log": b"l"})
    run_json("s3", "sync", str(src), f"s3://{BUCKET}/d")
    (src / "gone.txt").unlink()
    (src / "logs" / "skip.log").unlink()
    # excluded paths are neither copied nor deleted, as in aws-cli
    result = run_json("s3", "sync", str(src), f"s3://{BUCKET}/d", "--delete", "--exclude", "logs/*")
    assert result["deleted"] == 1
    keys = {o["key"] for o in run_json("s3", "list", f"s3://{BUCKET}/d", "-r")["objects"]}
    assert keys == {"d/keep.txt", "d/logs/skip.log"}
    local = tmp_path / "local"
    write_tree(local, {"extra.txt": b"e", "keep.txt": b"k"})
    down = run_json("s3", "sync", f"s3://{BUCKET}/d", str(local), "--delete")
    assert down["deleted"] == 1
    assert sorted(read_tree(local)) == ["keep.txt", "logs/skip.log"]


def test_dry_run_changes_nothing(s3_env: Cloud, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {"a.txt": b"a", "b/c.txt": b"c"})
    s3_env.s3_backend().put_object(BUCKET, "d/stale.txt", b"s")
    s3_env.request_log.clear()
    plan = run_json("s3", "sync", str(src), f"s3://{BUCKET}/d", "--delete", "--dry-run")
    assert list(plan) == SYNC_KEYS
    assert (plan["dry_run"], plan["files"], plan["bytes"], plan["deleted"]) == (True, 2, 2, 1)
    assert [a["action"] for a in plan["actions"]] == ["upload", "upload", "delete"]
    assert [c.operation for c in s3_env.request_log] == ["ListObjectsV2"]
    text = run("s3", "sync", str(src), f"s3://{BUCKET}/d", "--delete", "--dry-run")
    assert text.exit_code == 0
    assert f"(dry run) delete: s3://{BUCKET}/d/stale.txt" in text.stdout
    dst = tmp_path / "dst"
    down = run_json("s3", "sync", f"s3://{BUCKET}/d", str(dst), "--dry-run")
    assert down["files"] == 1
    assert not dst.exists()
    assert puts(s3_env) == []


def test_filters_later_rules_win(s3_env: Cloud, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, {"a.py": b"a", "b.txt": b"b", "pkg/c.py": b"c", "pkg/d.bin": b"d"})
    result = run_json(
        "s3", "upload", str(src), f"s3://{BUCKET}/f", "-r", "--exclude", "*", "--include", "*.py"
    )
    assert result["files"] == 2
    assert puts(s3_env) == ["f/a.py", "f/pkg/c.py"]
    s3_env.request_log.clear()
    run_json("s3", "sync", str(src), f"s3://{BUCKET}/g", "--include", "*.py", "--exclude", "*")
    assert puts(s3_env) == []


def test_cleanup_keeps_the_newest(s3_env: Cloud) -> None:
    backend = s3_env.s3_backend()
    base = datetime(2024, 1, 1)
    for i, key in enumerate(["ck/1/a", "ck/1/b", "ck/2/a", "ck/3/a", "ck/loose"]):
        backend.put_object(BUCKET, key, b"x").last_modified = base + timedelta(minutes=i)
    dry = run_json("s3", "cleanup", f"s3://{BUCKET}/ck", "--keep-last-n", "2", "--dry-run")
    assert list(dry) == [
        "prefix",
        "keep_last_n",
        "dry_run",
        "kept",
        "deleted",
        "deleted_objects",
        "deleted_bytes",
    ]
    assert dry["kept"] == ["loose", "3/"]
    assert dry["deleted"] == ["2/", "1/"]
    assert dry["deleted_objects"] == 3
    assert len(run_json("s3", "list", f"s3://{BUCKET}/ck", "-r")["objects"]) == 5
    no_tty = run("s3", "cleanup", f"s3://{BUCKET}/ck", "--keep-last-n", "2")
    assert no_tty.exit_code == 2
    assert "--yes" in no_tty.stderr
    done = run_json("s3", "cleanup", f"s3://{BUCKET}/ck", "--keep-last-n", "2", "--yes")
    assert (done["dry_run"], done["deleted_objects"]) == (False, 3)
    keys = [o["key"] for o in run_json("s3", "list", f"s3://{BUCKET}/ck", "-r")["objects"]]
    assert sorted(keys) == ["ck/3/a", "ck/loose"]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["upload", "missing.txt", f"s3://{BUCKET}/x"], 6, "does not exist"),
        (["download", f"s3://{BUCKET}/absent.txt", "out"], 6, "runctl s3 list"),
        (["list", "s3://no-such-bucket/"], 6, "runctl aws setup"),
        (["download", "s3://no-such-bucket/k", "out"], 6, "does not exist"),
        (["download", f"s3://{BUCKET}/nothing/", "out", "-r"], 6, "nothing found"),
        (["upload", ".", "bucket/key"], 2, "s3://bucket/prefix"),
        (["list", "s3:/half"], 2, "not an S3 URI"),
        (["upload", ".", f"s3://{BUCKET}/d"], 2, "--recursive"),
        (["sync", ".", "elsewhere"], 2, "one s3:// prefix"),
        (["sync", "s3://a-b/x", "s3://c-d/y"], 2, "one s3:// prefix"),
        (["cleanup", f"s3://{BUCKET}/", "--keep-last-n", "-1"], 2, "keep-last-n"),
    ],
)
def test_errors_have_exit_codes_and_hints(
    s3_env: Cloud, args: list[str], code: int, needle: str
) -> None:
    result = run("s3", *args)
    assert result.exit_code == code, result.output
    assert needle in result.stderr
    assert result.stdout == ""
    if code == 2:
        assert s3_env.request_log == []  # usage errors are found before any AWS call


def test_error_in_json_mode_is_a_json_document(s3_env: Cloud) -> None:
    result = run("s3", "list", "s3://no-such-bucket/", "--output", "json")
    assert result.exit_code == 6
    assert json.loads(result.stdout)["error"] == "NotFoundError"


def test_upload_cut_once_is_retried_and_completes(s3_env: Cloud, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    (tmp_path / "f.bin").write_bytes(data)
    s3_env.cut_s3_upload("cut/", times=1, after_bytes=1024)
    run_json("s3", "upload", str(tmp_path / "f.bin"), f"s3://{BUCKET}/cut/f.bin")
    assert puts(s3_env) == ["cut/f.bin", "cut/f.bin"]
    body = s3_env.client("s3", internal=True).get_object(Bucket=BUCKET, Key="cut/f.bin")["Body"]
    assert body.read() == data


def test_interrupted_download_leaves_nothing_and_rerun_completes(
    s3_env: Cloud, tmp_path: Path
) -> None:
    data = os.urandom(40 * 1024 * 1024)  # ranged GETs: several parts in flight
    (tmp_path / "big.bin").write_bytes(data)
    run_json("s3", "upload", str(tmp_path / "big.bin"), f"s3://{BUCKET}/big.bin")
    out = tmp_path / "out"
    out.mkdir()
    argv = [sys.executable, "-m", "runctl", "s3", "download", f"s3://{BUCKET}/big.bin", str(out)]
    # The download cannot finish while held: the interrupt lands mid-transfer, however slow
    # or fast this machine is (it used to race a free-running 96 MB download).
    hold = s3_env.hold_s3_download("big.bin", after_bytes=4 * 1024 * 1024)
    proc = subprocess.Popen(
        argv, env=s3_env.subprocess_env(), stderr=subprocess.PIPE, preexec_fn=interruptible
    )
    try:
        assert hold.reached.wait(timeout=300), "the download never started"
        s3_env.wait_for(lambda: any(out.iterdir()), timeout=60)  # its part file is being written
        proc.send_signal(signal.SIGINT)
        hold.release()  # the held connections drop; the interrupted download stops on them
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert b"interrupted" in stderr
    assert list(out.iterdir()) == []
    s3_env.clear_faults()
    again = subprocess.run([*argv, "-o", "json"], env=s3_env.subprocess_env(), capture_output=True)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["unverified"] == 0
    assert [p.name for p in out.iterdir()] == ["big.bin"]
    assert (out / "big.bin").read_bytes() == data


def test_a_killed_upload_left_pending_is_found_and_aborted_by_cleanup_incomplete(
    s3_env: Cloud, tmp_path: Path
) -> None:
    s3 = s3_env.client("s3", internal=True)
    (tmp_path / "big.bin").write_bytes(os.urandom(20 * 1024 * 1024))
    s3_env.cut_s3_upload("kill/", times=10_000, after_bytes=1)  # parts never arrive: it hangs on
    argv = [sys.executable, "-m", "runctl", "s3", "upload", str(tmp_path / "big.bin")]
    proc = subprocess.Popen([*argv, f"s3://{BUCKET}/kill/big.bin"], env=s3_env.subprocess_env())
    deadline = time.monotonic() + 60
    while not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads"):
        assert proc.poll() is None and time.monotonic() < deadline, "the upload never started"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    s3_env.clear_faults()
    s3.put_object(Bucket=BUCKET, Key="kill/kept.txt", Body=b"a finished object stays")

    nothing = run("s3", "cleanup", f"s3://{BUCKET}/kill/")
    no_tty = run("s3", "cleanup", f"s3://{BUCKET}/kill/", "--incomplete")
    dry = run_json("s3", "cleanup", f"s3://{BUCKET}/kill/", "--incomplete", "--dry-run")
    assert len(s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]) == 1
    done = run_json("s3", "cleanup", f"s3://{BUCKET}/kill/", "--incomplete", "--yes")
    text = run("s3", "cleanup", f"s3://{BUCKET}/kill/", "--incomplete", "--yes")

    assert nothing.exit_code == 2 and "--incomplete" in nothing.stderr
    assert no_tty.exit_code == 2 and "--yes" in no_tty.stderr
    assert list(dry) == ["prefix", "dry_run", "incomplete"]
    assert [u["uri"] for u in dry["incomplete"]["aborted"]] == [f"s3://{BUCKET}/kill/big.bin"]
    assert [u["uri"] for u in done["incomplete"]["aborted"]] == [f"s3://{BUCKET}/kill/big.bin"]
    assert done["incomplete"]["failed"] == [] and done["dry_run"] is False
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert "aborted 0 unfinished upload(s)" in text.stdout
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["kill/kept.txt"]
