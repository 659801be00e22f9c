"""Contract: every leaf command accepts --output after its own name (the README)."""

from __future__ import annotations

from typing import Any

import typer

from runctl.cli.app import app


def leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every leaf command, loading lazy groups the way a user's invocation does."""
    if not hasattr(command, "list_commands"):
        return [(path, command)]
    ctx = typer.Context(command)
    found = []
    for name in command.list_commands(ctx):
        found.extend(leaves(command.get_command(ctx, name), (*path, name)))
    return found


def test_every_leaf_takes_output() -> None:
    root = typer.main.get_command(app)
    found = leaves(root)
    assert len(found) > 20
    missing = [
        " ".join(path)
        for path, command in found
        if not any("--output" in param.opts for param in command.params)
    ]
    assert missing == []


def test_commands_of_the_spec_are_registered() -> None:
    root = typer.main.get_command(app)
    names = {" ".join(path) for path, _ in leaves(root)}
    for name in (
        "init", "config show", "config validate", "config set", "local", "exec",
        "aws setup", "aws create", "aws start", "aws stop", "aws terminate", "aws status",
        "aws wait", "aws train", "aws monitor", "aws logs", "aws watch", "aws processes",
        "resources list", "s3 upload", "s3 download", "s3 sync", "s3 list", "s3 cleanup",
        "checkpoint list", "checkpoint info", "checkpoint resume", "checkpoint cleanup",
        "aws ebs create", "aws ebs list", "aws ebs attach", "aws ebs detach", "aws ebs delete",
        "aws ebs snapshot", "aws ebs snapshot-list", "aws ebs restore", "aws ebs pre-warm",
        "jobs list", "jobs show", "jobs logs", "jobs cancel", "workflow train",
        "status", "top", "doctor", "resources summary", "resources cleanup",
    ):  # fmt: skip
        assert name in names, name
