"""Parameter coercion without pydantic for runctl's plain parameter types.

Typer (0.29) coerces every parameter of the invoked command chain, given or not, through a
pydantic TypeAdapter it builds on first use: even ``runctl aws status --help`` imported pydantic
and built eight adapters, about 60 ms of a 100 ms start. runctl's parameters are plain ``str``,
``bool``, ``int``, ``float``, ``Path`` and lists of those; :func:`install` gives each such
parameter a stdlib coercion. Anything the fast path is not sure about (an unusual spelling, a
value out of range, a Path with existence checks, an Enum) goes to Typer's own coercion, so values
and error messages stay exactly Typer's.

This leans on one Typer internal, the lazily built ``_runtime_param`` of a parameter: when it is
missing (another Typer), :func:`install` does nothing and Typer coerces as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

from typer import _coercion

if TYPE_CHECKING:
    from typer._click import Command, Context

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


class _Delegate(Exception):
    """The fast path is not sure: let Typer coerce this value."""


Convert = Callable[[Any], Any]


@dataclass(frozen=True)
class PlainRuntimeParam(_coercion.RuntimeParam):
    """Typer's runtime coercion contract, fulfilled without pydantic where the type is plain."""

    convert: Convert

    def _coerce_value(self, value: Any, param: Any, ctx: Context) -> Any:
        try:
            return self.convert(value)
        except _Delegate:
            typer_param = _coercion.build_runtime_param(param.type_descriptor)
            param._runtime_param = typer_param  # this parameter is Typer's from now on
            return typer_param.coerce(value, param=param, ctx=ctx)


def _as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Delegate


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Delegate


def _as_path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    if isinstance(value, str):
        return Path(value)
    raise _Delegate


def _number(kind: type[int] | type[float], low: Any, high: Any) -> Convert:
    pattern = _INT if kind is int else _FLOAT
    accepted: tuple[type, ...] = (int,) if kind is int else (int, float)

    def convert(value: Any) -> Any:
        plain = isinstance(value, str) and pattern.fullmatch(value) is not None
        if not plain and (not isinstance(value, accepted) or isinstance(value, bool)):
            raise _Delegate
        number = kind(value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise _Delegate  # Typer says what is wrong, in its own words
        return number

    return convert


def _plain_path(info: Any) -> bool:
    """A Path parameter with none of Typer's path checks (those stay Typer's)."""
    return not (
        info.exists
        or not info.file_okay
        or not info.dir_okay
        or info.writable
        or info.resolve_path
        or info.allow_dash
        or info.path_type is not None
    )


def converter_for(annotation: Any, info: Any) -> Convert | None:
    """The stdlib converter for a parameter, or None when Typer should keep it."""
    if getattr(info, "parser", None) is not None:
        return None
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (Any,)
        one = converter_for(item, info)
        if one is None:
            return None

        def each(value: Any) -> list[Any]:
            if not isinstance(value, (list, tuple)):
                raise _Delegate
            return [one(item) for item in value]

        return each
    if annotation is str:
        return _as_str
    if annotation is bool:
        return _as_bool
    if annotation in (int, float):
        if getattr(info, "clamp", False):
            return None
        return _number(annotation, info.min, info.max)
    if annotation is Path and _plain_path(info):
        return _as_path
    return None


def install(command: Command, ctx: Context) -> None:
    """Give every plain parameter of ``command`` and its loaded sub-commands the fast coercion.

    ``ctx`` is ``command``'s context: it decides the help option's names, and the help option
    (made on first use) is a parameter like any other.
    """
    for param in command.get_params(ctx):
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", True) is not None:
            continue  # not Typer's, already built, or another Typer
        convert = converter_for(descriptor.annotation, descriptor.parameter_info)
        if convert is not None:
            param._runtime_param = PlainRuntimeParam(  # type: ignore[attr-defined]
                parameter_info=descriptor.parameter_info,
                annotation=descriptor.annotation,
                convert=convert,
            )
    for name, sub in getattr(command, "commands", {}).items():
        install(sub, type(ctx)(sub, parent=ctx, info_name=name))
