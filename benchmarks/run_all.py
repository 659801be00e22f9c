"""Every performance figure of runctl against its reference tool, in one run, as a Markdown table.

Usage:
    python benchmarks/run_all.py [--repeat N] [--before RUNCTL] [--out results.md]
        [--large-mb 1024] [--skip-startup] [--skip-harness] [--skip-rgw] [--skip-install]

Rows (each a ratio runctl / reference taken in the same run, pair by pair, or a peak RSS):
start-up (``--help``, ``config show``, ``aws status --help`` against ``aws --version``); ``aws
status ID`` against ``aws ec2 describe-instances`` on the cloud test harness (moto plus SSM); the
peak RSS of a large download from moto, runctl against the AWS CLI; on Ceph RGW (started here
when its packages are installed, see ``.ci/services.sh``): one large download against the AWS
CLI, 200 x 1 MB up and down and a no-change sync of 1,000 files against s5cmd; and the README's
first commands on a fresh virtualenv with an empty pip cache.

``--before`` names another runctl executable (say, the one of an older commit installed in a
virtualenv of its own): every row then has a "before" column measured in the same run. Nothing
here asserts a threshold; ``docs/reference.md`` ("Performance targets") says what is aimed for.
Needs the ``bench`` and ``dev`` extras (awscli, s5cmd, moto).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

MB = 1024 * 1024


@dataclass(frozen=True)
class Run:
    """One finished process: wall seconds, CPU seconds (user + system) and peak RSS in MB."""

    wall: float
    cpu: float
    peak_mb: float


def run_once(
    argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Run:
    """Run ``argv`` to the end; the kernel's own accounting of that one process (``wait4``)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.decode()[-800:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


# A process started from this one inherits its memory high-water mark at exec (Linux keeps the
# larger of the two in the child's maxrss), and this one holds moto's objects: a small launcher
# starts the measured command, so its peak starts from the launcher's few MB.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def peak_rss_mb(argv: Sequence[str], env: dict[str, str], work: Path) -> float:
    """The peak RSS of ``argv`` run to the end, in MB."""
    report = work / "peak.txt"
    run_once([sys.executable, "-c", _LAUNCHER, str(report), *argv], env)
    code, kilobytes = report.read_text().split()
    if code != "0":
        raise RuntimeError(f"{' '.join(argv)} exited {code}")
    return int(kilobytes) / 1024


