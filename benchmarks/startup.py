"""Start-up time: ``runctl --help`` (and friends) against ``aws --version``, in the same run.

Usage: python benchmarks/startup.py [--repeat N]

Prints the median wall time of each command over N runs and the ratio to ``aws --version`` (awscli
from PyPI). The target (docs/reference.md, "Performance targets"): at most half the AWS CLI's time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_seconds(cmd: list[str], repeat: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the page cache
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    aws = shutil.which("aws")
    runctl = shutil.which("runctl")
    if aws is None or runctl is None:
        print("needs both `aws` (pip install awscli) and `runctl` on PATH", file=sys.stderr)
        return 2
    baseline = median_seconds([aws, "--version"], args.repeat)
    rows = [("aws --version", baseline)]
    for argv in (["--help"], ["--version"], ["config", "show"]):
        rows.append((f"runctl {' '.join(argv)}", median_seconds([runctl, *argv], args.repeat)))
    print(f"{'command':<24} {'median ms':>10} {'vs aws':>8}")
    for name, seconds in rows:
        print(f"{name:<24} {seconds * 1000:>10.1f} {seconds / baseline:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
