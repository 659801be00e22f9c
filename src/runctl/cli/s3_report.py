"""How ``runctl s3`` results look, and the questions it asks before deleting: the transfer and
sync reports (with a warning per key left out, and exit 8 after the fact when some could not be
written), listings, and cleanup plans."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from runctl.cli.output import Output, format_bytes
from runctl.errors import IncompleteTransferError, UsageError

if TYPE_CHECKING:
    from runctl.aws.s3 import S3Listing
    from runctl.aws.s3_cleanup import CleanupPlan
    from runctl.aws.s3_sync import SyncAction, SyncPlan
    from runctl.aws.s3_transfer import TransferIssue, TransferReport


def render_transfer(
    out: Output, verb: str, source: str, destination: str, report: TransferReport
) -> None:
    data = {"source": source, "destination": destination, **report.to_dict()}

    def text(o: Output) -> None:
        o.line(
            f"{verb} {report.files} files ({format_bytes(report.bytes)}) in "
            f"{report.seconds:.1f} s ({report.mb_per_s:.1f} MB/s)"
        )
        if report.unverified:
            o.warn(f"{report.unverified} files had no checksum or MD5 ETag in S3 to verify against")

    finish_transfer(out, data, text, report.skipped, report.failed)


def finish_transfer(
    out: Output,
    data: dict[str, Any],
    text: Callable[[Output], None],
    skipped: list[TransferIssue],
    failed: list[TransferIssue],
) -> None:
    """Print a transfer's document and a warning per key left out; when some could not be
    written, exit non-zero (8) after everything else was done, the error carrying the document."""
    for issue in skipped:
        out.warn(f"skipped {issue.uri}: {issue.reason}")
    if not failed:
        out.document(data, text)
        return
    if out.is_text:
        text(out)
    for issue in failed:
        out.warn(f"not written: {issue.uri}: {issue.reason}")
    raise IncompleteTransferError(
        f"{len(failed)} object(s) could not be written (first: {failed[0].uri}: "
        f"{failed[0].reason}); everything else was transferred",
        hint="rename or remove the clashing keys or local paths, then run it again",
        resource=failed[0].uri,
        details=data,
    )


def confirm_deletions(out: Output, plan: SyncPlan, *, dry_run: bool, yes: bool) -> None:
    """Ask before deletions that look like a mistake; refuse with no terminal to ask on."""
    risk = plan.deletion_risk()
    if risk is None or yes:
        return
    if dry_run:
        out.warn(f"{risk}; without --dry-run this needs --yes")
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to sync: {risk}",
            hint="check the source; pass --yes if that is what you want, or --dry-run to see "
            "the plan",
            resource=plan.destination,
        )
    shown = [a.destination for a in plan.actions if a.action == "delete"][:10]
    for name in shown:
        out.info(f"  delete {name}")
    if plan.deletes > len(shown):
        out.info(f"  ... and {plan.deletes - len(shown)} more")
    typer.confirm(f"{risk}. Go ahead?", abort=True, err=True)


def print_sync(o: Output, actions: list[SyncAction], data: dict[str, Any]) -> None:
    prefix = "(dry run) " if data["dry_run"] else ""
    for a in actions:
        if a.action == "delete":
            o.line(f"{prefix}delete: {a.destination}")
        else:
            o.line(f"{prefix}{a.action}: {a.source} to {a.destination} ({a.reason})")
    if not data["dry_run"]:
        o.line(
            f"synced {data['files']} files ({format_bytes(data['bytes'])}) in "
            f"{data['seconds']:.1f} s, deleted {data['deleted']}"
        )


def print_listing(o: Output, listing: S3Listing, recursive: bool, human: bool) -> None:
    # Like `aws s3 ls`: names relative to the typed prefix's "directory", full keys recursively.
    base = listing.uri.key.rsplit("/", 1)[0] + "/" if "/" in listing.uri.key else ""
    for prefix in listing.prefixes:
        o.line(f"{'PRE':>30} {prefix[len(base) :]}")
    for obj in listing.objects:
        when = local_time(obj.last_modified)
        size = format_bytes(obj.size) if human else str(obj.size)
        name = obj.key if recursive else obj.key[len(base) :]
        o.line(f"{when} {size:>10} {name}")


def local_time(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def print_cleanup(o: Output, plan: CleanupPlan) -> None:
    rows = [
        [action, e.name, local_time(e.last_modified), len(e.keys)]
        for action, entries in (("keep", plan.keep), ("delete", plan.delete))
        for e in entries
    ]
    o.table(["action", "entry", "last modified", "objects"], rows)
