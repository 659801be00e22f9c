"""How ``status`` and ``top`` look: one rich renderable built from a StatusReport.

``status`` prints it once; ``top`` redraws it in a rich Live display, with each instance's CPU,
GPU and memory and each running job's last log line added.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from runctl.cli.units import duration, money, monthly

if TYPE_CHECKING:
    from runctl.services.overview.status import StatusReport


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def usage_cells(snapshot: Mapping[str, Any] | None) -> list[str]:
    """CPU %, GPU % (mean over the GPUs) and memory used, from an ``aws processes`` snapshot."""
    if snapshot is None:
        return ["-", "-", "-"]
    cpu = snapshot.get("cpu", {}).get("percent")
    gpus = snapshot.get("gpus") or []
    loads = [g["utilization_percent"] for g in gpus if g.get("utilization_percent") is not None]
    memory = snapshot.get("memory", {})
    used, total = memory.get("used_bytes"), memory.get("total_bytes")
    mem = f"{100 * used / total:.0f}%" if used is not None and total else "-"
    gpu = f"{sum(loads) / len(loads):.0f}%" if loads else "-"
    return [f"{cpu:.0f}%" if cpu is not None else "-", gpu, mem]


def render_status(
    report: StatusReport,
    *,
    usage: Mapping[str, Mapping[str, Any] | None] | None = None,
    last_lines: Mapping[str, str] | None = None,
    footer: str | None = None,
    problems: Mapping[str, str] | None = None,
) -> RenderableType:
    """The status screen; with ``usage`` (snapshots by instance id) and ``last_lines`` (by job
    id) the columns ``top`` adds."""
    columns = [
        "instance",
        "project",
        "state",
        "type",
        "market",
        "zone",
        "up",
        "$/h",
        "so far",
        "job",
        "job state",
    ]
    if usage is not None:
        columns += ["cpu", "gpu", "mem"]
    instances = _table(f"instances ({report.region})", columns)
    for line in report.instances:
        r = line.row
        cells = [
            r.instance_id,
            r.project,
            r.state + (" (protected)" if r.protected else ""),
            r.instance_type,
            r.lifecycle,
            r.availability_zone,
            duration(r.age_seconds),
            money(r.hourly_usd),
            money(r.accumulated_usd),
            r.job,
            line.job_state,
        ]
        if usage is not None:
            cells += usage_cells(usage.get(r.instance_id))
        instances.add_row(*(_cell(c) for c in cells))
    parts: list[RenderableType] = [
        instances if report.instances else Text(f"no instance ({report.scope}) in {report.region}")
    ]
    job_columns = ["job", "project", "state", "instance", "running for", "cost so far"]
    if last_lines is not None:
        job_columns.append("last log line")
    jobs = _table("jobs running now", job_columns)
    for row in report.running_jobs:
        cells = [
            row.job_id,
            row.spec.project,
            row.state,
            row.instance_id,
            duration(row.cost.instance_seconds),
            money(row.cost.usd),
        ]
        if last_lines is not None:
            cells.append(last_lines.get(row.job_id, ""))
        jobs.add_row(*(_cell(c) for c in cells))
    parts.append(jobs if report.running_jobs else Text("no job running now"))
    if report.volumes:
        volumes = _table(
            "volumes", ["volume", "name", "state", "size", "zone", "attached to", "cost"]
        )
        for v in report.volumes:
            volumes.add_row(
                *(
                    _cell(c)
                    for c in [
                        v.volume_id,
                        v.name,
                        v.state,
                        f"{v.size_gb} GiB",
                        v.availability_zone,
                        v.attached_to,
                        monthly(v.month_usd),
                    ]
                )
            )
        parts.append(volumes)
    parts.append(Text(summary_line(report)))
    for where, message in (problems or {}).items():
        parts.append(Text(f"{where}: {message}", style="yellow"))
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)


def summary_line(report: StatusReport) -> str:
    """Totals: instances running now at $/h, jobs running, the month's spend so far."""
    running = sum(1 for i in report.instances if i.row.state in ("pending", "running"))
    said = (
        f"{running} instance(s) running at {money(report.hourly_usd, '/h')}, "
        f"{len(report.running_jobs)} job(s) running"
    )
    month = report.month
    if month is not None:
        said += (
            f"; {month.since:%B %Y} so far {money(month.usd)} (jobs {money(month.jobs_usd)}, "
            f"storage {money(month.storage_usd)}; estimates)"
        )
    return said
