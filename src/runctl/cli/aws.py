"""The ``runctl aws`` sub-app: instance lifecycle, setup and prices.

Each command lives in a module of its own (``aws_create``, ``aws_lifecycle``, ``aws_setup``, the
``ebs`` sub-app);
they import services, and so boto3, only inside their bodies, which keeps ``--help`` fast.
"""

from __future__ import annotations

import typer

from runctl.cli import aws_create, aws_jobs, aws_lifecycle, aws_monitor, aws_setup, ebs
from runctl.cli.registry import group_help

aws_app = typer.Typer(
    help=group_help("aws"),
    rich_markup_mode=None,
    no_args_is_help=True,
)

aws_app.command("setup")(aws_setup.setup)
aws_app.command("create")(aws_create.create)
aws_app.command("start")(aws_lifecycle.start)
aws_app.command("stop")(aws_lifecycle.stop)
aws_app.command("terminate")(aws_lifecycle.terminate)
aws_app.command("status")(aws_lifecycle.status)
aws_app.command("wait")(aws_lifecycle.wait)
aws_app.command("prices")(aws_setup.prices)
aws_app.command("train")(aws_jobs.train)
aws_app.command("monitor")(aws_monitor.monitor)
aws_app.command("logs", help="Alias of monitor.")(aws_monitor.monitor)
aws_app.command("watch", help="Alias of monitor.")(aws_monitor.monitor)
aws_app.command("processes")(aws_monitor.processes)
aws_app.add_typer(ebs.ebs_app, name="ebs")
