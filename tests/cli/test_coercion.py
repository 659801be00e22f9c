"""runctl's pydantic-free parameter coercion gives exactly what Typer's own gives: the same value
for every input it takes, and Typer's own error for every input it hands back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer._coercion import build_runtime_param
from typer.testing import CliRunner

from runctl.cli import coercion
from runctl.cli.app import app
from tests.cli.test_command_tree import leaves

SAMPLES: list[Any] = [
    None, "", "0", "7", "-3", "+4", "1.5", "-0.25", ".5", "2.", "1e3", "1_000", " 8", "nan",
    "inf", "x", "true", "False", "-", "some/path", ("a", "b"), ("1", "2"), (), True, False, 0,
    600.0, 12, Path("p"),
]  # fmt: skip


def outcome(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        result = runtime.coerce(value, param=param, ctx=ctx)
    except typer.BadParameter as exc:
        return ("error", exc.format_message())
    return ("value", (type(result).__name__, repr(result)))


def plain_params() -> list[tuple[str, Any, Any]]:
    root = typer.main.get_command(app)
    found = []
    for path, command in leaves(root):
        ctx = typer.Context(command, info_name=path[-1])
        for param in command.get_params(ctx):
            descriptor = param.type_descriptor
            if coercion.converter_for(descriptor.annotation, descriptor.parameter_info):
                found.append((f"{' '.join(path)} {param.name}", param, ctx))
    return found


def test_most_parameters_take_the_fast_path() -> None:
    assert len(plain_params()) > 150


def test_same_outcome_as_typer_for_every_parameter() -> None:
    for name, param, ctx in plain_params():
        descriptor = param.type_descriptor
        convert = coercion.converter_for(descriptor.annotation, descriptor.parameter_info)
        fast = coercion.PlainRuntimeParam(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            convert=convert,
        )
        typers = build_runtime_param(descriptor)
        for value in SAMPLES:
            expected = outcome(typers, value, param, ctx)
            assert outcome(fast, value, param, ctx) == expected, (name, value)


def test_a_range_error_is_typers_own() -> None:
    result = CliRunner().invoke(app, ["aws", "wait", "i-0123456789abcdef0", "--timeout", "-1"])
    assert result.exit_code == 2
    assert "greater than or equal to 0" in result.output
