"""Spot interruption figures, in harness time: notice -> checkpoint committed, and
interruption -> training running again on a replacement.

Usage: python benchmarks/spot_recovery.py [--rounds 3] [--checkpoint-mb 1]

Each round starts the cloud harness's spot instance, runs ``runctl aws train --auto-resume``
(a subprocess, as a user would) with a trainer that checkpoints ``--checkpoint-mb`` of state
every step, gives a 20 s spot notice mid-run, and reads the two figures from the job's timeline
(the runner's own timestamps in status.json). Prints each round and the medians. No peer tool
publishes such a figure; this is ours.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
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


def one_round(cloud: Cloud, workdir: Path, checkpoint_mb: float) -> tuple[float, float]:
    cloud.begin_test()
    try:
        project = workdir / f"p{time.monotonic_ns()}"
        project.mkdir()
        (project / "pyproject.toml").write_text('[project]\nname = "bench"\n')
        (project / ".runctl.toml").write_text(
            '[aws]\ns3_bucket = "bench"\nproject_name = "bench"\n'
            "[checkpoint]\nsync_interval_seconds = 2\n"
        )
        (project / "train.py").write_text(TRAINER)
        cloud.client("s3").create_bucket(Bucket="bench")
        first = cloud.run_instance(spot=True)
        cloud.wait_state(first, "running")
        env = {**cloud.subprocess_env(), "XDG_CACHE_HOME": str(workdir / "cache")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "runctl", "aws", "train", first, "train.py", "--auto-resume",
             "-o", "json", "--", str(checkpoint_mb)],
            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        sandbox = cloud.sandbox(first)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            logs = "".join(p.read_text() for p in sandbox.rglob("attempt-0.log"))
            if "step 5\n" in logs:
                break
            time.sleep(0.1)
        cloud.interrupt(first, notice_seconds=20)
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(err[-2000:])
        first_attempt = json.loads(out)["timeline"][0]
        return first_attempt["notice_to_commit_seconds"], first_attempt["recovery_seconds"]
    finally:
        cloud.end_test()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkpoint-mb", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("XDG_CACHE_HOME", str(workdir / "cache"))
        cloud = Cloud(workdir / "cloud")
        cloud.start()
        try:
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
