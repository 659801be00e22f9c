"""``runctl s3`` where a careless user or an odd bucket could lose data, checked end to end:
``sync --delete`` guards, leftovers of killed downloads, keys that are not plain paths (compared
with what the AWS CLI does on the same bucket), exact file times, and access-denied hints (real
Ceph RGW, whose bucket policies deny for real)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.s3_helpers import BUCKET, read_tree, run, run_json
from tests.cloud.harness import Cloud
from tests.cloud.services import RgwServer


def put(cloud: Cloud, keys: dict[str, bytes]) -> None:
    backend = cloud.s3_backend()
    for key, body in keys.items():
        backend.put_object(BUCKET, key, body)


def keys_under(cloud: Cloud, prefix: str) -> list[str]:
    pages = cloud.client("s3", internal=True).get_paginator("list_objects_v2")
    return sorted(
        o["Key"]
        for p in pages.paginate(Bucket=BUCKET, Prefix=prefix)
        for o in p.get("Contents", [])
    )


# -- 1. sync --delete refuses what looks like a mistake --------------------------------------


def test_sync_from_an_empty_directory_refuses_to_delete_everything(
    s3_env: Cloud, tmp_path: Path
) -> None:
    put(s3_env, {f"prefix/{i:03d}.txt": b"%d" % i for i in range(201)})
    empty = tmp_path / "empty"
    empty.mkdir()
    s3_env.request_log.clear()
    refused = run("s3", "sync", str(empty), f"s3://{BUCKET}/prefix/", "--delete")
    assert refused.exit_code == 2, refused.output
    assert "empty or missing" in refused.stderr and "all 201 files" in refused.stderr
    assert "--yes" in refused.stderr
    assert s3_env.calls("DeleteObjects") == []
    assert len(keys_under(s3_env, "prefix/")) == 201
    plan = run_json("s3", "sync", str(empty), f"s3://{BUCKET}/prefix/", "--delete", "--dry-run")
    assert (plan["dry_run"], plan["deleted"], len(plan["actions"])) == (True, 201, 201)
    assert len(keys_under(s3_env, "prefix/")) == 201
    done = run_json("s3", "sync", str(empty), f"s3://{BUCKET}/prefix/", "--delete", "--yes")
    assert done["deleted"] == 201
    assert keys_under(s3_env, "prefix/") == []


def test_sync_from_a_mistyped_prefix_leaves_the_local_directory_alone(
    s3_env: Cloud, tmp_path: Path
) -> None:
    put(s3_env, {"data/a.txt": b"a", "data/b.txt": b"b"})
    local = tmp_path / "dir"
    run_json("s3", "sync", f"s3://{BUCKET}/data/", str(local))
    (local / "mine.txt").write_bytes(b"only here")
    refused = run("s3", "sync", f"s3://{BUCKET}/typo-prefix/", str(local), "--delete")
    assert refused.exit_code == 2, refused.output
    assert f"s3://{BUCKET}/typo-prefix/ is empty or missing" in refused.stderr
    assert read_tree(local) == {"a.txt": b"a", "b.txt": b"b", "mine.txt": b"only here"}


def test_sync_deleting_more_than_half_needs_yes_and_half_does_not(
    s3_env: Cloud, tmp_path: Path
) -> None:
    put(s3_env, {f"d/{i}.txt": b"x" for i in range(10)})
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"{i}.txt").write_bytes(b"x")
    refused = run("s3", "sync", str(src), f"s3://{BUCKET}/d/", "--delete")
    assert refused.exit_code == 2
    assert "remove 6 of the 10 files" in refused.stderr
    dry = run("s3", "sync", str(src), f"s3://{BUCKET}/d/", "--delete", "--dry-run")
    assert dry.exit_code == 0
    assert dry.stdout.count("(dry run) delete:") == 6
    assert "needs --yes" in dry.stderr
    assert len(keys_under(s3_env, "d/")) == 10
    (src / "4.txt").write_bytes(b"x")  # now 5 of 10 would go: exactly half is allowed
    assert run_json("s3", "sync", str(src), f"s3://{BUCKET}/d/", "--delete")["deleted"] == 5
    assert keys_under(s3_env, "d/") == [f"d/{i}.txt" for i in range(5)]


@pytest.mark.parametrize(("answer", "left"), [("n", 3), ("y", 0)])
def test_sync_asks_on_a_terminal(s3_env: Cloud, tmp_path: Path, answer: str, left: int) -> None:
    put(s3_env, {f"t/{i}.txt": b"x" for i in range(3)})
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [sys.executable, "-m", "runctl", "s3", "sync", str(empty), f"s3://{BUCKET}/t/"]
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*argv, "--delete"],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=s3_env.subprocess_env(),
        )
        os.write(master, f"{answer}\n".encode())
        _, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
        os.close(slave)
    assert b"delete s3://" in err and b"Go ahead?" in err
    assert proc.returncode == (0 if answer == "y" else 1), err
    assert len(keys_under(s3_env, "t/")) == left


# -- 3. a re-run clears what a killed download left ------------------------------------------

KILLED_DOWNLOAD = """
import os, signal, sys
from pathlib import Path
import boto3
from runctl.aws.s3 import S3Uri, stat_object
from runctl.aws.s3_transfer import DownloadItem, TransferSettings, download_objects

