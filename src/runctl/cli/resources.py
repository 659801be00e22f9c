"""``runctl resources list|cleanup|stop-all``: what runctl is running and what it costs."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from runctl.cli.aws_clients import ec2_for, ec2_in_regions, prices_for
from runctl.cli.output import Output
from runctl.cli.registry import group_help
from runctl.cli.state import OutputOption, command_output
from runctl.cli.units import duration, money
from runctl.errors import UsageError

resources_app = typer.Typer(
    help=group_help("resources"), rich_markup_mode=None, no_args_is_help=True
)

Project = Annotated[str | None, typer.Option("--project", help="Only this project.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would be done.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
PLATFORMS = ("aws", "local", "all")


@resources_app.command("list")
def list_(
    ctx: typer.Context,
    platform: Annotated[str, typer.Option("--platform", help="aws, local or all.")] = "all",
    project: Project = None,
    all_regions: Annotated[
        bool, typer.Option("--all-regions", help="Every enabled region.")
    ] = False,
    include_all: Annotated[
        bool, typer.Option("--all", help="Include instances runctl did not create.")
    ] = False,
    output: OutputOption = None,
) -> None:
    """Instances with state, type, lifecycle, age and cost estimates."""
    from runctl.services.account.resources import ResourceListing, list_instances

    out = command_output(ctx, output)
    if platform not in PLATFORMS:
        raise UsageError(f"--platform {platform!r}: use one of {', '.join(PLATFORMS)}")
    listing = ResourceListing(rows=[], regions=[], total_hourly_usd=0.0, total_accumulated_usd=0.0)
    if platform in ("aws", "all"):
        clients = ec2_in_regions(ctx) if all_regions else [ec2_for(ctx)]
        with out.spinner(f"listing instances in {len(clients)} region(s)"):
            listing = list_instances(
                ((c, prices_for(c)) for c in clients), project=project, include_all=include_all
            )
    if platform in ("local", "all"):
        listing.notes.append("local: runs on this machine are not tracked as resources yet")

    def text(o: Output) -> None:
        o.table(
            ["id", "project", "state", "type", "market", "age", "$/h", "so far"],
            [
                [
                    r.instance_id,
                    r.project,
                    r.state + (" (protected)" if r.protected else ""),
                    r.instance_type,
                    r.lifecycle,
                    duration(r.age_seconds),
                    money(r.hourly_usd),
                    money(r.accumulated_usd),
                ]
                for r in listing.rows
            ],
        )
        o.info(
            f"{len(listing.rows)} instance(s) in {', '.join(listing.regions) or 'no region'}; "
            f"running now {money(listing.total_hourly_usd, '/h')}, "
            f"so far {money(listing.total_accumulated_usd)} (estimates; since last start)"
        )
        for note in listing.notes:
            o.detail(note)

    out.document(listing, text)


def _bulk(
    ctx: typer.Context,
    action: str,
    project: str | None,
    dry_run: bool,
    yes: bool,
    force: bool,
    output: str | None,
) -> None:
    from runctl.services.account.resources import bulk_action

    out = command_output(ctx, output)
    ec2 = ec2_for(ctx)
    verb = "stop" if action == "stop" else "terminate"
    plan = bulk_action(ec2, action, project=project, dry_run=True)
    if plan.acted_on and not dry_run and not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"refusing to {verb} {len(plan.acted_on)} instance(s) without confirmation: "
                "stdin is not a terminal",
                hint="pass --yes, or --dry-run to see the list",
            )
        if not typer.confirm(f"{verb} {', '.join(plan.acted_on)}?", err=True):
            out.info("nothing done")
            raise typer.Exit(1)
    result = plan if dry_run else bulk_action(ec2, action, project=project, force=force)

    def text(o: Output) -> None:
        for instance_id, reason in result.skipped.items():
            o.info(f"skipped {instance_id}: {reason}")
        done = "would " + verb if dry_run else verb + ("ped" if verb == "stop" else "d")
        o.success(f"{done}: {', '.join(result.acted_on) or 'nothing'}")

    out.document(result, text)


@resources_app.command("cleanup")
def cleanup(
    ctx: typer.Context,
    project: Project = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    force: Annotated[bool, typer.Option("--force", help="Skip the graceful job step.")] = False,
    output: OutputOption = None,
) -> None:
    """Terminate runctl-managed instances (never protected or foreign ones)."""
    _bulk(ctx, "terminate", project, dry_run, yes, force, output)


@resources_app.command("stop-all")
def stop_all(
    ctx: typer.Context,
    project: Project = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    force: Annotated[bool, typer.Option("--force", help="Skip the graceful job step.")] = False,
    output: OutputOption = None,
) -> None:
    """Stop running runctl-managed instances (never protected or foreign ones)."""
    _bulk(ctx, "stop", project, dry_run, yes, force, output)
