"""``runctl aws monitor`` (aliases ``logs``, ``watch``) and ``runctl aws processes``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runctl.cli.aws_clients import job_session
from runctl.cli.job_output import LogPrinter, print_follow_end
from runctl.cli.output import Output
from runctl.cli.state import InstanceId, OutputOption, command_output
from runctl.cli.units import duration

if TYPE_CHECKING:
    from runctl.services.jobs.follow import Glance

TAIL_BYTES = 15_000


def monitor(
    ctx: typer.Context,
    instance_id: InstanceId,
    job: Annotated[str | None, typer.Option("--job", help="Job id (default: the latest).")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream new output until the job ends.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines of log to show.", min=0)] = 50,
    output: OutputOption = None,
) -> None:
    """Print a job's log; --follow streams it until the job ends (NDJSON with --output json)
    and exits with its verdict: 0 when it succeeded, 7 when it failed, was interrupted or lost."""
    out = command_output(ctx, output)
    watch = job_session(ctx, out).watch(instance_id, job)
    glance = watch.tail(TAIL_BYTES)
    if not follow:
        out.document(glance.to_dict(instance_id, lines), lambda o: _print_glance(o, glance, lines))
        return
    printer = LogPrinter(out, ndjson=out.is_json)
    shown = glance.lines(lines)
    if shown:
        printer(("\n".join(shown) + "\n").encode())
    seen = glance.observation
    result = watch.follow(on_log=printer, attempt=seen.attempt, offset=seen.log_size)
    printer.close()
    print_follow_end(out, watch, result)


def _print_glance(out: Output, glance: Glance, count: int) -> None:
    for line in glance.lines(count):
        out.line(line)
    seen = glance.observation
    out.info(f"job {seen.job_id} attempt {seen.attempt}: {glance.state} (from {seen.source})")


def processes(
    ctx: typer.Context,
    instance_id: InstanceId,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between refreshes.", min=1)
    ] = 5.0,
    count: Annotated[
        int | None, typer.Option("--count", help="With --watch: stop after N snapshots.", min=1)
    ] = None,
    output: OutputOption = None,
) -> None:
    """CPU, memory, disk, GPUs and the job's processes (NDJSON with --watch --output json)."""
    out = command_output(ctx, output)
    session = job_session(ctx, out)
    taken = 0
    while True:
        snap = session.processes(instance_id)
        if out.is_json:
            out.json_line(snap)
        else:
            _render_snapshot(out, snap)
        taken += 1
        if not watch or (count is not None and taken >= count):
            return
        time.sleep(interval)


def _render_snapshot(out: Output, snap: dict[str, Any]) -> None:
    gib = 1024**3
    mem, disk, cpu = snap["memory"], snap["disk"], snap["cpu"]
    out.fields(
        [
            ("instance", snap["instance_id"]),
            ("cpu", f"{cpu['percent']}% of {cpu['count']} cores, load {cpu['load_average']}"),
            ("memory", f"{mem['used_bytes'] / gib:.1f} / {mem['total_bytes'] / gib:.1f} GiB"),
            ("disk", f"{disk['used_bytes'] / gib:.1f} / {disk['total_bytes'] / gib:.1f} GiB"),
            ("job", snap["job_id"] or "none running"),
        ]
    )
    for gpu in snap["gpus"]:
        out.line(
            f"gpu {gpu['index']}: {gpu['name']} {gpu['utilization_percent']}% "
            f"{gpu['memory_used_mb']}/{gpu['memory_total_mb']} MB"
        )
    if snap["processes"]:
        out.table(
            ["pid", "cpu time", "rss MB", "command"],
            [
                [
                    p["pid"],
                    duration(p["cpu_seconds"]),
                    f"{p['rss_bytes'] / 1e6:.0f}",
                    "  " * p["depth"] + p["command"],
                ]
                for p in snap["processes"]
            ],
        )
