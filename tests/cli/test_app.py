"""The root app: version, global options, --output placement and the error boundary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from runctl import __version__
from runctl.cli.app import RunctlGroup, app
from runctl.cli.state import AppState, OutputOption, command_output
from runctl.errors import NotFoundError

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"runctl {__version__}"


def test_help_lists_commands_and_completion() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for text in ("init", "config", "--install-completion", "--show-completion", "--output"):
        assert text in result.stdout


def test_output_accepted_on_root_and_after_the_leaf(workdir: Path) -> None:
    for args in (["-o", "json", "config", "validate"], ["config", "validate", "--output", "json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["valid"] is True


def test_bad_output_value_is_a_usage_error(workdir: Path) -> None:
    result = runner.invoke(app, ["config", "show", "--output", "yaml"])
    assert result.exit_code == 2
    assert "yaml" in result.stderr
    assert result.stdout == ""


def test_unknown_flag_is_a_usage_error() -> None:
    assert runner.invoke(app, ["config", "show", "--bogus"]).exit_code == 2


def boundary_app(exc: BaseException) -> typer.Typer:
    """A throwaway app with runctl's boundary whose one command raises ``exc``."""
    test_app = typer.Typer(cls=RunctlGroup, pretty_exceptions_enable=False)

    @test_app.callback()
    def root(ctx: typer.Context, debug: bool = typer.Option(False, "--debug")) -> None:
        ctx.obj = AppState(debug=debug)

    @test_app.command()
    def boom(ctx: typer.Context, output: OutputOption = None) -> None:
        command_output(ctx, output)
        raise exc

    return test_app


def test_runctl_errors_exit_with_their_code_and_one_line() -> None:
    err = NotFoundError("instance i-0123456789abcdef0 not found", hint="check the id")
    result = runner.invoke(boundary_app(err), ["boom"])
    assert result.exit_code == 6
    assert "error: instance i-0123456789abcdef0 not found" in result.stderr
    assert "hint: check the id" in result.stderr
    assert "Traceback" not in result.stderr


def test_runctl_errors_in_json_mode_also_print_a_document() -> None:
    result = runner.invoke(boundary_app(NotFoundError("gone")), ["boom", "-o", "json"])
    assert result.exit_code == 6
    doc = json.loads(result.stdout)
    assert set(doc) == {"error", "message", "hint", "resource", "exit_code"}
    assert doc["exit_code"] == 6


def test_unexpected_exception_is_one_line_and_exit_1() -> None:
    result = runner.invoke(boundary_app(ValueError("kaboom")), ["boom"])
    assert result.exit_code == 1
    assert "unexpected ValueError: kaboom" in result.stderr
    assert "re-run with --debug" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback() -> None:
    result = runner.invoke(boundary_app(ValueError("kaboom")), ["--debug", "boom"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr


@pytest.mark.parametrize("exc", [KeyboardInterrupt()])
def test_ctrl_c_exits_130(exc: BaseException) -> None:
    result = runner.invoke(boundary_app(exc), ["boom"])
    assert result.exit_code == 130