@dataclass
class Row:
    """One line of the table: what was measured, the figure now and, with --before, before."""

    figure: str
    now: str
    before: str = ""
    note: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(
            f"  {row.figure}: {row.now} {('(before ' + row.before + ')') if row.before else ''}",
            file=sys.stderr,
        )

    def markdown(self, with_before: bool) -> str:
        head = "| figure | " + ("before | " if with_before else "") + "now | notes |"
        rule = "|---|" + ("---|" if with_before else "") + "---|---|"
        lines = [head, rule]
        for row in self.rows:
            cells = [row.figure, *([row.before] if with_before else []), row.now, row.note]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def paired_ratio(
    a: Sequence[str], b: Sequence[str], repeat: int, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Median wall ratio and median CPU ratio of A/B, A and B run in turn (one warm-up each)."""
    run_once(a, env)
    run_once(b, env)
    walls, cpus = [], []
    for _ in range(repeat):
        ra, rb = run_once(a, env), run_once(b, env)
        walls.append(ra.wall / rb.wall)
        cpus.append(ra.cpu / rb.cpu)
    return statistics.median(walls), statistics.median(cpus)


def ratio_text(wall: float, cpu: float) -> str:
    return f"{wall:.2f}× (CPU {cpu:.2f}×)"


def startup_rows(table: Table, runctl: list[str], before: list[str] | None, repeat: int) -> None:
    aws = [require("aws"), "--version"]
    with tempfile.TemporaryDirectory(prefix="runctl-startup-") as home:
        env = {**os.environ, "HOME": home}
        for label, args in (
            ("`runctl --help` / `aws --version`", ["--help"]),
            ("`runctl --version` / `aws --version`", ["--version"]),
            ("`runctl config show` / `aws --version`", ["config", "show"]),
            ("`runctl aws status --help` / `aws --version`", ["aws", "status", "--help"]),
        ):
            now = paired_ratio([*runctl, *args], aws, repeat, env)
            old = paired_ratio([*before, *args], aws, repeat, env) if before else None
            table.add(Row(label, ratio_text(*now), ratio_text(*old) if old else "", "median"))


def harness_rows(
    table: Table, runctl: list[str], before: list[str] | None, repeat: int, large_mb: int
) -> None:
    """``aws status`` and the large download's memory, on the cloud harness (moto + SSM)."""
    from tests.cloud.harness import Cloud

    with tempfile.TemporaryDirectory(prefix="runctl-harness-") as tmp:
        cloud = Cloud(Path(tmp) / "cloud")
        cloud.start()
        try:
            cloud.begin_test()
            instance_id = cloud.run_instance()
            env = cloud.subprocess_env()
            Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
            aws = [require("aws"), "ec2", "describe-instances", "--instance-ids", instance_id]
            status = ["aws", "status", instance_id]
            now = paired_ratio([*runctl, *status], aws, repeat, env)
            old = paired_ratio([*before, *status], aws, repeat, env) if before else None
            table.add(
                Row(
                    "`runctl aws status ID` / `aws ec2 describe-instances --instance-ids ID` "
                    "(moto)",
                    ratio_text(*now),
                    ratio_text(*old) if old else "",
                    "median; a running instance, SSM online",
                )
            )
            download_memory_row(table, cloud, env, runctl, before, large_mb, Path(tmp))
        finally:
            cloud.stop()


def download_memory_row(
    table: Table,
    cloud: Any,
    env: dict[str, str],
    runctl: list[str],
    before: list[str] | None,
    large_mb: int,
    work: Path,
) -> None:
    client = cloud.client("s3")
    client.create_bucket(Bucket="bench-memory")
    source = work / "large.bin"
    with source.open("wb") as stream:
        for _ in range(large_mb // 16):
            stream.write(os.urandom(16 * MB))
    run_once([*runctl, "s3", "upload", str(source), "s3://bench-memory/large.bin"], env)
    source.unlink()

    def peak(argv: list[str]) -> float:
        target = work / "out.bin"
        try:
            return peak_rss_mb(argv, env, work)
        finally:
            target.unlink(missing_ok=True)

    uri, target = "s3://bench-memory/large.bin", str(work / "out.bin")
    mine = peak([*runctl, "s3", "download", uri, target])
    theirs = peak([require("aws"), "s3", "cp", uri, target, "--quiet"])
    old = peak([*before, "s3", "download", uri, target]) if before else None
    table.add(
        Row(
            f"{large_mb} MB download, peak RSS, runctl / aws-cli (moto)",
            f"{mine:.0f} MB / {theirs:.0f} MB",
            f"{old:.0f} MB / {theirs:.0f} MB" if old is not None else "",
            "one run each (kernel's maxrss of the process)",
        )
    )


def rgw_rows(table: Table, before: list[str] | None, repeat: int) -> None:
    """Transfers on a real S3 server (Ceph RGW), through benchmarks/s3_transfer.py's cases."""
    import s3_transfer
    from tests.cloud.services import start_rgw

    with tempfile.TemporaryDirectory(prefix="runctl-rgw-") as tmp:
        try:
            rgw = start_rgw(Path(tmp) / "rgw", memstore_gib=6)
        except Exception as exc:  # a missing package or a daemon that would not start
            table.add(Row("Ceph RGW rows", "not measured", "", f"RGW did not start: {exc}"))
            return
        try:
            server = s3_transfer.Server(
                rgw.endpoint, rgw.access_key, rgw.secret_key, rgw.region, lambda: None
            )
            client = rgw.client()
            s3_transfer.create_bucket(client, "bench")
            variants = {"before": before} if before else {}
            work = Path(tmp) / "work"
            work.mkdir()
            bench = s3_transfer.Bench(server, client, "bench", work, variants)
            tools = ["runctl", "aws", "s5cmd", *variants]
            cases = {
                "large-down": ("aws", "256 MB download on Ceph RGW, runctl / aws-cli"),
                "small-up": ("s5cmd", "200 × 1 MB upload on Ceph RGW, runctl / s5cmd"),
                "small-down": ("s5cmd", "200 × 1 MB download on Ceph RGW, runctl / s5cmd"),
                "sync-nochange": ("s5cmd", "no-change sync of 1,000 files, runctl / s5cmd"),
            }
            for case, (other, label) in cases.items():
                samples: dict[str, list[Any]] = {tool: [] for tool in tools}
                for rep in range(repeat):
                    for tool in tools[rep % len(tools) :] + tools[: rep % len(tools)]:
                        samples[tool].append(bench.time_case(tool, case))

                table.add(
                    Row(
                        label,
                        ratio_text(*median_ratio(samples["runctl"], samples[other])),
                        ratio_text(*median_ratio(samples["before"], samples[other]))
                        if before
                        else "",
                        f"median of {repeat}; verification on",
                    )
                )
        finally:
            rgw.stop()


def median_ratio(mine: list[Any], theirs: list[Any]) -> tuple[float, float]:
    """Median wall and CPU ratios of runs taken pair by pair."""
    pairs = list(zip(mine, theirs, strict=True))
    return (
        statistics.median(a.wall / b.wall for a, b in pairs),
        statistics.median(a.cpu / b.cpu for a, b in pairs),
    )


def fresh_install_rows(table: Table, before_ref: str | None) -> None:
    """The README's first commands from a copy of this checkout: a new virtualenv, an empty pip
    cache, the install, then ``runctl local`` on the example. With ``before_ref`` (a git ref)
    the same for the old README's ``pip install -e ".[dev]"``."""

    def timed(steps: list[list[str]], cwd: Path, cache: Path) -> float:
        env = {**os.environ, "PIP_CACHE_DIR": str(cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        start = time.perf_counter()
        for step in steps:
            subprocess.run(step, cwd=cwd, env=env, check=True, capture_output=True)
        return time.perf_counter() - start

    def tree(ref: str | None, dest: Path) -> Path:
        dest.mkdir(parents=True)
        if ref is None:  # this checkout as it is, uncommitted edits included
            shutil.copytree(ROOT, dest, dirs_exist_ok=True, ignore=_ignore_build)
            return dest
        archive = ["git", "-C", str(ROOT), "archive", ref]
        tar = subprocess.run(archive, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
        return dest

    with tempfile.TemporaryDirectory(prefix="runctl-fresh-") as tmp:
        base = Path(tmp)

        def readme(src: Path, venv: Path, install: list[str], cache: Path) -> tuple[float, float]:
            python = str(venv / "bin" / "python")
            setup = timed(
                [[sys.executable, "-m", "venv", str(venv)], [python, *install]], src, cache
            )
            local = [str(venv / "bin" / "runctl"), "local", "training/train_mnist.py"]
            run = timed([[*local, "--", "--epochs", "2"]], src, cache)
            return setup, run

        now_src = tree(None, base / "now")
        install = ["-m", "pip", "install", "-q", "-e", ".", "-r", "training/requirements.txt"]
        setup, run = readme(now_src, base / "venv-now", install, base / "cache-now")
        dev = timed(
            [[str(base / "venv-now" / "bin" / "python"), "-m", "pip", "install", "-q", "-e",
              ".[dev]"]],
            now_src,
            base / "cache-now-dev",
        )  # fmt: skip
        old = ""
        if before_ref:
            old_src = tree(before_ref, base / "before")
            dev_install = ["-m", "pip", "install", "-q", "-e", ".[dev]"]
            old_setup, old_run = readme(old_src, base / "venv-old", dev_install, base / "cache-old")
            old = f"{old_setup + old_run:.0f} s (install {old_setup:.0f} s)"
        table.add(
            Row(
                "the README's first command on a fresh machine",
                f"{setup + run:.0f} s (install {setup:.0f} s, `runctl local` {run:.0f} s)",
                old,
                f"new venv, empty pip cache; the test command's `pip install -e .[dev]` then "
                f"adds {dev:.0f} s",
            )
        )


def _ignore_build(directory: str, names: list[str]) -> list[str]:
    skip = {".git", ".runctl", "checkpoints", "__pycache__", ".mypy_cache", ".ruff_cache"}
    return [n for n in names if n in skip or n.endswith(".egg-info")]


def require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise SystemExit(f"`{tool}` is not on PATH: pip install -e '.[bench]'")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--before", help="another runctl executable, measured in the same run")
    parser.add_argument(
        "--before-ref", help="git ref whose README install is timed as 'before' (with --before)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmark-results.md"))
    parser.add_argument("--large-mb", type=int, default=1024)
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-harness", action="store_true")
    parser.add_argument("--skip-rgw", action="store_true")
    parser.add_argument("--skip-install", action="store_true")
    args = parser.parse_args()
    runctl = [require("runctl")]
    before = [args.before] if args.before else None
    table = Table()
    steps: list[Callable[[], None]] = []
    if not args.skip_startup:
        steps.append(lambda: startup_rows(table, runctl, before, args.repeat))
    if not args.skip_harness:
        steps.append(
            lambda: harness_rows(table, runctl, before, max(3, args.repeat // 2), args.large_mb)
        )
    if not args.skip_rgw:
        steps.append(lambda: rgw_rows(table, before, max(3, args.repeat // 2)))
    if not args.skip_install:
        steps.append(lambda: fresh_install_rows(table, args.before_ref))
    for step in steps:
        step()
    text = table.markdown(with_before=before is not None)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    print(f"(written to {args.out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
