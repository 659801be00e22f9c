"""``runctl s3 upload|download|sync|list|cleanup``: parallel, verified transfers with progress.

Commands import the S3 engine (and so boto3) only inside their bodies, keeping ``--help`` fast.
The engine's tuning comes from ``[s3]`` in the config and is handed over in plain numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from runctl.cli.options import Yes
from runctl.cli.output import Output, format_bytes
from runctl.cli.registry import group_help
from runctl.cli.s3_report import (
    confirm_deletions,
    finish_transfer,
    local_time,
    print_cleanup,
    print_listing,
    print_sync,
    render_transfer,
)
from runctl.cli.state import OutputOption, command_output, get_state
from runctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client

    from runctl.aws.s3 import S3Uri
    from runctl.aws.s3_paths import PathFilter
    from runctl.aws.s3_transfer import TransferSettings

s3_app = typer.Typer(
    help=group_help("s3"),
    rich_markup_mode=None,
    no_args_is_help=True,
)

RAW_ARGS = "runctl.raw_args"

Recursive = Annotated[
    bool, typer.Option("--recursive", "-r", help="Everything under the directory or prefix.")
]
Exclude = Annotated[
    list[str] | None,
    typer.Option(help="Skip paths matching this glob (repeatable; later filters win)."),
]
Include = Annotated[
    list[str] | None,
    typer.Option(help="Take back paths an earlier --exclude skipped (repeatable)."),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]


class FilterOrderCommand(TyperCommand):
    """Keeps the raw arguments, so ``--exclude``/``--include`` keep their interleaved order."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        ctx.meta[RAW_ARGS] = list(args)
        return super().parse_args(ctx, args)


def _filters(ctx: typer.Context) -> PathFilter:
    from runctl.aws.s3_paths import PathFilter, parse_filter_args

    return PathFilter(parse_filter_args(ctx.meta.get(RAW_ARGS, [])))


def _engine(ctx: typer.Context) -> tuple[S3Client, TransferSettings]:
    """The S3 client and transfer settings of this invocation (no AWS call is made)."""
    from runctl.aws.s3 import use_fast_timestamps
    from runctl.aws.s3_transfer import TransferSettings

    state = get_state(ctx)
    # The validated values, not the typed models: those would cost pydantic at every start.
    tuning = state.config()
    settings = TransferSettings.from_megabytes(
        multipart_threshold_mb=tuning.value("s3.multipart_threshold_mb"),
        multipart_chunksize_mb=tuning.value("s3.multipart_chunksize_mb"),
        max_concurrency=tuning.value("s3.max_concurrency"),
    )
    client: S3Client = state.aws().client(
        "s3",
        max_pool_connections=max(64, settings.max_concurrency + 8),
        # Over plain HTTP botocore otherwise SHA-256s every body for the signature: a third pass
        # over the data. Integrity is the CRC32 each request carries (and HTTPS skips it anyway).
        s3={"payload_signing_enabled": False},
    )
    use_fast_timestamps(client)
    return client, settings


@s3_app.command("upload", cls=FilterOrderCommand)
def upload(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="Local file or directory.")],
    destination: Annotated[str, typer.Argument(help="s3://bucket/key or s3://bucket/prefix/")],
    recursive: Recursive = False,
    exclude: Exclude = None,
    include: Include = None,
    output: OutputOption = None,
) -> None:
    """Upload a file, or a directory's contents with --recursive (checksummed, multipart)."""
    from runctl.aws.s3 import S3Uri
    from runctl.aws.s3_copy import plan_upload
    from runctl.aws.s3_transfer import upload_files

    out = command_output(ctx, output)
    target = S3Uri.parse(destination)
    items = plan_upload(source, target, recursive=recursive, include=_filters(ctx))
    client, settings = _engine(ctx)
    with out.transfer_progress("upload", sum(i.size for i in items)) as advance:
        report = upload_files(client, items, settings=settings, progress=advance)
    render_transfer(out, "uploaded", str(source), str(target), report)


