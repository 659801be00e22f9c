"""Interruption -> the script running again, with the laptop closed and with it open, in harness
time.

Usage: python benchmarks/laptop_closed_recovery.py [--rounds 3] [--notice 20]

Each round starts a spot instance in the cloud harness and a job on it with the same trainer
(it checkpoints every 0.2 s and prints the wall time at which it starts), in one of two ways:

- ``open``: ``runctl aws train ID train.py --auto-resume`` stays in the terminal; on the notice
  the runner commits the final checkpoint, the CLI sees the attempt end, launches a replacement,
  waits for its SSM agent and starts attempt 1 through SSM;
- ``closed``: ``runctl aws train ID train.py --auto-resume --detach`` returns at once and no
  runctl process is left; on the notice the runner itself claims attempt 1 and launches the
  successor, whose user data starts the runner, which waits for attempt 0's final status.

The figure is from the interruption (the moment the harness gives the spot notice) to the
trainer's own start time in attempt 1 (staging, checkpoint restore and requirements included).
The harness boots an instance at once (no boot delay is simulated, SSM registers at once), so
the figure is everything but instance boot, as the performance target counts it. On real EC2
the laptop-closed successor also boots *during* the notice window, while the laptop-open
replacement boots only after the old attempt has ended.
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

from benchmarks.spot_recovery import _project  # noqa: E402
from tests.cli.spot_helpers import wait_until  # noqa: E402
from tests.cloud.harness import DEFAULT_PROFILE, Cloud  # noqa: E402

from runctl.services.account.recovery_grant import RECOVERY_POLICY, recovery_policy  # noqa: E402

TRAINER = """
import json, os, signal, sys, time
print("running-at", time.time(), "attempt", os.environ["RUNCTL_ATTEMPT"], flush=True)
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
ckpt = os.environ["RUNCTL_CHECKPOINT_DIR"]
state_path = os.path.join(ckpt, "state.json")
step = json.load(open(state_path))["step"] if os.path.exists(state_path) else 0
while step < 150:
    time.sleep(0.2)
    step += 1
    json.dump({"step": step}, open(state_path + ".tmp", "w"))
    os.replace(state_path + ".tmp", state_path)
    print("step", step, flush=True)
    if stop:
        sys.exit(143)
"""


def _logs(cloud: Cloud, name: str) -> str:
    text = []
    pages = cloud.client("ec2").describe_instances()["Reservations"]
    for instance_id in [i["InstanceId"] for r in pages for i in r["Instances"]]:
        try:
            text += [p.read_text() for p in cloud.sandbox(instance_id).rglob(name)]
        except (FileNotFoundError, KeyError):
            continue
    return "".join(text)


def one_round(cloud: Cloud, workdir: Path, mode: str, notice: float) -> float:
    """Seconds from the spot notice to the trainer running again on the next instance."""
    cloud.begin_test()
    try:
        cloud.client("s3").create_bucket(Bucket="bench")
        cloud.put_role_policy(
            RECOVERY_POLICY, recovery_policy(DEFAULT_PROFILE, region=cloud.region)
        )
        first = cloud.run_instance(spot=True)
        cloud.wait_state(first, "running")
        env = {**cloud.subprocess_env(), "XDG_CACHE_HOME": str(workdir / "cache")}
        args = ["--auto-resume", "-o", "json"] + (["--detach"] if mode == "closed" else [])
        err = workdir / f"stderr-{mode}.txt"
        with err.open("w") as sink:  # a file, not a pipe: nothing blocks on a full buffer
            proc = subprocess.Popen(
                [sys.executable, "-m", "runctl", "aws", "train", first, "train.py", *args],
                cwd=_project(workdir, TRAINER), env=env, stdout=sink, stderr=sink, text=True,
            )  # fmt: skip

        def started() -> bool:
            if proc.poll() not in (None, 0) or (mode == "open" and proc.poll() is not None):
                raise RuntimeError(f"runctl ended ({proc.returncode}): {err.read_text()[-2000:]}")
            return "step 5\n" in _logs(cloud, "attempt-0.log")

        wait_until(started, timeout=180, what="step 5")
        interrupted = time.time()
        cloud.interrupt(first, notice_seconds=notice)
        line = wait_until(
            lambda: [x for x in _logs(cloud, "attempt-1.log").splitlines() if "running-at" in x],
            timeout=notice + 120,
            what="attempt 1",
        )[0]
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        return float(line.split()[1]) - interrupted
    finally:
        cloud.end_test()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--notice", type=float, default=20.0, help="spot notice, seconds")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {"open": [], "closed": []}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("XDG_CACHE_HOME", str(workdir / "cache"))
        cloud = Cloud(workdir / "cloud")
        cloud.start()
        try:
            for _ in range(args.rounds):
                for mode, found in rows.items():
                    found.append(one_round(cloud, workdir, mode, args.notice))
        finally:
            cloud.stop()
    print(f"spot notice: {args.notice:g} s; harness on this host (instance boot not simulated)")
    print(f"{'round':>5} {'laptop open s':>14} {'laptop closed s':>16}")
    for i, (opened, closed) in enumerate(zip(rows["open"], rows["closed"], strict=True), 1):
        print(f"{i:>5} {opened:>14.2f} {closed:>16.2f}")
    print(
        f"{'median':>5} {statistics.median(rows['open']):>14.2f} "
        f"{statistics.median(rows['closed']):>16.2f}"
    )
    print(json.dumps({"notice_seconds": args.notice, **rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
