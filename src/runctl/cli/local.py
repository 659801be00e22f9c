"""``runctl local SCRIPT [-- ARGS]`` (alias ``exec``): run a script here through the job runner.

The script's output streams to stdout (to stderr under ``--output json``, where stdout carries
one JSON document about the job). Exit 0 when the script succeeded, 7 with its exit code when it
failed, 6 when it does not exist, 130 when stopped with Ctrl-C (after its checkpoint was kept).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runctl.cli.job_output import report_local_result
from runctl.cli.state import OutputOption, command_output, get_state

if TYPE_CHECKING:
    pass

HELP = (
    "Run SCRIPT on this machine with the job environment (RUNCTL_* variables, checkpoints, "
    "logs). Put the script's own arguments after `--`."
)
SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def register(app: typer.Typer) -> None:
    app.command("local", help=HELP, context_settings=SETTINGS)(local)
    app.command("exec", help="Alias of `local`.", context_settings=SETTINGS, hidden=True)(local)


def _echo_to(stream_name: str) -> Callable[[bytes], None]:
    def echo(data: bytes) -> None:
        stream = getattr(sys, stream_name)
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()

    return echo


def local(
    ctx: typer.Context,
    script: Annotated[str, typer.Argument(help="The script, relative to the current directory.")],
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for the script.")] = None,
    data_s3: Annotated[
        str | None, typer.Option("--data-s3", help="Download this S3 prefix into RUNCTL_DATA_DIR.")
    ] = None,
    output_s3: Annotated[
        str | None, typer.Option("--output-s3", help="Upload RUNCTL_OUTPUT_DIR here at the end.")
    ] = None,
    checkpoint_s3: Annotated[
        str | None,
        typer.Option(
            "--checkpoint-s3",
            help="Commit checkpoints here (s3:// prefix or a local store dir); resume from it.",
        ),
    ] = None,
    checkpoint_dir: Annotated[
        str | None,
        typer.Option(
            "--checkpoint-dir", help="RUNCTL_CHECKPOINT_DIR (default local.checkpoint_dir)."
        ),
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="K=V for the script (repeatable).")
    ] = None,
    project_name: Annotated[
        str | None, typer.Option("--project-name", help="Project name in the job id.")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Run SCRIPT here through the same job runner an instance uses."""
    from runctl.services.jobs.local import LocalJobRequest, parse_env_pairs, run_local_job

    out = command_output(ctx, output)
    state = get_state(ctx)
    request = LocalJobRequest(
        script=script,
        args=[*(args or []), *ctx.args],
        env=parse_env_pairs(env or []),
        data_s3=data_s3,
        output_s3=output_s3,
        checkpoint_s3=checkpoint_s3,
        checkpoint_dir=checkpoint_dir,
        project_name=project_name,
    )
    result = run_local_job(
        request,
        state.config().settings,
        cwd=Path.cwd(),
        s3_client=lambda: state.aws().s3(),
        echo=_echo_to("stderr" if out.is_json else "stdout"),
        notify=out.detail,
    )
    report_local_result(out, result, result.to_dict())
