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
    from runctl.services.account.setup import SetupResult


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
    from runctl.errors import UsageError
    from runctl.services.account.setup import parse_grant, set_up_account

    if read_only and not grant:
        raise UsageError("--read-only applies to --grant", hint="add --grant s3://BUCKET/PREFIX/")
    grants = [parse_grant(uri, read_only=read_only) for uri in grant or []]
    out = command_output(ctx, output)
    state = get_state(ctx)
    resolved = state.config(overrides={"aws.s3_bucket": bucket})
    with out.spinner("planning" if dry_run else "checking IAM and S3, applying"):
        result = set_up_account(
            aws_for(ctx), resolved, config_path=state.config_path, cwd=Path.cwd(),
            grants=grants, dry_run=dry_run,
        )  # fmt: skip
    out.document(result, lambda o: _print_setup(o, result))


def _print_setup(out: Output, result: SetupResult) -> None:
    out.table(
        ["resource", "name", "action", "detail"],
        [[s.resource, s.name, s.action, s.detail] for s in result.steps],
    )
    if result.dry_run:
        out.info(f"dry run: {len(result.changes)} change(s) planned; nothing was changed")
    elif result.changed:
        out.success(
            f"setup done: {len(result.changes)} change(s); instance profile "
            f"{result.instance_profile}"
        )
    else:
        out.success("everything is already in place; nothing changed")


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
    from runctl.services.instances.prices import PriceBook, price_rows

    out = command_output(ctx, output)
    ec2 = ec2_for(ctx)
    book = PriceBook(ec2.region, spot_source=ec2)
    if refresh:
        with out.spinner(f"fetching {ec2.region} prices from the AWS Pricing API"):
            refreshed = book.refresh(Pricing(pricing_client(aws_for(ctx))))
        out.success(f"{refreshed.count} prices cached in {refreshed.path}")
    rows = price_rows(book, ec2, instance_types or None, spot=spot)
    out.document({"region": ec2.region, "prices": rows}, lambda o: _print_prices(o, rows, spot))


def _print_prices(out: Output, rows: list[dict[str, Any]], spot: bool) -> None:
    columns = ["type", "on-demand", "source"] + (["spot (cheapest zone)"] if spot else [])
    out.table(
        columns,
        [
            [r["instance_type"], money(r["on_demand_usd"], "/h"), r["on_demand_source"]]
            + ([f"{money(r['spot_usd'], '/h')} {r['spot_zone'] or ''}"] if spot else [])
            for r in rows
        ],
    )