@s3_app.command("download", cls=FilterOrderCommand)
def download(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="s3://bucket/key, or a prefix with --recursive")],
    destination: Annotated[Path, typer.Argument(help="Local file or directory.")],
    recursive: Recursive = False,
    exclude: Exclude = None,
    include: Include = None,
    output: OutputOption = None,
) -> None:
    """Download an object, or everything under a prefix with --recursive (verified)."""
    from runctl.aws.s3 import S3Uri
    from runctl.aws.s3_copy import plan_download
    from runctl.aws.s3_transfer import download_objects

    out = command_output(ctx, output)
    origin = S3Uri.parse(source)
    filters = _filters(ctx)
    client, settings = _engine(ctx)
    plan = plan_download(client, origin, destination, recursive=recursive, include=filters)
    with out.transfer_progress("download", sum(i.source.size for i in plan.items)) as advance:
        report = download_objects(client, plan.items, settings=settings, progress=advance)
    plan.add_to(report)
    render_transfer(out, "downloaded", str(origin), str(destination), report)


@s3_app.command("sync", cls=FilterOrderCommand)
def sync(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Local directory or s3:// prefix.")],
    destination: Annotated[str, typer.Argument(help="s3:// prefix or local directory.")],
    delete: Annotated[bool, typer.Option("--delete", help="Delete what the source lacks.")] = False,
    exclude: Exclude = None,
    include: Include = None,
    dry_run: DryRun = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Delete without asking even when the source is empty or more than half of "
            "the destination would go.",
        ),
    ] = False,
    output: OutputOption = None,
) -> None:
    """Copy only what differs (size, then time and content) from SOURCE to DESTINATION."""
    from runctl.aws.s3_sync import check_sides, plan_sync, run_sync

    out = command_output(ctx, output)
    check_sides(source, destination)
    filters = _filters(ctx)
    client, settings = _engine(ctx)
    plan = plan_sync(
        client,
        source,
        destination,
        delete=delete,
        include=filters,
        part_size=settings.multipart_chunksize,
    )
    confirm_deletions(out, plan, dry_run=dry_run, yes=yes)
    summary: dict[str, Any] = plan.summary()
    if not dry_run:
        with out.transfer_progress("sync", plan.copy_bytes) as advance:
            summary = run_sync(client, plan, settings=settings, progress=advance).to_dict()
    data = {"source": source, "destination": destination, "dry_run": dry_run, **summary}
    finish_transfer(
        out,
        {**data, "actions": plan.actions},
        lambda o: print_sync(o, plan.actions, data),
        plan.skipped,
        plan.failed,
    )


@s3_app.command("list")
def list_(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(help="s3://bucket[/prefix]")],
    recursive: Recursive = False,
    human_readable: Annotated[
        bool, typer.Option("--human-readable", help="Sizes in KiB, MiB, GiB.")
    ] = False,
    output: OutputOption = None,
) -> None:
    """List the objects (and, without --recursive, the sub-prefixes) under a prefix."""
    from runctl.aws.s3 import S3Uri, list_objects

    out = command_output(ctx, output)
    where = S3Uri.parse(uri)
    client, _ = _engine(ctx)
    listing = list_objects(client, where, recursive=recursive)
    data = {
        "uri": str(where),
        "prefixes": listing.prefixes,
        "objects": listing.objects,
        "count": len(listing.objects),
        "bytes": sum(o.size for o in listing.objects),
    }
    out.document(data, lambda o: print_listing(o, listing, recursive, human_readable))


