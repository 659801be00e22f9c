"""``runctl aws train``, ``aws monitor`` (aliases ``logs``, ``watch``) and ``aws processes``."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runctl.cli.aws_clients import aws_for, ec2_for, ssm_for
from runctl.cli.output import Output
from runctl.cli.state import OutputOption, command_output, get_state

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance
    from runctl.job.spec import JobStatus
    from runctl.services.instances.launch import LaunchRequest
    from runctl.services.jobs.auto_resume import ResumeOutcome
    from runctl.services.jobs.follow import FollowResult
    from runctl.services.jobs.start import AwsJobClients, StartedJob

InstanceId = Annotated[str, typer.Argument(help="Instance id (i-...).", show_default=False)]


def job_clients(ctx: typer.Context) -> AwsJobClients:
    from runctl.services.jobs.start import AwsJobClients

    aws = aws_for(ctx)
    return AwsJobClients(
        s3=aws.s3(),
        ssm_client=aws.ssm(),
        ec2=ec2_for(ctx),
        ssm=ssm_for(ctx),
        region=aws.region_name,
    )


class LogPrinter:
    """Writes streamed log bytes as text: to stdout, or to stderr when stdout carries JSON."""

    def __init__(self, out: Output, *, ndjson: bool = False) -> None:
        self.out = out
        self.ndjson = ndjson
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def __call__(self, chunk: bytes) -> None:
        text = self._decoder.decode(chunk)
        if self.ndjson:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self.out.json_line({"type": "log", "line": line})
        elif self.out.is_json:
            self.out.stderr.file.write(text)
            self.out.stderr.file.flush()
        else:
            self.out.raw(text)

    def close(self) -> None:
        if self.ndjson and self._pending:
            self.out.json_line({"type": "log", "line": self._pending})
            self._pending = ""


def train(
    ctx: typer.Context,
    instance_id: InstanceId,
    script: Annotated[str, typer.Argument(help="Training script, relative to here.")],
    args: Annotated[
        list[str] | None, typer.Argument(help="Arguments for the script, after --.")
    ] = None,
    sync_code: Annotated[
        bool, typer.Option("--sync-code/--no-sync-code", help="Ship the project's code.")
    ] = True,
    include_pattern: Annotated[
        list[str] | None,
        typer.Option("--include-pattern", help="Ship files matching this even if ignored."),
    ] = None,
    data_s3: Annotated[str | None, typer.Option("--data-s3", help="Stage this S3 prefix.")] = None,
    output_s3: Annotated[
        str | None, typer.Option("--output-s3", help="Upload RUNCTL_OUTPUT_DIR here.")
    ] = None,
    checkpoint_s3: Annotated[
        str | None, typer.Option("--checkpoint-s3", help="Commit checkpoints here.")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="K=V for the script (repeatable).")
    ] = None,
    project_name: Annotated[str | None, typer.Option("--project-name")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Stream the log until the job ends.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Minutes to wait (with --wait).", min=0)
    ] = None,
    stop_on_finish: Annotated[
        bool, typer.Option("--stop-on-finish", help="Stop the instance when the job ends.")
    ] = False,
    terminate_on_finish: Annotated[
        bool,
        typer.Option("--terminate-on-finish", help="Terminate the instance when the job ends."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Start even if a job is running there.")
    ] = False,
    auto_resume: Annotated[
        bool,
        typer.Option(
            "--auto-resume",
            help="On interruption, resume on a replacement instance (implies --wait).",
        ),
    ] = False,
    max_restarts: Annotated[
        int, typer.Option("--max-restarts", help="Replacements --auto-resume may launch.", min=0)
    ] = 3,
    output: OutputOption = None,
) -> None:
    """Start a training job on an instance; with --wait, follow it and exit with its verdict."""
    from runctl.paths import cache_dir
    from runctl.services.jobs.local import parse_env_pairs
    from runctl.services.jobs.start import TrainRequest, start_job

    out = command_output(ctx, output)
    state = get_state(ctx)
    request = TrainRequest(
        instance_id=instance_id,
        script=script,
        args=list(args or []),
        sync_code=sync_code,
        include_patterns=list(include_pattern or []),
        data_s3=data_s3,
        output_s3=output_s3,
        checkpoint_s3=checkpoint_s3,
        env=parse_env_pairs(list(env or [])),
        project_name=project_name,
        stop_on_finish=stop_on_finish,
        terminate_on_finish=terminate_on_finish,
        force=force,
    )
    settings = state.config().settings
    with out.spinner(f"starting {script} on {instance_id}"):
        started = start_job(
            lambda: job_clients(ctx),
            request,
            settings,
            cwd=Path.cwd(),
            cache_dir=cache_dir(),
            notify=out.note,
        )
    out.info(f"job {started.job_id} started on {instance_id}")
    out.info(f"files: {started.location.uri}")
    document: dict[str, Any] = {**started.to_dict(), "state": "running", "exit_code": None}
    if not (wait or auto_resume):
        out.info(f"follow it: runctl aws monitor {instance_id} --follow")
        out.document(document, lambda o: o.line(started.job_id))
        return
    remote_root = settings.aws.remote_root
    if not auto_resume:
        result = follow_started(ctx, out, started, timeout_minutes=timeout, remote_root=remote_root)
        finish_job(out, document, result)
        return
    _train_with_auto_resume(ctx, out, started, document, max_restarts, timeout, remote_root)


def _train_with_auto_resume(
    ctx: typer.Context,
    out: Output,
    first: StartedJob,
    document: dict[str, Any],
    max_restarts: int,
    timeout: float | None,
    remote_root: str,
) -> None:
    from runctl.paths import cache_dir
    from runctl.services import tags
    from runctl.services.instances.launch import launch_instance
    from runctl.services.instances.lifecycle import wait_ready
    from runctl.services.jobs.auto_resume import run_with_auto_resume, timeline_rows
    from runctl.services.jobs.resume import resume_job

    settings = get_state(ctx).config().settings
    clients = job_clients(ctx)

    def launch(request: LaunchRequest) -> Instance:
        result = launch_instance(
            clients.ec2, clients.ssm, request, confirm_running=True, on_event=out.detail
        )
        assert result.instance is not None
        for attempt in result.attempts:
            out.detail(attempt.describe())
        wait_ready(clients.ec2, clients.ssm, result.instance.instance_id)
        return result.instance

    outcome = run_with_auto_resume(
        clients,
        first,
        clients.ec2.describe_instance(first.instance_id),
        settings,
        max_restarts=max_restarts,
        follow_attempt=lambda started: follow_started(
            ctx, out, started, timeout_minutes=timeout, remote_root=remote_root
        ),
        launch=launch,
        resume=lambda instance_id: resume_job(
            clients, first.location, instance_id, settings, cache_dir=cache_dir(), force=True
        ),
        user=tags.current_user(),
        notify=out.info,
    )
    document["instance_id"] = outcome.last.instance_id
    document["timeline"] = timeline_rows(outcome.timeline)
    document["launched"] = outcome.launched
    document["terminated"] = outcome.terminated
    document["gave_up"] = outcome.gave_up
    _print_timeline(out, outcome)
    finish_job(out, document, outcome.result, gave_up=outcome.gave_up)


def _print_timeline(out: Output, outcome: ResumeOutcome) -> None:
    """The attempts, on stderr (stdout carries the job's log or its JSON document)."""
    out.info("attempts:")
    for entry in outcome.timeline:
        extra = ""
        if entry.notice_to_commit_seconds is not None:
            extra += f", notice -> checkpoint committed {entry.notice_to_commit_seconds:.1f}s"
        if entry.recovery_seconds is not None:
            extra += f", interruption -> training again {entry.recovery_seconds:.1f}s"
        checkpoint = f", checkpoint {entry.checkpoint_id}" if entry.checkpoint_id else ""
        out.info(
            f"  {entry.attempt}: {entry.instance_id} ({entry.lifecycle}) {entry.state}"
            f"{checkpoint}{extra}"
        )
    if outcome.terminated:
        out.info(f"terminated replacements: {', '.join(outcome.terminated)}")


def follow_started(
    ctx: typer.Context,
    out: Output,
    started: StartedJob,
    *,
    timeout_minutes: float | None,
    remote_root: str,
) -> FollowResult:
    from runctl.errors import WaitTimeoutError
    from runctl.services.jobs.follow import InstanceReader, S3Reader, follow

    clients = job_clients(ctx)
    printer = LogPrinter(out)
    instance_id, job_id = started.instance_id, started.job_id

    def alive() -> bool:
        return clients.ec2.describe_instance(instance_id).state in ("pending", "running")

    try:
        result = follow(
            InstanceReader(clients.ssm_client, instance_id, job_id, remote_root),
            fallback=lambda: S3Reader(clients.s3, started.location),
            attempt=started.attempt,
            on_log=printer,
            on_status=lambda status: out.detail(f"job {job_id}: {status.state}"),
            instance_alive=alive,
            timeout=None if timeout_minutes is None else timeout_minutes * 60,
        )
    except WaitTimeoutError:
        raise WaitTimeoutError(
            f"job {job_id} is still running after {timeout_minutes:g} minutes; it goes on",
            hint=f"follow it with `runctl aws monitor {instance_id} --follow`",
            resource=job_id,
        ) from None
    printer.close()
    return result


def finish_job(
    out: Output, document: dict[str, Any], result: FollowResult, *, gave_up: str | None = None
) -> None:
    """Print the job's verdict; exit 0 when it succeeded, 7 otherwise."""
    from runctl.errors import JobFailedError

    status = result.status
    document["state"] = "lost" if result.lost else (status.state if status else "unknown")
    document["exit_code"] = status.exit_code if status else None
    document["attempt"] = result.attempt
    document["checkpoint_id"] = status.checkpoint_id if status else None
    if status is not None and status.state == "succeeded" and not result.lost:
        out.document(document, lambda o: o.success(f"job {document['job_id']} succeeded"))
        return
    message = _failure_message(document, status)
    raise JobFailedError(
        f"{message}; gave up: {gave_up}" if gave_up else message,
        script_exit_code=status.exit_code if status else None,
        hint=_failure_hint(document),
        resource=str(document["job_id"]),
        details=document,
    )


def _failure_message(document: dict[str, Any], status: JobStatus | None) -> str:
    job = document["job_id"]
    state = document["state"]
    if state == "failed":
        return f"job {job} failed: the script exited with code {document['exit_code']}"
    if state == "lost":
        return f"job {job} was lost: its instance is gone and the job never reported an end"
    reason = f" ({status.reason})" if status is not None and status.reason else ""
    checkpoint = document.get("checkpoint_id")
    saved = f"; checkpoint {checkpoint} committed" if checkpoint else "; no checkpoint committed"
    return f"job {job} ended {state}{reason}{saved}"


def _failure_hint(document: dict[str, Any]) -> str:
    if document["state"] == "failed":
        return (
            f"read the log: runctl aws monitor {document['instance_id']} --job {document['job_id']}"
        )
    return "re-run with --auto-resume to continue on a new instance from the last checkpoint"
