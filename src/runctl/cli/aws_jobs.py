"""``runctl aws train``: start a job on an instance; with ``--wait``, follow it to its verdict."""

from __future__ import annotations

from typing import Annotated

import typer

from runctl.cli.aws_clients import job_session
from runctl.cli.job_output import follow_to_verdict, render_started, say_started
from runctl.cli.options import (
    CheckpointS3,
    DataS3,
    DataVolume,
    Docker,
    DockerImage,
    EnvPairs,
    IncludePattern,
    MaxRestarts,
    OutputS3,
    ProjectName,
    Script,
    ScriptArgs,
    SyncCode,
)
from runctl.cli.state import InstanceId, OutputOption, command_output


def train(
    ctx: typer.Context,
    instance_id: InstanceId,
    script: Script,
    args: ScriptArgs = None,
    sync_code: SyncCode = True,
    include_pattern: IncludePattern = None,
    data_s3: DataS3 = None,
    data_volume: DataVolume = None,
    output_s3: OutputS3 = None,
    checkpoint_s3: CheckpointS3 = None,
    env: EnvPairs = None,
    project_name: ProjectName = None,
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
    max_restarts: MaxRestarts = 3,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Return once the job runs; with --auto-resume the job's instances launch "
            "their own replacements, so the terminal may go away.",
        ),
    ] = False,
    docker: Docker = False,
    docker_image: DockerImage = None,
    output: OutputOption = None,
) -> None:
    """Start a training job on an instance; with --wait, follow it and exit with its verdict."""
    from runctl.errors import UsageError
    from runctl.services.jobs.local import parse_env_pairs
    from runctl.services.jobs.request import TrainRequest

    if detach and wait:
        raise UsageError("--detach and --wait contradict each other", hint="give one of them")
    out = command_output(ctx, output)
    request = TrainRequest(
        instance_id=instance_id, script=script, args=list(args or []), sync_code=sync_code,
        include_patterns=list(include_pattern or []), data_s3=data_s3, data_volume=data_volume,
        output_s3=output_s3,
        checkpoint_s3=checkpoint_s3, env=parse_env_pairs(list(env or [])),
        project_name=project_name, stop_on_finish=stop_on_finish,
        terminate_on_finish=terminate_on_finish, force=force, max_restarts=max_restarts,
        recover_on_instance=auto_resume and detach,
        docker=docker or docker_image is not None, docker_image=docker_image,
    )  # fmt: skip
    session = job_session(ctx, out)
    with out.spinner(f"starting {script} on {instance_id}"):
        started = session.start(request)
    say_started(out, started)
    if detach or not (wait or auto_resume):
        render_started(out, started)
        return
    follow_to_verdict(
        out, session, started, auto_resume=auto_resume, max_restarts=max_restarts,
        timeout_minutes=timeout,
    )  # fmt: skip
