"""Pre-warm throughput: ``runctl aws ebs pre-warm`` against ``runctl s3 download`` of the same data
on the same harness endpoint, in the same run.

Usage: python benchmarks/ebs_prewarm.py [--rounds 3] [--files 64] [--file-mb 1] [--large-mb 64]

The dataset (``--files`` files of ``--file-mb`` MB plus one ``--large-mb`` MB file) goes to the
harness's S3 (moto on 127.0.0.1). Each round then runs, as a user would (fresh ``runctl``
processes, start-up included):

- ``s3 download``: ``runctl s3 download SOURCE DIR --recursive`` on this machine;
- ``pre-warm (instance)``: ``runctl aws ebs pre-warm VOL SOURCE --instance-id I`` onto a fresh
  blank volume, on an instance that is already running (attach, format, mount, the copy on the
  instance, over SSM);
- ``pre-warm (temporary)``: the same with a temporary instance launched in the volume's zone and
  terminated afterwards (what ``pre-warm`` does without ``--instance-id``).

The copy's own rate (``mb_per_s`` as each command reports it: the S3 engine's transfer time, on
the instance for a pre-warm) is shown beside the end-to-end wall time. All three copy with the
same S3 engine from the same endpoint, so the copy rates should match; the difference in wall
time is what the pre-warm adds around the copy. Harness times are this host's, not EC2's: a real
instance adds boot and attach time, and its EBS and network limits set the copy rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cloud.harness import Cloud  # noqa: E402

BUCKET = "bench-prewarm"
SOURCE = f"s3://{BUCKET}/datasets/bench/"
MB = 1_000_000


def runctl(cloud: Cloud, cwd: Path, *args: str) -> tuple[float, dict[str, Any]]:
    """Run ``runctl ARGS --output json``; (wall seconds, its JSON document)."""
    env = {**cloud.subprocess_env(), "XDG_CACHE_HOME": str(cwd.parent / "cache")}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "runctl", *args, "--output", "json"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"runctl {' '.join(args)} failed: {done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def seed(cloud: Cloud, project: Path, files: int, file_mb: float, large_mb: float) -> int:
    """The dataset in S3 and a project that names the harness profile; total bytes."""
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "bench"\n')
    (project / ".runctl.toml").write_text(
        f'[aws]\ns3_bucket = "{BUCKET}"\nproject_name = "bench"\n'
        'iam_instance_profile = "runctl-harness"\n'
    )
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    total = 0
    for i in range(files):
        body = os.urandom(int(file_mb * MB))
        s3.put_object(Bucket=BUCKET, Key=f"datasets/bench/small/{i:04d}.bin", Body=body)
        total += len(body)
    if large_mb > 0:
        body = os.urandom(int(large_mb * MB))
        s3.upload_fileobj(__import__("io").BytesIO(body), BUCKET, "datasets/bench/large.bin")
        total += len(body)
    cloud.create_instance_profile()
    cloud.allow_s3(SOURCE, read_only=True)
    return total


def one_round(cloud: Cloud, project: Path, host: str, total: int) -> dict[str, tuple[float, float]]:
    """{case: (wall seconds, copy MB/s)} for one round."""
    target = project.parent / "download"
    shutil.rmtree(target, ignore_errors=True)
    wall, doc = runctl(cloud, project, "s3", "download", SOURCE, str(target), "--recursive")
    rows = {"s3 download": (wall, float(doc["mb_per_s"]))}
    for case, extra in (("pre-warm (instance)", ["--instance-id", host]),
                        ("pre-warm (temporary)", [])):  # fmt: skip
        _, volume = runctl(cloud, project, "aws", "ebs", "create", "--size", "10",
                           "--availability-zone", "us-east-1a")  # fmt: skip
        wall, doc = runctl(cloud, project, "aws", "ebs", "pre-warm", volume["volume_id"], SOURCE,
                           *extra)  # fmt: skip
        if doc["bytes"] != total:
            raise RuntimeError(f"{case} copied {doc['bytes']} of {total} bytes")
        rows[case] = (wall, float(doc["mb_per_s"]))
        if not extra:
            assert doc["terminated"], "the temporary instance was not terminated"
        else:
            runctl(cloud, project, "aws", "ebs", "detach", volume["volume_id"])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--file-mb", type=float, default=1.0)
    parser.add_argument("--large-mb", type=float, default=64.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cloud = Cloud(workdir / "cloud")
        cloud.start()
        cloud.begin_test()
        try:
            project = workdir / "project"
            total = seed(cloud, project, args.files, args.file_mb, args.large_mb)
            host = cloud.run_instance(az="us-east-1a")
            cloud.wait_state(host, "running")
            rounds = [one_round(cloud, project, host, total) for _ in range(args.rounds)]
        finally:
            cloud.end_test()
            cloud.stop()
    print(
        f"dataset: {args.files} x {args.file_mb:g} MB + {args.large_mb:g} MB = "
        f"{total / MB:.0f} MB, harness S3 (moto) on 127.0.0.1, {args.rounds} round(s)"
    )
    print(f"{'case':<22} {'wall s':>8} {'MB/s end to end':>16} {'copy MB/s':>10}")
    for case in rounds[0]:
        wall = statistics.median(r[case][0] for r in rounds)
        rate = statistics.median(r[case][1] for r in rounds)
        print(f"{case:<22} {wall:>8.2f} {total / MB / wall:>16.1f} {rate:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