@s3_app.command("cleanup")
def cleanup(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="s3://bucket/prefix to clean up")],
    keep_last_n: Annotated[
        int | None,
        typer.Option("--keep-last-n", min=0, help="Keep the newest N entries; delete the rest."),
    ] = None,
    incomplete: Annotated[
        bool,
        typer.Option(
            "--incomplete",
            help="Abort the unfinished multipart uploads under PREFIX (a killed upload's "
            "parts stay stored and billed, and no listing shows them).",
        ),
    ] = False,
    dry_run: DryRun = False,
    yes: Yes = False,
    output: OutputOption = None,
) -> None:
    """Keep the newest N entries (sub-prefixes or objects) under PREFIX and delete the rest,
    and/or abort the unfinished multipart uploads under it."""
    from runctl.aws.s3 import S3Uri

    out = command_output(ctx, output)
    where = S3Uri.parse(prefix)
    if keep_last_n is None and not incomplete:
        raise UsageError(
            "say what to clean up under " + prefix,
            hint="--keep-last-n N (prune old entries), --incomplete (abort unfinished uploads)",
        )
    if not (dry_run or yes or sys.stdin.isatty()):
        raise UsageError(
            "refusing to delete without confirmation (no terminal to ask on)",
            hint="pass --yes to confirm, or --dry-run to see what would go",
        )
    client, _ = _engine(ctx)
    data: dict[str, Any] = {"prefix": str(where.as_prefix())}
    if keep_last_n is not None:
        data["keep_last_n"] = keep_last_n
    data["dry_run"] = dry_run
    texts: list[Callable[[Output], None]] = []
    if keep_last_n is not None:
        pruned, pruned_text = _prune(out, client, where, keep_last_n, dry_run=dry_run, yes=yes)
        data.update(pruned)
        texts.append(pruned_text)
    if incomplete:
        aborted, aborted_text = _abort_incomplete(out, client, where, dry_run=dry_run, yes=yes)
        data["incomplete"] = aborted
        texts.append(aborted_text)

    def text(o: Output) -> None:
        for part in texts:
            part(o)

    out.document(data, text)


def _prune(
    out: Output, client: S3Client, where: S3Uri, keep_last_n: int, *, dry_run: bool, yes: bool
) -> tuple[dict[str, Any], Callable[[Output], None]]:
    from runctl.aws.s3_cleanup import plan_cleanup, run_cleanup

    plan = plan_cleanup(client, where, keep_last_n)
    if plan.delete and not dry_run and not yes:
        for entry in plan.delete:
            moment = local_time(entry.last_modified)
            out.info(f"  delete {entry.name} ({len(entry.keys)} objects, {moment})")
        typer.confirm(
            f"delete {len(plan.delete)} entries ({len(plan.delete_keys)} objects, "
            f"{format_bytes(plan.delete_bytes)}) under {plan.prefix}?",
            abort=True,
            err=True,
        )
    deleted = 0 if dry_run else run_cleanup(client, plan)
    data = {
        "kept": [e.name for e in plan.keep],
        "deleted": [e.name for e in plan.delete],
        "deleted_objects": deleted if not dry_run else len(plan.delete_keys),
        "deleted_bytes": plan.delete_bytes,
    }

    def text(o: Output) -> None:
        print_cleanup(o, plan)
        verb = "would delete" if dry_run else "deleted"
        o.line(
            f"{verb} {len(plan.delete)} of {len(plan.delete) + len(plan.keep)} entries "
            f"({len(plan.delete_keys)} objects, {format_bytes(plan.delete_bytes)})"
        )

    return data, text


def _abort_incomplete(
    out: Output, client: S3Client, where: S3Uri, *, dry_run: bool, yes: bool
) -> tuple[dict[str, object], Callable[[Output], None]]:
    from runctl.aws.s3_uploads import abort_incomplete_uploads, abort_uploads

    report = abort_incomplete_uploads(client, where.as_prefix(), dry_run=True)
    if report.aborted and not dry_run:
        if not yes:
            for upload in report.aborted:
                out.info(f"  abort {upload.uri} (started {local_time(upload.initiated)})")
            typer.confirm(
                f"abort {len(report.aborted)} unfinished upload(s) under {report.prefix}?",
                abort=True,
                err=True,
            )
        report.dry_run = False
        report.aborted, report.failed = abort_uploads(client, report.aborted)

    def text(o: Output) -> None:
        verb = "would abort" if dry_run else "aborted"
        for upload in report.aborted:
            started = local_time(upload.initiated)
            o.line(f"{verb} unfinished upload {upload.uri} (started {started})")
        for upload, message in report.failed:
            o.warn(f"could not abort {upload.uri}: {message}")
        o.line(f"{verb} {len(report.aborted)} unfinished upload(s) under {report.prefix}")

    if report.failed:
        out.warn(f"{len(report.failed)} unfinished upload(s) could not be aborted")
    return report.to_dict(), text
