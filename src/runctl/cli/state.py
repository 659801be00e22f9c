"""Per-invocation state shared by every command: global options, config, output, AWS access."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runctl.cli.output import FORMATS, Output, parse_format

if TYPE_CHECKING:
    from runctl.aws.session import AwsContext
    from runctl.config_cache import ResolvedConfig

InstanceId = Annotated[str, typer.Argument(help="Instance id (i-...).", show_default=False)]
OutputOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output format: text or json (some commands also take instance-id).",
        show_default=False,
    ),
]


@dataclass
class AppState:
    """What the root callback parsed, and lazily built things derived from it."""

    config_path: Path | None = None
    verbose: bool = False
    debug: bool = False
    profile: str | None = None
    region: str | None = None
    output_format: str = "text"
    output: Output = field(default_factory=Output)
    _config: ResolvedConfig | None = None
    _aws: AwsContext | None = None

    def config(self, overrides: Mapping[str, Any] | None = None) -> ResolvedConfig:
        """The resolved configuration; ``overrides`` are a command's own flags (dotted keys)."""
        from runctl.config_cache import resolve_cached

        flags = {"aws.region": self.region, **(overrides or {})}
        if overrides:
            return resolve_cached(config_path=self.config_path, overrides=flags)
        if self._config is None:
            self._config = resolve_cached(config_path=self.config_path, overrides=flags)
        return self._config

    def aws(self, overrides: Mapping[str, Any] | None = None) -> AwsContext:
        """The AWS context (session factory) for this invocation; imports boto3 on first use."""
        from runctl.aws.session import AwsContext

        if self._aws is not None and not overrides:
            return self._aws
        # The raw value: building the typed settings would cost pydantic here (start-up).
        config_region = self.config(overrides).value("aws.region")
        context = AwsContext(profile=self.profile, region=self.region, config_region=config_region)
        if not overrides:
            # One session per invocation: each new session re-parses the service models.
            self._aws = context
        return context


def get_state(ctx: typer.Context) -> AppState:
    """The AppState of this invocation (created on first use, e.g. under a bare CliRunner)."""
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def command_output(
    ctx: typer.Context, output: str | None, *, allowed: tuple[str, ...] = FORMATS
) -> Output:
    """The Output for a leaf command: its own ``--output`` wins over the root's."""
    state = get_state(ctx)
    chosen = parse_format(output, allowed=allowed) or state.output_format
    if chosen not in allowed:
        chosen = "text"
    state.output_format = chosen
    state.output.format = chosen
    state.output.verbose = state.verbose
    return state.output
