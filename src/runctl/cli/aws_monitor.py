"""``runctl aws monitor`` (aliases ``logs``, ``watch``) and ``runctl aws processes``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runctl.cli.aws_jobs import InstanceId, LogPrinter, job_clients
from runctl.cli.output import Output
from runctl.cli.state import OutputOption, command_output, get_state
from runctl.cli.units import duration
from runctl.errors import WrongStateError

if TYPE_CHECKING:
    from runctl.services.jobs.follow import JobReader

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
    """Print a job's log; --follow streams it until the job ends (NDJSON with --output json)."""
    from runctl.services.instances.lifecycle import validate_instance_id
    from runctl.services.jobs.follow import InstanceReader, S3Reader
    from runctl.services.jobs.follow import follow as follow_job
    from runctl.services.jobs.lookup import job_ref, require_location

    out = command_output(ctx, output)
    validate_instance_id(instance_id)
    settings = get_state(ctx).config().settings
    clients = job_clients(ctx)
    instance = clients.ec2.describe_instance(instance_id)
    ref = job_ref(instance, job, settings, Path.cwd())
    reader: JobReader
    if instance.state == "running":
        reader = InstanceReader(
            clients.ssm_client, instance_id, ref.job_id, settings.aws.remote_root
        )
    else:
        out.detail(f"{instance_id} is {instance.state}; reading the job's S3 copy")
        reader = S3Reader(clients.s3, require_location(ref, instance_id))
    try:
        first = reader.tail(None, TAIL_BYTES)
    except WrongStateError:  # SSM cannot reach it after all: the S3 copy still can
        if ref.location is None or isinstance(reader, S3Reader):
            raise
        reader = S3Reader(clients.s3, ref.location)
        first = reader.tail(None, TAIL_BYTES)
    text = first.chunk.decode("utf-8", "replace")
    shown = text.splitlines()[-lines:] if lines else []
    state = first.status.state if first.status else "unknown"
    if not follow:
        data = {
            "instance_id": instance_id,
            "job_id": first.job_id,
            "attempt": first.attempt,
            "state": state,
            "exit_code": first.status.exit_code if first.status else None,
            "source": first.source,
            "lines": shown,
        }

        def render(o: Output) -> None:
            for line in shown:
                o.line(line)
            o.info(f"job {first.job_id} attempt {first.attempt}: {state} (from {first.source})")

        out.document(data, render)
        return

    printer = LogPrinter(out, ndjson=out.is_json)
    if shown:
        printer(("\n".join(shown) + "\n").encode())
    location = ref.location
    if location is None and first.job_id:
        location = job_ref(instance, first.job_id, settings, Path.cwd()).location

    def alive() -> bool:
        return clients.ec2.describe_instance(instance_id).state in ("pending", "running")

    result = follow_job(
        reader,
        fallback=(lambda: S3Reader(clients.s3, location)) if location is not None else None,
        attempt=first.attempt,
        offset=first.log_size,
        on_log=printer,
        instance_alive=alive,
    )
    printer.close()
    final = "lost" if result.lost else (result.status.state if result.status else "unknown")
    end = {
        "type": "end",
        "instance_id": instance_id,
        "job_id": first.job_id,
        "attempt": result.attempt,
        "state": final,
        "exit_code": result.status.exit_code if result.status else None,
    }
    if out.is_json:
        out.json_line(end)
    else:
        code = end["exit_code"]
        out.info(f"job {first.job_id} {final}" + ("" if code is None else f" (exit code {code})"))


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
    from runctl.services.instances.lifecycle import validate_instance_id
    from runctl.services.jobs.processes import instance_snapshot

    out = command_output(ctx, output)
    validate_instance_id(instance_id)
    settings = get_state(ctx).config().settings
    clients = job_clients(ctx)
    taken = 0
    while True:
        snap = instance_snapshot(
            clients.ssm_client, instance_id, remote_root=settings.aws.remote_root
        )
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
