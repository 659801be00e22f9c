"""``runctl aws start|stop|terminate|status|wait INSTANCE_ID``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from runctl.cli.aws_clients import aws_for, ec2_for, prices_for, ssm_for
from runctl.cli.output import Output
from runctl.cli.state import OutputOption, command_output, get_state
from runctl.cli.units import duration, money
from runctl.errors import UsageError

if TYPE_CHECKING:
    from runctl.services.instances.lifecycle import ActionResult, GracefulJobStop

InstanceId = Annotated[str, typer.Argument(help="Instance id (i-...).", show_default=False)]
Wait = Annotated[bool, typer.Option("--wait", help="Wait for the target state.")]
Force = Annotated[
    bool, typer.Option("--force", help="Skip the graceful job step (no final checkpoint).")
]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait.", min=0)]


def _check_id(instance_id: str) -> None:
    from runctl.services.instances.lifecycle import validate_instance_id

    validate_instance_id(instance_id)


def _graceful(ctx: typer.Context, out: Output) -> GracefulJobStop:
    """The graceful job step: stop the running job through SSM, committing its checkpoint."""
    from runctl.services.jobs.graceful import ssm_graceful_stop

    return ssm_graceful_stop(
        aws_for(ctx).ssm(),
        ssm_for(ctx),
        remote_root=get_state(ctx).config().settings.aws.remote_root,
        notify=out.info,
    )


def _render_action(out: Output, result: ActionResult) -> None:
    def text(o: Output) -> None:
        if result.job_stop is not None:
            o.info(result.job_stop.message)
        if result.changed:
            o.success(f"{result.instance_id}: {result.previous_state} -> {result.state}")
        else:
            o.success(f"{result.instance_id}: {result.message}; nothing to do")

    out.document(result, text)


def start(
    ctx: typer.Context,
    instance_id: InstanceId,
    wait: Wait = False,
    timeout: Timeout = 600.0,
    output: OutputOption = None,
) -> None:
    """Start a stopped instance (a no-op when it is running)."""
    from runctl.services.instances.lifecycle import start_instance

    out = command_output(ctx, output)
    _check_id(instance_id)
    ec2 = ec2_for(ctx)
    with out.spinner(f"starting {instance_id}"):
        result = start_instance(ec2, instance_id, wait=wait, timeout=timeout)
    _render_action(out, result)


def stop(
    ctx: typer.Context,
    instance_id: InstanceId,
    wait: Wait = False,
    force: Force = False,
    timeout: Timeout = 600.0,
    output: OutputOption = None,
) -> None:
    """Stop an instance, letting a running job checkpoint first (a no-op when stopped)."""
    from runctl.services.instances.lifecycle import stop_instance

    out = command_output(ctx, output)
    _check_id(instance_id)
    ec2 = ec2_for(ctx)
    with out.spinner(f"stopping {instance_id}"):
        result = stop_instance(
            ec2, instance_id, force=force, wait=wait, timeout=timeout, graceful=_graceful(ctx, out)
        )
    _render_action(out, result)


def terminate(
    ctx: typer.Context,
    instance_id: InstanceId,
    wait: Wait = False,
    force: Force = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    timeout: Timeout = 600.0,
    output: OutputOption = None,
) -> None:
    """Terminate an instance (asks first unless --yes), letting a running job checkpoint."""
    from runctl.services import tags as tagging
    from runctl.services.instances.lifecycle import terminate_instance

    out = command_output(ctx, output)
    _check_id(instance_id)
    ec2 = ec2_for(ctx)
    if not yes:
        instance = ec2.describe_instance(instance_id)
        if instance.state not in ("shutting-down", "terminated"):
            if not sys.stdin.isatty():
                raise UsageError(
                    f"refusing to terminate {instance_id} without confirmation: "
                    "stdin is not a terminal",
                    hint="pass --yes to terminate without a prompt",
                    resource=instance_id,
                )
            owner = "" if tagging.is_managed(instance.tags) else " (NOT created by runctl)"
            label = f"{instance_id} ({instance.name or '-'}, {instance.instance_type}, "
            label += f"{instance.state})"
            if not typer.confirm(f"Terminate {label}{owner}?", err=True):
                out.info("not terminated")
                raise typer.Exit(1)
    with out.spinner(f"terminating {instance_id}"):
        result = terminate_instance(
            ec2, instance_id, force=force, wait=wait, timeout=timeout, graceful=_graceful(ctx, out)
        )
    _render_action(out, result)


def status(ctx: typer.Context, instance_id: InstanceId, output: OutputOption = None) -> None:
    """State, type, lifecycle, zone, uptime, cost so far, SSM ping and current job."""
    from runctl.services.instances.lifecycle import instance_status

    out = command_output(ctx, output)
    _check_id(instance_id)
    ec2 = ec2_for(ctx)
    info = instance_status(ec2, ssm_for(ctx), prices_for(ec2), instance_id)

    def text(o: Output) -> None:
        o.fields(
            [
                ("instance_id", info.instance_id),
                ("name", info.name),
                ("state", info.state),
                ("type", info.instance_type),
                ("lifecycle", info.lifecycle),
                ("zone", info.availability_zone),
                ("uptime", duration(info.uptime_seconds)),
                ("price", money(info.hourly_price_usd, "/h") + f" ({info.price_source})"),
                ("cost so far", money(info.cost_so_far_usd, " since last start")),
                ("ssm", info.ssm_ping),
                ("job", info.current_job),
                ("private_ip", info.private_ip),
                ("public_ip", info.public_ip),
            ]
        )

    out.document(info, text)


def wait(
    ctx: typer.Context,
    instance_id: InstanceId,
    timeout: Timeout = 600.0,
    output: OutputOption = None,
) -> None:
    """Wait until the instance is running and its SSM agent is online."""
    from runctl.services.instances.lifecycle import wait_ready

    out = command_output(ctx, output)
    _check_id(instance_id)
    with out.spinner(f"waiting for {instance_id}") as update:
        ready = wait_ready(
            ec2_for(ctx), ssm_for(ctx), instance_id, timeout=timeout, on_progress=update
        )
    out.document(ready, lambda o: o.success(f"{instance_id} is running and SSM is online"))
