"""``runctl checkpoint list|info|resume|download|cleanup``: committed checkpoints, here and in S3.

TARGET is a job (``s3://B/runctl/P/jobs/ID/``), an ``s3://`` checkpoint store prefix, a local
store (``runctl local --checkpoint-s3 DIR``) or a plain checkpoint directory; see
:mod:`runctl.services.checkpoints.admin` for how each is read. ``list --output json`` prints a
list (one object per checkpoint, newest first), ``info`` and ``cleanup`` one object. ``resume``
starts the job's next attempt from the newest checkpoint: on ``--instance-id`` (``--wait``
follows it and exits with its verdict like ``aws train --wait``) or, without it, here through
``runctl local``'s runner (exit 0, 7 with the script's exit code, 130 when stopped); with
``--checkpoint`` from an older checkpoint. ``download`` restores a checkpoint's files, verified,
into a directory (one JSON object: the checkpoint, its files, the fallbacks taken).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runctl.cli.aws_clients import aws_for, job_session
from runctl.cli.job_output import (
    LogPrinter,
    follow_to_verdict,
    render_started,
    report_local_result,
    say_started,
)
from runctl.cli.options import Yes
from runctl.cli.output import Output, format_bytes
from runctl.cli.registry import group_help
from runctl.cli.state import OutputOption, command_output, get_state
from runctl.errors import UsageError

if TYPE_CHECKING:
    from runctl.services.checkpoints.admin import (
        CheckpointDetail,
        CheckpointListing,
        CheckpointTarget,
        CleanupReport,
    )
    from runctl.services.checkpoints.resume import ResumePlan

checkpoint_app = typer.Typer(
    help=group_help("checkpoint"),
    rich_markup_mode=None,
    no_args_is_help=True,
)
Target = Annotated[
    str,
    typer.Argument(
        help="A job id, s3://BUCKET/runctl/PROJECT/jobs/JOB_ID/, an s3:// store prefix, or a "
        "local store or checkpoint directory.",
        show_default=False,
    ),
]
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}
Checkpoint = Annotated[
    str | None,
    typer.Option("--checkpoint", help="Id, sequence number or id prefix (default: the newest)."),
]


def _open(ctx: typer.Context, target: str) -> CheckpointTarget:
    from runctl.services.checkpoints.admin import open_target

    bucket = get_state(ctx).config().settings.aws.s3_bucket
    return open_target(target, lambda: aws_for(ctx).s3(), bucket=bucket)


@checkpoint_app.command("list")
def list_(ctx: typer.Context, target: Target, output: OutputOption = None) -> None:
    """Committed checkpoints, newest first: id, time, attempt, file count, total size."""
    from runctl.services.checkpoints.admin import list_checkpoints

    out = command_output(ctx, output)
    listing = list_checkpoints(_open(ctx, target))
    for manifest_id in listing.unreadable:
        out.warn(f"manifest {manifest_id} cannot be read; left out")
    out.document([e.to_dict() for e in listing.entries], lambda o: _print_listing(o, listing))


def _print_listing(o: Output, listing: CheckpointListing) -> None:
    if listing.files is not None:
        o.table(
            ["file", "size", "modified"],
            [[f.path, format_bytes(f.size), _when(f.mtime)] for f in listing.files],
        )
        size = format_bytes(sum(f.size for f in listing.files))
        o.info(
            f"{listing.location} is not a checkpoint store: it holds no committed manifests, "
            f"only {len(listing.files)} file(s) ({size}) a script wrote"
        )
        return
    rows = [
        [e.id, e.created, e.attempt, e.file_count, format_bytes(e.total_size)]
        for e in listing.entries
    ]
    o.table(["checkpoint", "created (UTC)", "attempt", "files", "size"], rows)
    o.info(f"{len(rows)} committed checkpoint(s) in {listing.location}")


def _when(mtime: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M:%S")


@checkpoint_app.command("info")
def info(
    ctx: typer.Context, target: Target, checkpoint: Checkpoint = None, output: OutputOption = None
) -> None:
    """One checkpoint's manifest: its files with sizes and sha256, attempt, time, job id."""
    from runctl.services.checkpoints.admin import checkpoint_info

    out = command_output(ctx, output)
    detail = checkpoint_info(_open(ctx, target), checkpoint)
    out.document(detail.to_dict(), lambda o: _print_detail(o, detail))


def _print_detail(o: Output, detail: CheckpointDetail) -> None:
    entry = detail.entry
    o.fields(
        [
            ("checkpoint", entry.id or "none committed (plain directory)"),
            ("job", entry.job_id),
            ("attempt", entry.attempt),
            ("created", entry.created),
            ("location", entry.location),
            ("files", entry.file_count),
            ("total size", format_bytes(entry.total_size)),
        ]
    )
    plain = not entry.committed
    o.table(
        ["file", "size", "sha256", *(["modified (UTC)"] if plain else [])],
        [
            [f.path, format_bytes(f.size), f.sha256, *([f.modified] if plain else [])]
            for f in detail.files
        ],
    )