client = boto3.client("s3")
obj = stat_object(client, S3Uri.parse(sys.argv[1]))
settings = TransferSettings(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
seen = []


def kill_halfway(nbytes):
    seen.append(nbytes)
    if sum(seen) > obj.size // 2:
        os.kill(os.getpid(), signal.SIGKILL)


download_objects(
    client, [DownloadItem(obj, Path(sys.argv[2]))], settings=settings, progress=kill_halfway
)
"""


def test_a_rerun_removes_the_part_files_of_a_killed_download(s3_env: Cloud, tmp_path: Path) -> None:
    data = os.urandom(24 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    run_json("s3", "upload", str(tmp_path / "big.bin"), f"s3://{BUCKET}/big.bin")
    out = tmp_path / "out"
    out.mkdir()
    (out / "neighbour.bin").write_bytes(b"not ours")
    for _ in range(2):  # two killed attempts, two sets of leftovers
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_DOWNLOAD, f"s3://{BUCKET}/big.bin", str(out / "big.bin")],
            env=s3_env.subprocess_env(),
            capture_output=True,
        )
        assert killed.returncode == -9, killed.stderr
    leftovers = sorted(p.name for p in out.iterdir() if p.name != "neighbour.bin")
    assert leftovers and all(name.startswith(".big.bin.") for name in leftovers)
    assert "big.bin" not in leftovers
    again = run_json("s3", "download", f"s3://{BUCKET}/big.bin", str(out))
    assert again["files"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["big.bin", "neighbour.bin"]
    assert (out / "big.bin").read_bytes() == data


# -- 15, 16. keys that are not plain paths, beside the AWS CLI -------------------------------


def aws_cli(cloud: Cloud, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["aws", "s3", *args, "--no-progress"],
        env=cloud.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


ODD_KEYS = {
    "odd/x//double.txt": b"double",
    "odd/./dot.txt": b"dot",
    "odd//lead.txt": b"lead",
    "odd/../up.txt": b"up",
    "odd/plain/ok.txt": b"ok",
}


def test_sync_downloads_odd_keys_where_the_aws_cli_puts_them(s3_env: Cloud, tmp_path: Path) -> None:
    put(s3_env, ODD_KEYS)
    theirs = aws_cli(s3_env, "sync", f"s3://{BUCKET}/odd/", str(tmp_path / "aws"))
    assert theirs.returncode == 2, theirs.stderr  # 2: some files were skipped
    assert "Skipping file ../up.txt" in theirs.stderr
    result = run("s3", "sync", f"s3://{BUCKET}/odd/", str(tmp_path / "ours"), "-o", "json")
    assert result.exit_code == 0, result.output
    assert (
        read_tree(tmp_path / "ours")
        == read_tree(tmp_path / "aws")
        == {
            "x/double.txt": b"double",
            "dot.txt": b"dot",
            "lead.txt": b"lead",
            "plain/ok.txt": b"ok",
        }
    )
    report = json.loads(result.stdout)
    assert report["files"] == 4
    assert report["skipped"] == [
        {
            "uri": f"s3://{BUCKET}/odd/../up.txt",
            "reason": "its key cannot be a local path",
            "path": None,
        }
    ]
    assert f"skipped s3://{BUCKET}/odd/../up.txt" in result.stderr
    # Nothing to do the second time, and --delete sees every file as in the source.
    again = run_json("s3", "sync", f"s3://{BUCKET}/odd/", str(tmp_path / "ours"), "--delete")
    assert (again["files"], again["deleted"]) == (0, 0)
    down = run_json("s3", "download", f"s3://{BUCKET}/odd/", str(tmp_path / "cp"), "-r")
    assert read_tree(tmp_path / "cp") == read_tree(tmp_path / "aws")
    assert down["files"] == 4


def test_two_keys_for_one_path_download_once_and_say_so(s3_env: Cloud, tmp_path: Path) -> None:
    put(s3_env, {"two/x//f.txt": b"doubled", "two/x/f.txt": b"canonical"})
    result = run("s3", "sync", f"s3://{BUCKET}/two/", str(tmp_path / "d"))
    assert result.exit_code == 0, result.output
    assert read_tree(tmp_path / "d") == {"x/f.txt": b"canonical"}
    assert f"lands on the same path as s3://{BUCKET}/two/x/f.txt" in result.stderr


@pytest.mark.parametrize("command", ["sync", "download"])
def test_a_key_that_is_also_a_directory_fails_alone_at_the_end(
    s3_env: Cloud, tmp_path: Path, command: str
) -> None:
    put(s3_env, {"clash/a/b": b"file", "clash/a/b/c.txt": b"inside", "clash/z.txt": b"z"})
    theirs = aws_cli(s3_env, "sync", f"s3://{BUCKET}/clash/", str(tmp_path / "aws"))
    assert theirs.returncode != 0 and "a/b" in theirs.stderr
    extra = ["-r"] if command == "download" else []
    dest = tmp_path / "ours"
    result = run("s3", command, f"s3://{BUCKET}/clash/", str(dest), *extra, "-o", "json")
    assert result.exit_code == 8, result.output
    assert read_tree(dest) == read_tree(tmp_path / "aws") == {"a/b/c.txt": b"inside", "z.txt": b"z"}
    document = json.loads(result.stdout)  # one document: the report, with the error on top
    assert (document["error"], document["exit_code"], document["files"]) == (
        "IncompleteTransferError",
        8,
        2,
    )
    assert document["failed"] == [
        {
            "uri": f"s3://{BUCKET}/clash/a/b",
            "reason": f"a/b would be both a file and the directory of s3://{BUCKET}/clash/a/b/c.txt",
            "path": str(dest / "a" / "b"),
        }
    ]
    assert "IsADirectoryError" not in result.output and ".runctl-part" not in result.output
    assert f"not written: s3://{BUCKET}/clash/a/b" in result.stderr


def test_a_local_directory_in_the_way_fails_that_file_only(s3_env: Cloud, tmp_path: Path) -> None:
    put(s3_env, {"in/way": b"file", "in/fine.txt": b"fine"})
    dest = tmp_path / "dest"
    (dest / "way" / "sub").mkdir(parents=True)
    result = run("s3", "download", f"s3://{BUCKET}/in/", str(dest), "-r")
    assert result.exit_code == 8, result.output
    assert (dest / "fine.txt").read_bytes() == b"fine"
    assert f"{dest / 'way'} is a directory" in result.stderr
    assert "1 object(s) could not be written" in result.stderr


# -- 13, 17. on real Ceph RGW ----------------------------------------------------------------


@pytest.fixture
def rgw_env(rgw: RgwServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RgwServer]:
    """The CLI pointed at RGW (and nothing else) through os.environ."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "RUNCTL_")):
            monkeypatch.delenv(name)
    for name, value in rgw.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.chdir(tmp_path)
    yield rgw


def test_rgw_millisecond_times_survive_a_download(rgw_env: RgwServer, tmp_path: Path) -> None:
    s3 = rgw_env.client()
    bucket = "runctl-mtimes"
    s3.create_bucket(Bucket=bucket)
    for i in range(8):
        s3.put_object(Bucket=bucket, Key=f"m/{i}.bin", Body=b"%d" % i)
    listed = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert any(t.microsecond for t in listed.values())  # RGW keeps milliseconds
    run_json("s3", "sync", f"s3://{bucket}/m/", str(tmp_path / "m"))
    for key, moment in listed.items():
        expected = int(moment.timestamp()) * 10**9 + moment.microsecond * 1000
        assert (tmp_path / key).stat().st_mtime_ns == expected, key
    assert run_json("s3", "sync", f"s3://{bucket}/m/", str(tmp_path / "m"))["files"] == 0


@pytest.mark.parametrize("size", [1024, 12 * 1024 * 1024])  # one PUT, and multipart
def test_rgw_denied_upload_names_the_iam_action_and_resource(
    rgw_env: RgwServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    monkeypatch.setenv("RUNCTL_S3__MULTIPART_THRESHOLD_MB", "8")
    bucket = "runctl-denied"
    s3 = rgw_env.client()
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
        deny = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny))
    local = tmp_path / "weights.bin"
    local.write_bytes(b"w" * size)
    result = run("s3", "upload", str(local), f"s3://{bucket}/models/")
    assert result.exit_code == 4, result.output
    hint = result.stderr.split("hint:", 1)[1]
    assert f"s3:PutObject on arn:aws:s3:::{bucket}/models/weights.bin" in " ".join(hint.split())
    assert str(local) not in hint
    assert f"s3://{bucket}/models/weights.bin" in result.stderr.split("hint:", 1)[0]
