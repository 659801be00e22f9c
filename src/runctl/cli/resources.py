"""``runctl resources list|cleanup|stop-all``: what runctl is running and what it costs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from runctl.cli.aws_clients import (
    aws_for,
    ebs_of,
    ec2_for,
    ec2_in_regions,
    ecr_of,
    job_session,
    job_sessions_everywhere,
    prices_for,
)
from runctl.cli.options import Yes
from runctl.cli.output import Output, format_bytes
from runctl.cli.registry import group_help
from runctl.cli.state import OutputOption, command_output, get_state
from runctl.cli.units import duration, money, monthly, parse_age
from runctl.errors import UsageError

if TYPE_CHECKING:
    from runctl.services.account.resources import BulkResult, ResourceListing, Scope
    from runctl.services.account.sweep import ResourceSummary

resources_app = typer.Typer(
    help=group_help("resources"), rich_markup_mode=None, no_args_is_help=True
)

Project = Annotated[str | None, typer.Option("--project", help="Only this project.")]
AllUsers = Annotated[
    bool, typer.Option("--all-users", help="Every user's resources, not only yours.")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would be done.")]
Force = Annotated[bool, typer.Option("--force", help="Skip the graceful job step.")]
AllRegions = Annotated[
    bool, typer.Option("--all-regions", help="Every enabled region (and runctl bucket).")
]
OlderThan = Annotated[
    str | None,
    typer.Option("--older-than", help="Include prefixes of jobs that ended this long ago (30d)."),
]
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
    all_regions: AllRegions = False,
    include_all: Annotated[
        bool, typer.Option("--all", help="Include instances runctl did not create.")
    ] = False,
    older_than: OlderThan = None,
    output: OutputOption = None,
) -> None:
    """Instances with state, type, lifecycle, age and cost estimates; volumes and snapshots
    with their monthly cost; unfinished uploads and (--older-than) old job prefixes."""
    out = command_output(ctx, output)
    if platform not in PLATFORMS:
        raise UsageError(f"--platform {platform!r}: use one of {', '.join(PLATFORMS)}")
    scope = _scope(project, all_users or include_all, include_all)
    listing = _listing(ctx, out, platform, scope, all_regions, older_than)
    out.document(listing, lambda o: _print_listing(o, listing))


def _listing(ctx: typer.Context, out: Output, platform: str, scope: Scope, all_regions: bool,
             older_than: str | None) -> ResourceListing:  # fmt: skip
    """What ``list`` and ``summary`` show (every kind, in one region or all)."""
    from runctl.services.account.resources import ResourceListing
    from runctl.services.account.sweep import list_resources

    age = parse_age(older_than) if older_than is not None else None
    listing = ResourceListing(rows=[], regions=[], total_hourly_usd=0.0, total_accumulated_usd=0.0)
    if platform in ("aws", "all"):
        clients = ec2_in_regions(ctx) if all_regions else [ec2_for(ctx)]
        bucket = get_state(ctx).config().settings.aws.s3_bucket
        with out.spinner(f"listing resources in {len(clients)} region(s)"):
            listing = list_resources(
                [(c, prices_for(c)) for c in clients], scope, storage=ebs_of,
                s3=aws_for(ctx).s3(), bucket=bucket, every_bucket=all_regions, older_than=age,
                registry=ecr_of(ctx),
            )  # fmt: skip
    if platform in ("local", "all"):
        listing.notes.append("local: runs on this machine are not tracked as resources yet")
    listing.notes.append(f"scope: {scope.describe()}")
    return listing


@resources_app.command("summary")
def summary(
    ctx: typer.Context,
    project: Project = None,
    all_users: AllUsers = False,
    all_regions: AllRegions = False,
    older_than: OlderThan = None,
    output: OutputOption = None,
) -> None:
    """Counts and cost per resource kind and project."""
    from runctl.services.account.sweep import summarize

    out = command_output(ctx, output)
    scope = _scope(project, all_users)
    result = summarize(_listing(ctx, out, "aws", scope, all_regions, older_than))
    out.document(result, lambda o: _print_summary(o, result))


def _print_summary(out: Output, result: ResourceSummary) -> None:
    out.table(
        ["kind", "project", "count", "size", "running $/h", "storage", "so far"],
        [
            [k.kind, k.project or "-", k.count, f"{k.size_gb:g} GiB" if k.size_gb else "-",
             money(k.hourly_usd) if k.kind == "instance" else "-",
             monthly(k.month_usd) if k.month_usd else "-",
             money(k.so_far_usd) if k.kind == "instance" else "-"]
            for k in result.rows
        ],
    )  # fmt: skip
    out.info(
        f"in {', '.join(result.regions) or 'no region'}: running now "
        f"{money(result.hourly_usd, '/h')}, storage about {monthly(result.month_usd)} (estimates)"
    )
    for note in result.notes:
        out.detail(note)


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
    if listing.uploads:
        out.table(
            ["unfinished upload", "project", "job", "user", "initiated"],
            [[f"s3://{u.bucket}/{u.key}", u.project, u.job, u.user,
              u.initiated.strftime("%Y-%m-%d %H:%M")] for u in listing.uploads],
        )  # fmt: skip
    if listing.images:
        out.table(
            ["image", "tags", "size", "pushed", "storage"],
            [[f"{i.repository}@{i.digest[:19]}", ", ".join(i.tags), format_bytes(i.size_bytes),
              i.pushed_at.strftime("%Y-%m-%d %H:%M") if i.pushed_at else None,
              monthly(i.month_usd)] for i in listing.images],
        )  # fmt: skip
    if listing.stale_prefixes:
        out.table(
            ["old job prefix", "user", "state", "ended", "objects", "storage"],
            [[p.uri, p.user, p.state, p.ended, p.objects, monthly(p.month_usd)]
             for p in listing.stale_prefixes],
        )  # fmt: skip
    for note in listing.notes:
        out.detail(note)


def _bulk(ctx: typer.Context, action: str, scope: Scope, *, dry_run: bool, yes: bool,
          force: bool, output: str | None, include_volumes: bool = False,
          all_regions: bool = False, older_than: str | None = None) -> None:  # fmt: skip
    """``cleanup`` and ``stop-all``: plan, confirm, act (graceful job step unless --force)."""
    from runctl.services.account.sweep import act_everywhere

    out = command_output(ctx, output)
    age = parse_age(older_than) if older_than is not None else None
    sessions = job_sessions_everywhere(ctx, out) if all_regions else [job_session(ctx, out)]

    def run(dry: bool) -> BulkResult:
        return act_everywhere(sessions, action, scope, dry_run=dry, force=force,
                              include_volumes=include_volumes, older_than=age,
                              every_bucket=all_regions)  # fmt: skip

    plan = run(True)
    if scope.user is None:
        out.warn("--all-users: acting on every user's resources")
    left = plan.leftovers
    doomed = [*plan.acted_on, *(plan.storage.volumes + plan.storage.snapshots if plan.storage
              else []), *(left.deleted_prefixes if left else [])]  # fmt: skip
    if doomed and not dry_run and not yes:
        verb = "stop" if action == "stop" else "terminate or delete"
        out.confirm(f"{verb} {', '.join(doomed)}?", refusing=f"{verb} {len(doomed)} resource(s)")
    if not dry_run:
        plan = run(False)
    out.document(plan, lambda o: _print_bulk(o, plan))


def _print_bulk(out: Output, result: BulkResult) -> None:
    verb = "stop" if result.action == "stop" else "terminate"
    for instance_id, reason in result.skipped.items():
        out.info(f"skipped {instance_id}: {reason}")
    for instance_id, message in result.job_stops.items():
        out.info(f"{instance_id}: {message}")
    left = result.leftovers
    if left is not None and (left.aborted or left.spared or left.deleted_prefixes):
        done = "would abort" if result.dry_run else "aborted"
        out.info(
            f"{done} {len(left.aborted)} unfinished upload(s) "
            f"({', '.join(f's3://{u.bucket}/{u.key}' for u in left.aborted) or 'none'}); "
            f"spared {len(left.spared)} younger than an hour"
        )
        if left.deleted_prefixes:
            gone = "would delete" if result.dry_run else "deleted"
            out.info(f"{gone} old job prefixes: {', '.join(left.deleted_prefixes)}")
    for what, message in left.failed.items() if left else []:
        out.warn(f"{what}: {message}")
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
    all_regions: AllRegions = False,
    older_than: OlderThan = None,
    output: OutputOption = None,
) -> None:
    """Terminate your runctl-managed instances, delete the volumes and snapshots runctl made
    for jobs that ended, abort unfinished uploads and (--older-than) delete old job prefixes
    (never protected or foreign ones); each running job commits its checkpoint first unless
    --force."""
    scope = _scope(project, all_users)
    _bulk(ctx, "terminate", scope, dry_run=dry_run, yes=yes, force=force, output=output,
          include_volumes=include_volumes, all_regions=all_regions,
          older_than=older_than)  # fmt: skip


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
