"""A 4-value sweep two ways, in harness time: ``runctl workflow train --sweep`` (4 instances, jobs
in parallel, outputs fetched, instances terminated) against what a user does without it, one
instance and 4 sequential ``runctl aws train --wait`` runs (create and terminate included).

Usage: python benchmarks/workflow_sweep.py [--rounds 3] [--work-seconds 5] [--values 4]

Each round starts from a fresh harness account (bucket and instance profile made first, not
timed) and runs every command as a subprocess, as a user would; the training script logs a line
a second for ``--work-seconds`` and writes one output file. Prints each round and the medians.
The harness boots an instance in well under a second, where EC2 takes tens of seconds: on AWS
the workflow's lead grows with the boot time it overlaps.
"""

from __future__ import annotations

import argparse
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

BUCKET = "bench"
TRAINER = """
import os, sys, time
options = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
lr, seconds = options["lr"], float(options["seconds"])
started = time.monotonic()
while time.monotonic() - started < seconds:
    print(f"lr {lr}: working", flush=True)
    time.sleep(1.0)
with open(os.path.join(os.environ["RUNCTL_OUTPUT_DIR"], "result.txt"), "w") as f:
    f.write(lr)
"""


def runctl(cloud: Cloud, project: Path, cache: Path, *args: str) -> str:
    env = {**cloud.subprocess_env(), "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run(
        [sys.executable, "-m", "runctl", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        said = done.stderr[-2000:]
        raise RuntimeError(f"runctl {' '.join(args)} exited {done.returncode}: {said}")
    return done.stdout


def make_project(root: Path, profile: str) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "bench"\n')
    (root / ".runctl.toml").write_text(
        f'[aws]\ns3_bucket = "{BUCKET}"\nproject_name = "bench"\n'
        f'iam_instance_profile = "{profile}"\n'
    )
    (root / "train.py").write_text(TRAINER)
    return root


def one_round(cloud: Cloud, workdir: Path, values: list[str], work: float) -> tuple[float, float]:
    """(workflow seconds, sequential seconds) for one fresh account."""
    cloud.begin_test()
    try:
        cloud.client("s3").create_bucket(Bucket=BUCKET)
        profile = cloud.create_instance_profile().name
        project = make_project(workdir / f"p{time.monotonic_ns()}", profile)
        cache = workdir / "cache"
        sweep = "lr=" + ",".join(values)
        work_arg = f"--seconds={work:g}"

        started = time.perf_counter()
        runctl(cloud, project, cache, "workflow", "train", "train.py", "--instance-type",
               "t3.micro", "--sweep", sweep, "-o", "json", "--", work_arg)  # fmt: skip
        parallel = time.perf_counter() - started

        started = time.perf_counter()
        instance = runctl(cloud, project, cache, "aws", "create", "t3.micro", "--wait",
                          "--output", "instance-id").strip()  # fmt: skip
        for value in values:
            runctl(cloud, project, cache, "aws", "train", instance, "train.py", "--wait",
                   "-o", "json", "--", work_arg, f"--lr={value}")  # fmt: skip
        runctl(cloud, project, cache, "aws", "terminate", instance, "--yes")
        sequential = time.perf_counter() - started
        return parallel, sequential
    finally:
        cloud.end_test()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-seconds", type=float, default=5.0)
    parser.add_argument("--values", type=int, default=4)
    args = parser.parse_args()
    values = [f"{0.1 / 10**i:g}" for i in range(args.values)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("XDG_CACHE_HOME", str(workdir / "cache"))
        cloud = Cloud(workdir / "cloud")
        cloud.start()
        try:
            rows = [
                one_round(cloud, workdir, values, args.work_seconds) for _ in range(args.rounds)
            ]
        finally:
            cloud.stop()
    print(f"sweep of {len(values)} values, {args.work_seconds:g} s of work per job, harness on "
          "this host")  # fmt: skip
    sequential_title = "sequential aws train --wait s"
    print(f"{'round':>6} {'workflow train s':>17} {sequential_title:>30} {'ratio':>6}")
    for i, (parallel, sequential) in enumerate(rows, 1):
        print(f"{i:>6} {parallel:>17.1f} {sequential:>30.1f} {sequential / parallel:>6.2f}")
    parallel = statistics.median(r[0] for r in rows)
    sequential = statistics.median(r[1] for r in rows)
    print(f"{'median':>6} {parallel:>17.1f} {sequential:>30.1f} {sequential / parallel:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
