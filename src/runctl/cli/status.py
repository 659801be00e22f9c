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


def register(app: typer.Typer) -> None:
    app.command("status")(status)