@checkpoint_app.command("download")
def download(
    ctx: typer.Context,
    source: Target,
    directory: Annotated[
        Path, typer.Argument(help="Where the files go (created when missing).", show_default=False)
    ],
    checkpoint: Checkpoint = None,
    output: OutputOption = None,
) -> None:
    """Restore a committed checkpoint's files into DIRECTORY, each verified against its sha256."""
    from runctl.services.checkpoints.download import download_checkpoint

    out = command_output(ctx, output)
    result = download_checkpoint(_open(ctx, source), directory, checkpoint)

    def text(o: Output) -> None:
        for checkpoint_id, why in result.given_up:
            o.warn(f"checkpoint {checkpoint_id} given up: {why}")
        manifest = result.manifest
        o.table(
            ["file", "size", "sha256"],
            [[f.path, format_bytes(f.size), f.sha256] for f in manifest.files],
        )
        o.success(
            f"checkpoint {manifest.id}: {len(manifest.files)} file(s), "
            f"{format_bytes(manifest.total_size)}, verified, in {directory}"
        )

    out.document(result.to_dict(), text)


@checkpoint_app.command("cleanup")
def cleanup(
    ctx: typer.Context,
    target: Target,
    keep_last_n: Annotated[
        int | None,
        typer.Option(
            "--keep-last-n", min=1, help="Checkpoints to keep (default checkpoint.keep_last_n)."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would go.")] = False,
    yes: Yes = False,
    output: OutputOption = None,
) -> None:
    """Delete all but the newest N checkpoints and the blobs no kept checkpoint uses."""
    from runctl.services.checkpoints.admin import cleanup_checkpoints

    out = command_output(ctx, output)
    if not (dry_run or yes or sys.stdin.isatty()):
        raise UsageError(
            "refusing to delete checkpoints without confirmation (no terminal to ask on)",
            hint="pass --yes to confirm, or --dry-run to see what would go",
        )
    keep = keep_last_n or get_state(ctx).config().settings.checkpoint.keep_last_n
    resolved = _open(ctx, target)
    report = cleanup_checkpoints(resolved, keep, dry_run=True)
    something = bool(report.deleted_manifests or report.deleted_blobs)
    if something and not dry_run:
        if not yes:
            _print_cleanup(out.info, report)
            if not typer.confirm(f"delete these from {report.location}?", err=True):
                out.info("nothing deleted")
                raise typer.Exit(1)
        report = cleanup_checkpoints(resolved, keep, dry_run=False)
    report.dry_run = dry_run
    out.document(report.to_dict(), lambda o: _print_cleanup(o.line, report))


def _print_cleanup(say: Callable[[str], None], report: CleanupReport) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    for manifest_id in report.deleted_manifests:
        say(f"{verb} checkpoint {manifest_id}")
    say(
        f"kept {len(report.kept)} checkpoint(s); {verb} {len(report.deleted_manifests)} "
        f"checkpoint(s) and {report.deleted_blobs} unreferenced blob(s) "
        f"({format_bytes(report.freed_bytes)})"
    )
    if report.deferred_blobs:
        say(
            f"{report.deferred_blobs} unreferenced blob(s) are less than an hour old and stay "
            "(a commit may be using them); a later cleanup removes them"
        )


@checkpoint_app.command("resume", context_settings=EXTRA_ARGS)
def resume(
    ctx: typer.Context,
    target: Target,
    args: Annotated[
        list[str] | None, typer.Argument(help="Arguments for the script (default: the job's).")
    ] = None,
    instance_id: Annotated[
        str | None, typer.Option("--instance-id", help="Resume on this instance (S3 jobs).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="With --instance-id: follow the job to its end.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Minutes to wait (with --wait).", min=0)
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Resume even if the job looks still running.")
    ] = False,
    checkpoint: Checkpoint = None,
    output: OutputOption = None,
) -> None:
    """Start the job's next attempt from its newest committed checkpoint, or the one
    --checkpoint names (here or on an instance). Put the script's arguments after `--` to
    replace the job's."""
    from runctl.services.checkpoints.resume import plan_resume, resume_on_instance
    from runctl.services.instances.lifecycle import validate_instance_id

    out = command_output(ctx, output)
    if instance_id is not None:
        validate_instance_id(instance_id)
    if timeout is not None and not (instance_id and wait):
        raise UsageError("--timeout applies to --instance-id with --wait")
    extra = [*(args or []), *ctx.args] or None
    plan = plan_resume(
        _open(ctx, target),
        cwd=Path.cwd(),
        s3_client=lambda: aws_for(ctx).s3(),
        checkpoint=checkpoint,
    )
    out.info(f"resuming job {plan.spec.job_id} from checkpoint {plan.manifest.id} "
             f"(attempt {plan.next_attempt})")  # fmt: skip
    if instance_id is None:
        _resume_here(ctx, out, plan, extra, force)
        return
    session = job_session(ctx, out)
    with out.spinner(f"starting attempt {plan.next_attempt} on {instance_id}"):
        started = resume_on_instance(session, plan, instance_id, args=extra, force=force)
    say_started(out, started)
    if not wait:
        render_started(out, started, resumed_from=plan.manifest.id)
        return
    follow_to_verdict(out, session, started, timeout_minutes=timeout, resumed_from=plan.manifest.id)


def _resume_here(
    ctx: typer.Context, out: Output, plan: ResumePlan, args: list[str] | None, force: bool
) -> None:
    """Run the next attempt here; exit like ``runctl local`` (0, 7, 130)."""
    from runctl.services.checkpoints.resume import resume_here

    result = resume_here(
        plan, cwd=Path.cwd(), args=args, force=force, s3_client=lambda: aws_for(ctx).s3(),
        echo=LogPrinter(out), notify=out.detail,
    )  # fmt: skip
    data = {**result.to_dict(), "attempt": plan.next_attempt, "resumed_from": plan.manifest.id}
    report_local_result(out, result, data)
