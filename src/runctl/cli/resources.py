"""``runctl resources list|cleanup|stop-all``: what runctl is running and what it costs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from runctl.cli.aws_clients import ebs_of, ec2_for, ec2_in_regions, job_session, prices_for
from runctl.cli.output import Output
from runctl.cli.registry import group_help
from runctl.cli.state import OutputOption, command_output
from runctl.cli.units import duration, money, monthly
from runctl.errors import UsageError

if TYPE_CHECKING:
    from runctl.services.account.resources import BulkResult, ResourceListing, Scope

resources_app = typer.Typer(
    help=group_help("resources"), rich_markup_mode=None, no_args_is_help=True
)

Project = Annotated[str | None, typer.Option("--project", help="Only this project.")]
AllUsers = Annotated[
    bool, typer.Option("--all-users", help="Every user's resources, not only yours.")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would be done.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Force = Annotated[bool, typer.Option("--force", help="Skip the graceful job step.")]
PLATFORMS = ("aws", "local", "all")


def _scope(project: str | None, all_users: bool, include_foreign: bool = False) -> Scope:
    """The resources a command looks at: yours (``runctl:user``) unless ``--all-users``."""
    from runctl.services.account.resources import Scope

    return Scope.of(project, all_users=all_users, include_foreign=include_foreign)


@resources_app.command("list")
def list_(
    ctx: typer.Context,
    platform: Annotated[str, typer.Option("--platform", help="aws, local or all.")] = "all",
    project: Project = None,
    all_users: AllUsers = False,
    all_regions: Annotated[
        bool, typer.Option("--all-regions", help="Every enabled region.")
    ] = False,
    include_all: Annotated[
        bool, typer.Option("--all", help="Include instances runctl did not create.")
    ] = False,
    output: OutputOption = None,
) -> None:
    """Instances with state, type, lifecycle, age and cost estimates; volumes and snapshots
    with their monthly cost."""
    from runctl.services.account.resources import ResourceListing, list_instances

    out = command_output(ctx, output)
    if platform not in PLATFORMS:
        raise UsageError(f"--platform {platform!r}: use one of {', '.join(PLATFORMS)}")
    scope = _scope(project, all_users or include_all, include_all)
    listing = ResourceListing(rows=[], regions=[], total_hourly_usd=0.0, total_accumulated_usd=0.0)
    if platform in ("aws", "all"):
        clients = ec2_in_regions(ctx) if all_regions else [ec2_for(ctx)]
        with out.spinner(f"listing instances in {len(clients)} region(s)"):
            pairs = ((c, prices_for(c)) for c in clients)
            listing = list_instances(pairs, scope, storage=ebs_of)
    if platform in ("local", "all"):
        listing.notes.append("local: runs on this machine are not tracked as resources yet")
    listing.notes.append(f"scope: {scope.describe()}")
    out.document(listing, lambda o: _print_listing(o, listing))


def _print_listing(out: Output, listing: ResourceListing) -> None:
    out.table(
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
    out.info(
        f"{len(listing.rows)} instance(s) in {', '.join(listing.regions) or 'no region'}; "
        f"running now {money(listing.total_hourly_usd, '/h')}, "
        f"so far {money(listing.total_accumulated_usd)} (estimates; since last start)"
    )
    if listing.volumes or listing.snapshots:
        from runctl.cli.ebs_output import snapshot_table, volume_table

        if listing.volumes:
            volume_table(out, listing.volumes)
        if listing.snapshots:
            snapshot_table(out, listing.snapshots)
        out.info(
            f"{len(listing.volumes)} volume(s), {len(listing.snapshots)} snapshot(s): about "
            f"{monthly(listing.storage_month_usd)}"
        )
    for note in listing.notes:
        out.detail(note)


def _bulk(ctx: typer.Context, action: str, scope: Scope, *, dry_run: bool, yes: bool,
          force: bool, output: str | None, include_volumes: bool = False) -> None:  # fmt: skip
    """``cleanup`` and ``stop-all``: plan, confirm, act (graceful job step unless --force)."""
    from runctl.services.account.resources import act_on_scope

    out = command_output(ctx, output)
    session = job_session(ctx, out)
    plan = act_on_scope(session, action, scope, dry_run=True, include_volumes=include_volumes)
    if scope.user is None:
        out.warn("--all-users: acting on every user's instances")
    doomed = plan.acted_on + (plan.storage.volumes + plan.storage.snapshots if plan.storage else [])
    if doomed and not dry_run and not yes:
        verb = "stop" if action == "stop" else "terminate or delete"
        out.confirm(f"{verb} {', '.join(doomed)}?", refusing=f"{verb} {len(doomed)} resource(s)")
    if not dry_run:
        plan = act_on_scope(session, action, scope, force=force, include_volumes=include_volumes)
    out.document(plan, lambda o: _print_bulk(o, plan))


def _print_bulk(out: Output, result: BulkResult) -> None:
    verb = "stop" if result.action == "stop" else "terminate"
    for instance_id, reason in result.skipped.items():
        out.info(f"skipped {instance_id}: {reason}")
    for instance_id, message in result.job_stops.items():
        out.info(f"{instance_id}: {message}")
    if result.uploads is not None and (result.uploads.aborted or result.uploads.spared):
        done = "would abort" if result.dry_run else "aborted"
        out.info(
            f"{done} {len(result.uploads.aborted)} unfinished upload(s) under "
            f"{result.uploads.prefix}; spared {len(result.uploads.spared)} younger than an hour"
        )
    done = "would " + verb if result.dry_run else verb + ("ped" if verb == "stop" else "d")
    out.success(f"{done}: {', '.join(result.acted_on) or 'nothing'}")
    storage = result.storage
    if storage is not None:
        for resource_id, reason in storage.skipped.items():
            out.info(f"kept {resource_id}: {reason}")
        deleted = storage.volumes + storage.snapshots
        out.success(f"{'would delete' if storage.dry_run else 'deleted'}: "
                    f"{', '.join(deleted) or 'no volume or snapshot'}")  # fmt: skip


@resources_app.command("cleanup")
def cleanup(
    ctx: typer.Context,
    project: Project = None,
    all_users: AllUsers = False,
    dry_run: DryRun = False,
    yes: Yes = False,
    force: Force = False,
    include_volumes: Annotated[
        bool,
        typer.Option("--include-volumes", help="Also your data volumes and their snapshots."),
    ] = False,
    output: OutputOption = None,
) -> None:
    """Terminate your runctl-managed instances and delete the volumes and snapshots runctl made
    for jobs that ended (never protected or foreign ones); each running job commits its
    checkpoint first unless --force."""
    scope = _scope(project, all_users)
    _bulk(ctx, "terminate", scope, dry_run=dry_run, yes=yes, force=force, output=output,
          include_volumes=include_volumes)  # fmt: skip


@resources_app.command("stop-all")
def stop_all(
    ctx: typer.Context,
    project: Project = None,
    all_users: AllUsers = False,
    dry_run: DryRun = False,
    yes: Yes = False,
    force: Force = False,
    output: OutputOption = None,
) -> None:
    """Stop your running runctl-managed instances (never protected or foreign ones); each
    running job commits its checkpoint first unless --force."""
    scope = _scope(project, all_users)
    _bulk(ctx, "stop", scope, dry_run=dry_run, yes=yes, force=force, output=output)
