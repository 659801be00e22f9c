"""``runctl aws setup`` (role, instance profile, bucket) and ``runctl aws prices``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runctl.cli.aws_clients import aws_for, ec2_for
from runctl.cli.output import Output
from runctl.cli.state import OutputOption, command_output, get_state
from runctl.cli.units import money

if TYPE_CHECKING:
    from collections.abc import Callable

    from runctl.config import ResolvedConfig


def setup(
    ctx: typer.Context,
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="Bucket for code, logs and checkpoints.")
    ] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option(
            "--grant",
            help="Also let the instance role use s3://BUCKET/PREFIX/ (for --data-s3, "
            "--output-s3, --checkpoint-s3 outside the job bucket's runctl/). Repeatable.",
            show_default=False,
        ),
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="The --grant prefixes are read, not written.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan only.")] = False,
    output: OutputOption = None,
) -> None:
    """Create the instance role, instance profile and bucket (idempotent)."""
    from runctl.aws.buckets import Buckets
    from runctl.aws.iam import Iam
    from runctl.aws.sts import get_caller_identity
    from runctl.errors import UsageError
    from runctl.services.account.setup import (
        DEFAULT_PROFILE,
        apply_setup,
        default_bucket_name,
        parse_grant,
        plan_setup,
    )

    if read_only and not grant:
        raise UsageError("--read-only applies to --grant", hint="add --grant s3://BUCKET/PREFIX/")
    grants = [parse_grant(uri, read_only=read_only) for uri in grant or []]
    out = command_output(ctx, output)
    state = get_state(ctx)
    resolved = state.config(overrides={"aws.s3_bucket": bucket})
    aws = aws_for(ctx)
    region = aws.region_name
    name = resolved.settings.aws.s3_bucket or default_bucket_name(
        get_caller_identity(aws.sts()).account_id, region
    )
    profile = resolved.settings.aws.iam_instance_profile or DEFAULT_PROFILE
    writes = _config_writes(
        state.config_path, resolved, {"aws.s3_bucket": name, "aws.iam_instance_profile": profile}
    )
    with out.spinner("checking IAM and S3"):
        plan = plan_setup(
            Iam(aws.iam()),
            Buckets(aws.s3()),
            bucket=name,
            region=region,
            profile_name=profile,
            grants=grants,
            config_writes=writes,
        )
    with out.spinner("applying" if not dry_run else "planning"):
        result = apply_setup(plan, dry_run=dry_run)

    def text(o: Output) -> None:
        o.table(
            ["resource", "name", "action", "detail"],
            [[s.resource, s.name, s.action, s.detail] for s in result.steps],
        )
        if dry_run:
            o.info(f"dry run: {len(plan.changes)} change(s) planned; nothing was changed")
        elif result.changed:
            o.success(f"setup done: {len(plan.changes)} change(s); instance profile {profile}")
        else:
            o.success("everything is already in place; nothing changed")

    out.document(result, text)


def _config_writes(
    config_path: Path | None, resolved: ResolvedConfig, values: dict[str, str]
) -> list[tuple[str, str, Callable[[], object] | None]]:
    """(key, value, writer) for each name; the writer is None when a config file has the key."""
    from runctl.config_file import set_value
    from runctl.paths import find_project_file

    target = config_path or find_project_file(Path.cwd()) or Path(".runctl.toml")

    def writer(key: str, value: str) -> Callable[[], object]:
        return lambda: set_value(target, key, value)

    return [
        (key, value, None if resolved.file_for(key) is not None else writer(key, value))
        for key, value in values.items()
    ]


def prices(
    ctx: typer.Context,
    instance_types: Annotated[
        list[str] | None, typer.Argument(help="Types to price (default: the whole table).")
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Fetch on-demand prices from the Pricing API.")
    ] = False,
    spot: Annotated[bool, typer.Option("--spot", help="Add current spot prices.")] = False,
    output: OutputOption = None,
) -> None:
    """On-demand (and spot) hourly prices, each with its source."""
    from runctl.aws.pricing import Pricing, pricing_client
    from runctl.services.instances.prices import PriceBook, shipped_table

    out = command_output(ctx, output)
    ec2 = ec2_for(ctx)
    book = PriceBook(ec2.region, spot_source=ec2)
    refreshed = None
    if refresh:
        with out.spinner(f"fetching {ec2.region} prices from the AWS Pricing API"):
            refreshed = book.refresh(Pricing(pricing_client(aws_for(ctx))))
        out.success(f"{refreshed.count} prices cached in {refreshed.path}")
    names = instance_types or sorted(shipped_table()["regions"].get(ec2.region, {}))
    rows: list[dict[str, Any]] = []
    for name in names:
        quote = book.on_demand(name)
        row: dict[str, Any] = {
            "instance_type": name,
            "on_demand_usd": quote.usd_per_hour,
            "on_demand_source": quote.source,
        }
        if spot:
            history = ec2.describe_spot_price_history(name)
            cheapest = min(history.values(), key=lambda p: p.usd_per_hour, default=None)
            row["spot_usd"] = cheapest.usd_per_hour if cheapest else None
            row["spot_zone"] = cheapest.availability_zone if cheapest else None
        rows.append(row)

    def text(o: Output) -> None:
        columns = ["type", "on-demand", "source"] + (["spot (cheapest zone)"] if spot else [])
        o.table(
            columns,
            [
                [r["instance_type"], money(r["on_demand_usd"], "/h"), r["on_demand_source"]]
                + ([f"{money(r['spot_usd'], '/h')} {r['spot_zone'] or ''}"] if spot else [])
                for r in rows
            ],
        )

    out.document({"region": ec2.region, "prices": rows}, text)
