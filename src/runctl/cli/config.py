"""``runctl init`` and ``runctl config show|validate|set``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from runctl.cli.output import Output
from runctl.cli.state import OutputOption, command_output, get_state

config_app = typer.Typer(help="Show, check and edit the configuration.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(config_app, name="config")


def init(
    ctx: typer.Context,
    path: Annotated[Path, typer.Option("--path", help="Where to write.")] = Path(".runctl.toml"),
    bucket: Annotated[str | None, typer.Option("--bucket", help="Set aws.s3_bucket.")] = None,
    region: Annotated[str | None, typer.Option("--region", help="Set aws.region.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    output: OutputOption = None,
) -> None:
    """Write a commented .runctl.toml (never overwrites without --force)."""
    from runctl.config_file import write_initial

    out = command_output(ctx, output)
    written = write_initial(
        path, force=force, values={"aws.s3_bucket": bucket, "aws.region": region}
    )
    out.document({"path": str(written), "written": True}, lambda o: o.success(f"wrote {written}"))


@config_app.command("show")
def show(ctx: typer.Context, output: OutputOption = None) -> None:
    """Print every resolved value and where it came from."""
    out = command_output(ctx, output)
    resolved = get_state(ctx).config()
    rows: list[dict[str, Any]] = [
        {"key": key, "value": resolved.value(key), "source": source}
        for key, source in resolved.sources.items()
    ]
    data = {"files": [str(p) for p in resolved.files], "settings": rows}

    def text(o: Output) -> None:
        o.table(
            ["key", "value", "source"],
            [[r["key"], "-" if r["value"] is None else r["value"], r["source"]] for r in rows],
        )

    out.document(data, text)


@config_app.command("validate")
def validate(ctx: typer.Context, output: OutputOption = None) -> None:
    """Check every config file and RUNCTL_* variable; exit 3 naming the first problem."""
    out = command_output(ctx, output)
    resolved = get_state(ctx).config()
    files = [str(p) for p in resolved.files]
    out.document(
        {"valid": True, "files": files},
        lambda o: o.success(f"configuration is valid ({', '.join(files) or 'defaults only'})"),
    )


@config_app.command("set")
def set_(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. aws.s3_bucket.")],
    value: Annotated[str, typer.Argument(help="New value; 'none' clears an optional key.")],
    output: OutputOption = None,
) -> None:
    """Set KEY to VALUE in the file it comes from (or ./.runctl.toml), keeping comments."""
    from runctl.config import split_key
    from runctl.config_file import set_value
    from runctl.paths import find_project_file

    out = command_output(ctx, output)
    state = get_state(ctx)
    split_key(key)
    resolved = state.config()
    target = (
        resolved.file_for(key)
        or state.config_path
        or find_project_file(Path.cwd())
        or Path(".runctl.toml")
    )
    written = set_value(target, key, value)
    out.document(
        {"key": key, "value": written, "path": str(target)},
        lambda o: o.success(f"{key} = {written!r} in {target}"),
    )
