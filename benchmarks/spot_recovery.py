"""Spot interruption figures, in harness time: notice -> checkpoint committed, and
interruption -> training running again on a replacement.

Usage: python benchmarks/spot_recovery.py [--rounds 3] [--checkpoint-mb 1] [--scenario S]

``--scenario atomic`` (the default): each round starts the cloud harness's spot instance, runs
``runctl aws train --auto-resume`` (a subprocess, as a user would) with a trainer that
checkpoints ``--checkpoint-mb`` of state every step (temporary file, then rename), gives a 20 s
spot notice mid-run, and reads the two figures from the job's timeline (the runner's own
timestamps in status.json).

``--scenario rewrite``: the trainer rewrites its checkpoint file in place all the time (as
``torch.save(state, "ckpt.pt")`` does), so periodic commits run while the file is truncated and
written again; it saves once more on SIGTERM. A 120 s notice (the real one) comes mid-run;
the figure is notice -> final checkpoint committed, beside what the bytes need: the final
commit's own upload (from the job log) and a plain upload of the same size to the same
endpoint. An upload that reads a file being rewritten waits for botocore's 60 s read timeout.

Prints each round and the medians. No peer tool publishes such a figure; this is ours.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cloud.harness import Cloud  # noqa: E402

TRAINER = """
import json, os, signal, sys, time
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
ckpt = os.environ["RUNCTL_CHECKPOINT_DIR"]
os.makedirs(ckpt, exist_ok=True)
state_path = os.path.join(ckpt, "state.json")
step = json.load(open(state_path))["step"] if os.path.exists(state_path) else 0
blob = os.urandom(int(float(sys.argv[1]) * 1024 * 1024))
while step < 60:
    time.sleep(0.2)
    step += 1
    with open(os.path.join(ckpt, "weights.bin.tmp"), "wb") as f:
        f.write(blob)
    os.replace(os.path.join(ckpt, "weights.bin.tmp"), os.path.join(ckpt, "weights.bin"))
    json.dump({"step": step}, open(state_path + ".tmp", "w"))
    os.replace(state_path + ".tmp", state_path)
    print("step", step, flush=True)
    if stop:
        sys.exit(143)
"""


REWRITER = """
import os, signal, sys, time
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
ckpt = os.path.join(os.environ["RUNCTL_CHECKPOINT_DIR"], "ckpt.pt")
blocks = max(1, int(float(sys.argv[1])))
step = 0
while True:
    step += 1
    block = os.urandom(1 << 20)
    with open(ckpt, "wb") as f:  # in place: torch.save(state, "ckpt.pt")
        for _ in range(blocks):
            f.write(block)
            f.flush()
            time.sleep(0.4 / blocks)  # a save that takes a while, as a big model's does
    print("step", step, flush=True)
    if stop:
        time.sleep(0.5)  # winds down after its last save
        sys.exit(143)
    time.sleep(0.05)
