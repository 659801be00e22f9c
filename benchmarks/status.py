"""``runctl status`` against ``aws ec2 describe-instances``, for 20 instances in the harness.

Usage: python benchmarks/status.py [--instances 20] [--repeat 7] [--jobs 4]

Starts a harness account with a job bucket and ``--instances`` runctl instances of the caller
(``--jobs`` of them with a finished job recorded in the bucket, so status reads job records and
prices them too), then runs, as subprocesses and alternately, ``runctl status --output json``
and ``aws ec2 describe-instances`` (the AWS CLI, when installed, on the same endpoint), and
prints the median wall time of each and their ratio. ``runctl status`` asks EC2 for the
instances and volumes, S3 for the month's jobs (and their storage), and the spot price history
and price table for the costs; describe-instances only lists instances.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cloud.harness import Cloud  # noqa: E402

from runctl.services.tags import current_user  # noqa: E402

BUCKET = "bench-status"


def median_seconds(command: list[str], env: dict[str, str], cwd: Path, repeat: int) -> float:
    subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=True)  # warm up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def populate(cloud: Cloud, count: int, jobs: int) -> None:
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    tags = {"runctl:managed": "true", "runctl:project": "bench", "runctl:user": current_user()}
    for index in range(count):
        job = f"bench-20990101-0000{index:02d}-beef" if index < jobs else None
        instance_id = cloud.run_instance(tags={**tags, **({"runctl:job": job} if job else {})})
        if job is None:
            continue
        prefix = f"runctl/bench/jobs/{job}/"
        spec = {"job_id": job, "project": "bench", "script": "t.py", "user": current_user(),
                "launch_spec": {"instance_type": "t3.micro", "lifecycle": "on-demand"}}  # fmt: skip
        status = {"job_id": job, "state": "succeeded", "instance_ids": [instance_id],
                  "created": "2099-01-01T00:00:00.000Z",
                  "ended": "2099-01-01T00:10:00.000Z"}  # fmt: skip
        s3.put_object(Bucket=BUCKET, Key=prefix + "job.json", Body=json.dumps(spec).encode())
        s3.put_object(Bucket=BUCKET, Key=prefix + "status.json", Body=json.dumps(status).encode())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    aws = shutil.which("aws")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        project = workdir / "project"
        project.mkdir()
        (project / ".runctl.toml").write_text(f'[aws]\ns3_bucket = "{BUCKET}"\n')
        cloud = Cloud(workdir / "cloud")
        cloud.start()
        try:
            cloud.begin_test()
            populate(cloud, args.instances, args.jobs)
            env = {**cloud.subprocess_env(), "XDG_CACHE_HOME": str(workdir / "cache")}
            env.pop("COLUMNS", None)
            rows = [("runctl status --output json", median_seconds(
                [sys.executable, "-m", "runctl", "status", "--output", "json"], env, project,
                args.repeat))]  # fmt: skip
            if aws is not None:
                rows.append(("aws ec2 describe-instances", median_seconds(
                    [aws, "ec2", "describe-instances", "--output", "json"], env, project,
                    args.repeat)))  # fmt: skip
            cloud.end_test()
        finally:
            cloud.stop()
    print(f"{args.instances} runctl instances ({args.jobs} with a job), harness on this host, "
          f"median of {args.repeat}")  # fmt: skip
    print(f"{'command':<30} {'median ms':>10}")
    for name, seconds in rows:
        print(f"{name:<30} {seconds * 1000:>10.1f}")
    if len(rows) == 2:
        print(f"ratio runctl/aws: {rows[0][1] / rows[1][1]:.2f}")
    else:
        print("aws CLI not found: pip install awscli for the comparison", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
