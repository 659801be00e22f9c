"""The root Typer app: global options, sub-command registration and the one error boundary.

Sub-command modules are imported here, but each imports its services (and so boto3) only inside
its command functions, which keeps ``runctl --help`` fast.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from runctl import __version__
from runctl.cli import coercion
from runctl.cli import config as config_cli
from runctl.cli import doctor as doctor_cli
from runctl.cli import local as local_cli
from runctl.cli import status as status_cli
from runctl.cli.output import Output, parse_format
from runctl.cli.registry import LAZY_GROUPS
from runctl.cli.state import AppState, get_state
from runctl.errors import ExitCode, RunctlError, UsageError
from runctl.naming import region_problem

JSON_REQUESTED = "runctl.json_requested"


def requests_json(args: Sequence[str]) -> bool:
    """Whether raw command-line ``args`` ask for JSON output: the last ``--output``/``-o``
    before ``--`` says ``json`` (what follows ``--`` belongs to the user's script)."""
    chosen: str | None = None
    words = iter(args)
    for arg in words:
        if arg == "--":
            break
        if arg in ("--output", "-o"):
            chosen = next(words, None)
        elif arg.startswith("--output="):
            chosen = arg.partition("=")[2]
        elif arg.startswith("-o") and len(arg) > 2:
            chosen = arg[2:]
    return (chosen or "").lower() == "json"


def _usage_document(exc: Exception) -> None:
    """Under ``--output json``, a bad flag or argument found by the parser (click's usage
    errors) prints the same JSON error document as every other error; click still says it on
    stderr, with the usage line."""
    format_message = getattr(exc, "format_message", None)
    if getattr(exc, "exit_code", None) != ExitCode.USAGE or format_message is None:
        return
    where = getattr(getattr(exc, "ctx", None), "command_path", "runctl")
    error = UsageError(str(format_message()), hint=f"see `{where} --help`")
    Output(format="json").json_line(error.to_dict())


class RunctlGroup(TyperGroup):
    """The root group: the error boundary for every command, and the loader of the command
    groups in :data:`runctl.cli.registry.LAZY_GROUPS` (imported only when used). Every command
    it holds coerces its plain parameters without pydantic (:mod:`runctl.cli.coercion`)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        coercion.install(self, ctx)
        return super().parse_args(ctx, args)

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        wanted = requests_json(args)
        try:
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        except typer.TyperException as exc:
            if wanted:
                _usage_document(exc)
            raise
        ctx.meta[JSON_REQUESTED] = wanted
        return ctx

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        eager = super().list_commands(ctx)
        return [*eager, *(name for name in LAZY_GROUPS if name not in eager)]

    def get_command(self, ctx: typer.Context, name: str) -> Any:  # type: ignore[override]
        command = super().get_command(ctx, name)
        if command is None and name in LAZY_GROUPS:
            entry = LAZY_GROUPS[name]
            sub_app = getattr(importlib.import_module(entry.module), entry.attribute)
            command = typer.main.get_group(sub_app)
            command.name = name
            coercion.install(command, typer.Context(command, parent=ctx, info_name=name))
            self.add_command(command, name)
        return command

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:  # type: ignore[override]
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_GROUPS and name not in self.commands:
                rows.append((name, LAZY_GROUPS[name].help))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 20)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as exc:
            if ctx.meta.get(JSON_REQUESTED):
                _usage_document(exc)
            raise
        except RunctlError as err:
            _report(ctx, err)
        except BrokenPipeError:
            # The reader went away (`runctl ... | head`): nothing more can be said to it.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(int(ExitCode.INTERNAL)) from None
        except KeyboardInterrupt:
            get_state(ctx).output.info("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            if type(exc).__module__.startswith("botocore."):
                from runctl.aws.errors import translate_escaped

                known = translate_escaped(exc)
                if known is not None:
                    _report(ctx, known)
            debug = get_state(ctx).debug
            _report(
                ctx,
                RunctlError(
                    f"unexpected {type(exc).__name__}: {exc}",
                    hint=None if debug else "re-run with --debug for the full traceback",
                ),
            )


def _report(ctx: typer.Context, err: RunctlError) -> NoReturn:
    """Print ``err`` (with the traceback under --debug) and exit with its code."""
    state = get_state(ctx)
    if ctx.meta.get(JSON_REQUESTED):
        state.output.format = "json"  # even when the error came before --output was parsed
    if state.debug:
        traceback.print_exc(file=sys.stderr)
    state.output.error(err)
    raise typer.Exit(int(err.exit_code)) from None


app = typer.Typer(
    cls=RunctlGroup,
    name="runctl",
    help="Run ML training on AWS EC2: create instances, ship code, stream logs, keep checkpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich help pulls in rich.markdown and markdown_it (~60 ms at start-up).
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"runctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Read this config file too.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Say more.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and AWS calls.")] = False,
    profile: Annotated[str | None, typer.Option("--profile", help="AWS profile.")] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region.")] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Output format: text or json.")
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Global options; every command also accepts --output after its own name."""
    if region is not None and (problem := region_problem(region)):
        raise UsageError(f"--region: {problem}", hint="e.g. --region us-east-1")
    state = AppState(
        config_path=config,
        verbose=verbose or debug,
        debug=debug,
        profile=profile,
        region=region,
    )
    state.output_format = parse_format(output) or "text"
    state.output.format = state.output_format
    state.output.verbose = state.verbose
    ctx.obj = state
    if debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    elif verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)


config_cli.register(app)
local_cli.register(app)
doctor_cli.register(app)
status_cli.register(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="runctl")