"""
COMMITTED = re.compile(r"checkpoint \S+ committed: .* \((\d+) bytes\) in ([0-9.]+)s")


def _project(workdir: Path, trainer: str) -> Path:
    project = workdir / f"p{time.monotonic_ns()}"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "bench"\n')
    (project / ".runctl.toml").write_text(
        '[aws]\ns3_bucket = "bench"\nproject_name = "bench"\n'
        "[checkpoint]\nsync_interval_seconds = 2\n"
    )
    (project / "train.py").write_text(trainer)
    return project


def _train_until_step_5(
    cloud: Cloud, workdir: Path, trainer: str, *args: str
) -> tuple[str, subprocess.Popen[str]]:
    """``aws train ID train.py ARGS`` on a new spot instance, once its script reached step 5."""
    project = _project(workdir, trainer)
    cloud.client("s3").create_bucket(Bucket="bench")
    first = cloud.run_instance(spot=True)
    cloud.wait_state(first, "running")
    env = {**cloud.subprocess_env(), "XDG_CACHE_HOME": str(workdir / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runctl", "aws", "train", first, "train.py", *args],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for_step(cloud, first, 5)
    return first, proc


def _wait_for_step(cloud: Cloud, instance_id: str, step: int) -> None:
    sandbox = cloud.sandbox(instance_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        logs = "".join(p.read_text() for p in sandbox.rglob("attempt-0.log"))
        if f"step {step}\n" in logs:
            return
        time.sleep(0.1)
    raise RuntimeError(f"step {step} never came")


def one_round(cloud: Cloud, workdir: Path, checkpoint_mb: float) -> tuple[float, float]:
    cloud.begin_test()
    try:
        first, proc = _train_until_step_5(
            cloud, workdir, TRAINER, "--auto-resume", "-o", "json", "--", str(checkpoint_mb)
        )
        cloud.interrupt(first, notice_seconds=20)
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(err[-2000:])
        first_attempt = json.loads(out)["timeline"][0]
        return first_attempt["notice_to_commit_seconds"], first_attempt["recovery_seconds"]
    finally:
        cloud.end_test()


def plain_upload_seconds(cloud: Cloud, workdir: Path, checkpoint_mb: float) -> float:
    """What the bytes need: one upload of that many bytes to the same endpoint."""
    from runctl.aws.s3 import S3Uri
    from runctl.aws.s3_transfer import UploadItem, upload_files

    cloud.begin_test()
    try:
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="bench")
        path = workdir / "bytes.bin"
        path.write_bytes(os.urandom(int(checkpoint_mb * 1024 * 1024)))
        started = time.monotonic()
        upload_files(s3, [UploadItem(path, S3Uri("bench", "bytes.bin"), path.stat().st_size)])
        return time.monotonic() - started
    finally:
        cloud.end_test()


def rewrite_round(
    cloud: Cloud, workdir: Path, checkpoint_mb: float
) -> tuple[float, float, int, float]:
    """notice -> committed, the final commit's own seconds and bytes, and the slowest commit of
    the run, for the rewriter."""
    cloud.begin_test()
    try:
        first, proc = _train_until_step_5(
            cloud, workdir, REWRITER, "--wait", "-o", "json", "--", str(checkpoint_mb)
        )
        cloud.interrupt(first, notice_seconds=120)
        s3 = cloud.client("s3")
        out, err = proc.communicate(timeout=600)
        job_uri = json.loads(out)["job_uri"]
        prefix = job_uri.removeprefix("s3://bench/")
        body = s3.get_object(Bucket="bench", Key=f"{prefix}status.json")["Body"].read()
        status = json.loads(body)
        if status["state"] != "interrupted" or not status.get("checkpoint_committed"):
            raise RuntimeError(f"no final commit: {status}\n{err[-2000:]}")
        log = s3.get_object(Bucket="bench", Key=f"{prefix}logs/attempt-0.log")["Body"].read()
        text = log.decode("utf-8", "replace")
        final = COMMITTED.findall(text.split("stopping the script")[-1])
        seconds, size = (float(final[-1][1]), int(final[-1][0])) if final else (0.0, 0)
        slowest = max((float(found[1]) for found in COMMITTED.findall(text)), default=0.0)
        notice = datetime.fromisoformat(status["notice"].replace("Z", "+00:00"))
        done = datetime.fromisoformat(status["checkpoint_committed"].replace("Z", "+00:00"))
        return (done - notice).total_seconds(), seconds, size, slowest
    finally:
        cloud.end_test()


def report_rewrite(
    rows: list[tuple[float, float, int, float]], plain: float, size_mb: float
) -> None:
    print(f"checkpoint rewritten in place: {size_mb:g} MB, spot notice: 120 s, harness")
    print(f"a plain upload of {size_mb:g} MB to the same endpoint: {plain:.2f} s")
    print(
        f"{'round':>5} {'notice->committed s':>20} {'final commit s':>15} {'its bytes':>12} "
        f"{'slowest commit s':>17}"
    )
    for i, (commit, seconds, size, slowest) in enumerate(rows, 1):
        print(f"{i:>5} {commit:>20.2f} {seconds:>15.2f} {size:>12} {slowest:>17.2f}")
    print(
        f"{'median':>5} {statistics.median(r[0] for r in rows):>20.2f} {'':>15} {'':>12} "
        f"{statistics.median(r[3] for r in rows):>17.2f}"
    )
    worst, slowest = max(r[0] for r in rows), max(r[3] for r in rows)
    print(f"{'max':>5} {worst:>20.2f} {'':>15} {'':>12} {slowest:>17.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkpoint-mb", type=float, default=1.0)
    parser.add_argument("--scenario", choices=("atomic", "rewrite"), default="atomic")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("XDG_CACHE_HOME", str(workdir / "cache"))
        cloud = Cloud(workdir / "cloud")
        cloud.start()
        try:
            if args.scenario == "rewrite":
                plain = plain_upload_seconds(cloud, workdir, args.checkpoint_mb)
                mb = args.checkpoint_mb
                found = [rewrite_round(cloud, workdir, mb) for _ in range(args.rounds)]
                report_rewrite(found, plain, mb)
                return 0
            rows = [one_round(cloud, workdir, args.checkpoint_mb) for _ in range(args.rounds)]
        finally:
            cloud.stop()
    print(f"checkpoint size: {args.checkpoint_mb:g} MB, spot notice: 20 s, harness on this host")
    print(f"{'round':>5} {'notice->committed s':>20} {'interruption->training s':>25}")
    for i, (commit, recovery) in enumerate(rows, 1):
        print(f"{i:>5} {commit:>20.2f} {recovery:>25.2f}")
    print(
        f"{'median':>5} {statistics.median(r[0] for r in rows):>20.2f} "
        f"{statistics.median(r[1] for r in rows):>25.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
