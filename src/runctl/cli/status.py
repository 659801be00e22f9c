"""``runctl status`` and ``runctl top``: what runs and what it costs, once or live."""

from __future__ import annotations

from typing import Annotated

import typer

from runctl.cli.aws_clients import job_session
from runctl.cli.state import OutputOption, command_output

ProjectOption = Annotated[str | None, typer.Option("--project", help="Only this project.")]
AllUsers = Annotated[
    bool, typer.Option("--all-users", help="Every user's resources, not only yours.")
]


def status(
    ctx: typer.Context,
    project: ProjectOption = None,
    all_users: AllUsers = False,
    output: OutputOption = None,
) -> None:
    """Instances (type, market, zone, uptime, $/h, cost so far, job), jobs running now,
    volumes, and the month's runctl spend so far."""
    from runctl.cli.dashboard import render_status
    from runctl.services.account.resources import Scope
    from runctl.services.overview.status import gather_status

    out = command_output(ctx, output)
    scope = Scope.of(project, all_users=all_users)
    session = job_session(ctx, out)
    with out.spinner("reading instances, jobs and volumes"):
        report = gather_status(session, scope)
    out.document(report.to_dict(), lambda o: o.render(render_status(report)))
    for note in report.notes:
        out.detail(note)


def top(
    ctx: typer.Context,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between refreshes.", min=1)
    ] = 5.0,
    project: ProjectOption = None,
    all_users: AllUsers = False,
    output: OutputOption = None,
) -> None:
    """A live dashboard: status plus CPU/GPU/memory per instance and each job's last log line
    (q or Ctrl-C to leave); prints status once when stdout is not a terminal."""
    import sys
    from datetime import datetime

    from rich.console import Console, RenderableType

    from runctl.cli.dashboard import render_status
    from runctl.cli.live import run_live, terminal_keys
    from runctl.services.account.resources import Scope
    from runctl.services.overview.top import TopFrame, TopPoller

    out = command_output(ctx, output)
    if out.is_json or not sys.stdout.isatty() or not sys.stdin.isatty():
        status(ctx, project=project, all_users=all_users, output=output)
        return
    poller = TopPoller(job_session(ctx, out), Scope.of(project, all_users=all_users))

    def render(frame: TopFrame, footer: str) -> RenderableType:
        return render_status(frame.report, usage=frame.usage, last_lines=frame.last_lines,
                             footer=footer, problems=frame.errors)  # fmt: skip

    try:
        with terminal_keys() as keys:
            run_live(Console(), poller.poll, render, interval=interval, keys=keys,
                     clock=datetime.now)  # fmt: skip
    except KeyboardInterrupt:
        pass  # Ctrl-C is how one leaves top


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("top")(top)
