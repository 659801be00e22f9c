"""``runctl jobs list|show|logs|cancel``: jobs as first-class objects, read from their records in
S3 whatever instance ran them and whether it still exists."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from runctl.cli.aws_clients import job_session
from runctl.cli.job_output import LogPrinter, print_follow_end
from runctl.cli.options import Yes
from runctl.cli.output import Output
from runctl.cli.registry import group_help
from runctl.cli.state import OutputOption, command_output
from runctl.cli.units import cost_fields, duration, money

if TYPE_CHECKING:
    from runctl.services.jobs.catalog import JobDetail, JobListing, JobRow

jobs_app = typer.Typer(help=group_help("jobs"), rich_markup_mode=None, no_args_is_help=True)

JobRef = Annotated[
    str,
    typer.Argument(
        help="Job id (see `runctl jobs list`) or job URI (s3://...).", show_default=False
    ),
]


@jobs_app.command("list")
def list_(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", help="Only this project.")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="Only jobs in this state or with this verdict.")
    ] = None,
    all_users: Annotated[
        bool, typer.Option("--all-users", help="Every user's jobs, not only yours.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="At most N jobs (0: all).")] = 50,
    output: OutputOption = None,
) -> None:
    """Your jobs, newest first: id, script, state, attempts, instance, started, duration and
    cost so far -- also jobs whose instances are gone."""
    from runctl.services.jobs.catalog import JobQuery, list_jobs
    from runctl.services.tags import current_user

    out = command_output(ctx, output)
    query = JobQuery(project, state, None if all_users else current_user(), limit).checked()
    session = job_session(ctx, out)
    with out.spinner("reading job records"):
        listing = list_jobs(session, query)
    out.document(listing.to_dict(), lambda o: _print_listing(o, listing))


def _print_listing(out: Output, listing: JobListing) -> None:
    out.table(
        ["job", "script", "state", "attempts", "instance", "started", "duration", "cost"],
        [
            [
                row.job_id,
                row.spec.script,
                _state(row),
                row.attempts,
                row.instance_id or "-",
                _when(row),
                duration(row.cost.instance_seconds),
                money(row.cost.usd),
            ]
            for row in listing.jobs
        ],
    )
    out.info(f"{len(listing.jobs)} job(s) in s3://{listing.bucket}/ ({listing.scope})")
    if listing.truncated:
        out.info("more jobs match: --limit 0 lists them all")
    out.detail(
        "cost: compute only (the job's time at the price in effect); `jobs show` adds EBS and S3"
    )


def _state(row: JobRow) -> str:
    code = row.status.exit_code if row.status else None
    return row.state + (f" (exit {code})" if row.state == "failed" and code is not None else "")


def _when(row: JobRow) -> str:
    created = (row.status.created if row.status else None) or row.spec.created
    return created[:16].replace("T", " ") if created else "-"


@jobs_app.command("show")
def show(ctx: typer.Context, job: JobRef, output: OutputOption = None) -> None:
    """Everything about one job: script, arguments, state and verdict, attempts and instances,
    times, cost so far, where its checkpoints, outputs and log are."""
    from runctl.services.jobs.catalog import job_location, show_job

    out = command_output(ctx, output)
    session = job_session(ctx, out)
    detail = show_job(session, job_location(job, session.settings))
    out.document(detail.to_dict(), lambda o: _print_detail(o, detail))


def _print_detail(out: Output, detail: JobDetail) -> None:
    data = detail.to_dict()
    out.fields(
        [
            ("job", data["job_id"]),
            ("script", " ".join([data["script"], *data["args"]])),
            ("user", data["user"]),
            ("state", _state(detail.row)),
            ("verdict", data["verdict"]),
            ("attempts", data["attempts"]),
            ("instance", f"{data['instance_id'] or '-'} ({data['instance_state'] or 'gone'})"),
            ("instances", ", ".join(data["instance_ids"]) or None),
            ("created", data["created"]),
            ("ended", data["ended"]),
            ("duration", duration(data["duration_seconds"])),
            *cost_fields(data["cost"]),
            ("checkpoint", data["checkpoint_id"]),
            ("message", data["message"]),
            ("job uri", data["job_uri"]),
            ("checkpoints", data["checkpoint_uri"]),
            ("outputs", data["output_uri"]),
            ("log", data["log_uri"]),
        ]
    )
    if detail.attempts:
        out.table(
            ["attempt", "instance", "zone", "market", "started", "ended", "restored", "ended as"],
            [
                [
                    str(a.attempt), a.instance_id or "-", a.availability_zone or "-",
                    a.market or "-", a.started or "-", a.ended or "-",
                    a.restored_checkpoint or "-",
                    f"{a.state or 'running'}: {a.reason}" if a.reason else (a.state or "-"),
                ]
                for a in detail.attempts
            ],
        )  # fmt: skip
    for note in detail.notes:
        out.info(note)


@jobs_app.command("logs")
def logs(
    ctx: typer.Context,
    job: JobRef,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream new output until the job ends.")
    ] = False,
    attempt: Annotated[
        int | None, typer.Option("--attempt", help="This attempt's log (default: the newest).")
    ] = None,
    output: OutputOption = None,
) -> None:
    """The job's log, from its instance while it runs and from the S3 copy otherwise; --follow
    streams it until the job ends (NDJSON with --output json) and exits with its verdict."""
    from runctl.services.jobs.catalog import job_location, watch_job

    out = command_output(ctx, output)
    session = job_session(ctx, out)
    watch = watch_job(session, job_location(job, session.settings))
    collected: list[bytes] = []
    printer = LogPrinter(out, ndjson=out.is_json)
    glance = watch.read_all(collected.append if out.is_json and not follow else printer, attempt)
    seen = glance.observation
    if not follow:
        lines = b"".join(collected).decode("utf-8", "replace").splitlines()
        said = f"job {seen.job_id} attempt {seen.attempt}: {glance.state} (from {seen.source})"
        out.document(
            {**glance.to_dict(watch.instance_id, 0), "lines": lines}, lambda o: o.info(said)
        )
        return
    result = watch.follow(on_log=printer, attempt=seen.attempt, offset=seen.log_size)
    printer.close()
    print_follow_end(out, watch, result)


@jobs_app.command("cancel")
def cancel(
    ctx: typer.Context,
    job: JobRef,
    yes: Yes = False,
    output: OutputOption = None,
) -> None:
    """Stop the job for good, its checkpoint committed (state cancelled); its instance keeps
    running."""
    from runctl.services.jobs.cancel import cancel_job, cancel_target
    from runctl.services.jobs.catalog import job_location

    out = command_output(ctx, output)
    session = job_session(ctx, out)
    target = cancel_target(session, job_location(job, session.settings))
    if not yes:
        out.confirm(
            f"cancel job {target.location.job_id} on {target.instance_id} (its checkpoint is "
            "committed first; the instance keeps running)?",
            refusing=f"cancel job {target.location.job_id}",
        )
    result = cancel_job(session, target)
    out.document(
        result.to_dict(),
        lambda o: o.success(
            f"{result.message}; {result.instance_id} keeps running"
            if result.instance_left_running
            else result.message
        ),
    )
