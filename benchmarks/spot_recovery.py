"""Spot interruption figures, in harness time: notice -> checkpoint committed, and
interruption -> training running again on a replacement.

Usage: python benchmarks/spot_recovery.py [--rounds 3] [--checkpoint-mb 1] [--scenario S]
       [--requirements "numpy pandas"]

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

``--scenario requirements``: the trainer imports numpy from a ``requirements.txt`` holding
``--requirements`` (default ``numpy``), installed by pip from the package index the instance's
pip is configured with. Once the first
instance has built the venv and uploaded it, a 20 s notice comes; each round runs twice, with the
packed venv left in S3 (the replacement unpacks it) and with it deleted before the notice (the
replacement runs pip, as runctl did before). The figures: interruption -> the replacement's
script running (``script_started``), the replacement's staging, the venv step alone (from the
job log), and interruption -> the replacement's runner starting, the figure runctl printed
before it counted staging.

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
from typing import Any

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

NUMPY_TRAINER = TRAINER.replace("import json, os", "import numpy\nimport json, os", 1).replace(
    "while step < 60:",
    "while step < 300:",  # still running when the notice comes
)
VENV_STEP = re.compile(r"venv \S+: (built|restored|reused) in ([0-9.]+)s")


def _project(workdir: Path, trainer: str, requirements: str | None = None) -> Path:
    project = workdir / f"p{time.monotonic_ns()}"
    project.mkdir()
    if requirements is not None:
        (project / "requirements.txt").write_text(requirements)
    (project / "pyproject.toml").write_text('[project]\nname = "bench"\n')
    (project / ".runctl.toml").write_text(
        '[aws]\ns3_bucket = "bench"\nproject_name = "bench"\n'
        "[checkpoint]\nsync_interval_seconds = 2\n"
    )
    (project / "train.py").write_text(trainer)
    return project


def _train_until_step_5(
    cloud: Cloud, workdir: Path, trainer: str, *args: str, requirements: str | None = None
) -> tuple[str, subprocess.Popen[str]]:
    """``aws train ID train.py ARGS`` on a new spot instance, once its script reached step 5."""
    project = _project(workdir, trainer, requirements)
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
    deadline = time.monotonic() + 600  # the first instance may run pip first
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


def requirements_round(
    cloud: Cloud, workdir: Path, cached: bool, requirements: str
) -> tuple[float, ...]:
    """interruption -> script running, the replacement's staging and venv step, and
    interruption -> the replacement's runner starting; with the packed venv ``cached`` or not."""
    cloud.begin_test()
    try:
        first, proc = _train_until_step_5(
            cloud, workdir, NUMPY_TRAINER, "--auto-resume", "-o", "json", "--", "0.1",
            requirements="\n".join(requirements.split()) + "\n",
        )  # fmt: skip
        s3 = cloud.client("s3")
        deadline = time.monotonic() + 600
        # The first instance packs and uploads while the script runs; the metadata comes last.
        while not any(k.endswith(".json") for k in _venv_keys(s3)):
            if time.monotonic() > deadline:
                raise RuntimeError("the first instance never published its venv")
            time.sleep(0.2)
        if not cached:
            gone = [{"Key": key} for key in _venv_keys(s3)]
            s3.delete_objects(Bucket="bench", Delete={"Objects": gone})
        cloud.interrupt(first, notice_seconds=20)
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(err[-2000:])
        doc = json.loads(out)
        interrupted, resumed = doc["timeline"][0], doc["timeline"][1]
        prefix = doc["job_uri"].removeprefix("s3://bench/")
        log = s3.get_object(Bucket="bench", Key=f"{prefix}logs/attempt-1.log")["Body"].read()
        step = VENV_STEP.search(log.decode("utf-8", "replace"))
        venv_seconds = float(step.group(2)) if step else float("nan")
        notice = datetime.fromisoformat(interrupted["notice"].replace("Z", "+00:00"))
        runner = datetime.fromisoformat(resumed["started"].replace("Z", "+00:00"))
        return (
            interrupted["recovery_seconds"],
            resumed["staging_seconds"],
            venv_seconds,
            (runner - notice).total_seconds(),
        )
    finally:
        cloud.end_test()


def _venv_keys(s3: Any) -> list[str]:
    listed = s3.list_objects_v2(Bucket="bench", Prefix="runctl/bench/venvs/")
    return [o["Key"] for o in listed.get("Contents", [])]


def report_requirements(rows: dict[str, list[tuple[float, ...]]], requirements: str) -> None:
    print(f"requirements.txt: {requirements}; spot notice: 20 s; harness on this host")
    heads = ("interruption->script s", "staging s", "venv step s", "->runner start s")
    print(f"{'venv':>24} {'round':>5} " + " ".join(f"{h:>23}" for h in heads))
    for label, found in rows.items():
        for i, row in enumerate(found, 1):
            print(f"{label:>24} {i:>5} " + " ".join(f"{v:>23.2f}" for v in row))
        medians = [statistics.median(r[k] for r in found) for k in range(len(heads))]
        print(f"{label:>24} {'med':>5} " + " ".join(f"{v:>23.2f}" for v in medians))


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
    parser.add_argument(
        "--scenario", choices=("atomic", "rewrite", "requirements"), default="atomic"
    )
    parser.add_argument("--requirements", default="numpy", help="packages, space-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("XDG_CACHE_HOME", str(workdir / "cache"))
        cloud = Cloud(workdir / "cloud")
        cloud.start()
        try:
            if args.scenario == "requirements":
                rows: dict[str, list[tuple[float, ...]]] = {
                    "pip (no packed venv)": [],
                    "unpacked from S3": [],
                }
                wanted = args.requirements
                for _ in range(args.rounds):
                    rows["pip (no packed venv)"].append(
                        requirements_round(cloud, workdir, False, wanted)
                    )
                    rows["unpacked from S3"].append(
                        requirements_round(cloud, workdir, True, wanted)
                    )
                report_requirements(rows, wanted)
                return 0
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
