"""``runctl doctor``: pre-flight checks, one line each, with the fix for what fails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from runctl.cli.aws_clients import aws_in_region
from runctl.cli.output import Output
from runctl.cli.state import OutputOption, command_output, get_state

if TYPE_CHECKING:
    from runctl.services.overview.doctor import DoctorReport

MARKS = {
    "passed": "[green]✓[/green]",
    "failed": "[red]✗[/red]",
    "unknown": "[yellow]?[/yellow]",
    "skipped": "[dim]-[/dim]",
}


def doctor(
    ctx: typer.Context,
    instance_type: Annotated[
        str | None,
        typer.Option("--instance-type", help="Check the quota and AMI for this type."),
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="Check this region.")] = None,
    output: OutputOption = None,
) -> None:
    """Pre-flight: credentials, region, bucket, instance profile and its permissions, vCPU
    quota, AMI, SSM; exits 0 only when every check passes."""
    from runctl.services.overview.doctor import run_doctor

    out = command_output(ctx, output)
    settings = get_state(ctx).config().settings
    aws = aws_in_region(ctx, region or get_state(ctx).region)
    with out.spinner("checking"):
        report = run_doctor(aws, settings, instance_type=instance_type)
    out.document(report.to_dict(), lambda o: _print(o, report))
    if not report.ok:
        raise typer.Exit(report.exit_code)


def _print(out: Output, report: DoctorReport) -> None:
    width = max(len(c.name) for c in report.checks)
    for check in report.checks:
        out.mark_line(MARKS[check.status], f"{check.name:<{width}}  {check.detail}")
        if check.fix and check.status != "passed":
            out.mark_line(" ", f"{'':<{width}}  fix: {check.fix}")
    failed = sum(c.failed for c in report.checks)
    summary = "all checks passed" if report.ok else f"{failed} check(s) failed"
    out.info(f"{summary} ({report.region}, {report.instance_type})")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
