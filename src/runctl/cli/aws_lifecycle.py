"""``runctl aws start|stop|terminate|status|wait INSTANCE_ID``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from runctl.cli.aws_clients import ec2_for, job_session, ssm_for
from runctl.cli.options import Yes
from runctl.cli.output import Output
from runctl.cli.state import InstanceId, OutputOption, command_output
from runctl.cli.units import duration, money

if TYPE_CHECKING:
    from runctl.services.instances.lifecycle import ActionResult, InstanceStatus

Wait = Annotated[bool, typer.Option("--wait", help="Wait for the target state.")]
Force = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Skip the graceful job step (no final checkpoint); also needed for instances "
        "runctl did not create.",
    ),
]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait.", min=0)]


def _check_id(instance_id: str) -> None:
    from runctl.services.instances.lifecycle import validate_instance_id

    validate_instance_id(instance_id)


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
    with out.spinner(f"starting {instance_id}"):
        result = start_instance(ec2_for(ctx), instance_id, wait=wait, timeout=timeout)
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
    out = command_output(ctx, output)
    _check_id(instance_id)
    with out.spinner(f"stopping {instance_id}"):
        result = job_session(ctx, out).stop(instance_id, force=force, wait=wait, timeout=timeout)
    _render_action(out, result)


def terminate(
    ctx: typer.Context,
    instance_id: InstanceId,
    wait: Wait = False,
    force: Force = False,
    yes: Yes = False,
    timeout: Timeout = 600.0,
    output: OutputOption = None,
) -> None:
    """Terminate an instance (asks first unless --yes), letting a running job checkpoint."""
    from runctl.services.instances.lifecycle import GONE, check_may_act, describe_owner

    out = command_output(ctx, output)
    _check_id(instance_id)
    session = job_session(ctx, out)
    if not yes:
        instance = session.ec2.describe_instance(instance_id)
        if instance.state not in GONE:
            check_may_act(instance, "terminate", force=force)
            out.confirm(
                f"Terminate {describe_owner(instance)}?", refusing=f"terminate {instance_id}"
            )
    with out.spinner(f"terminating {instance_id}"):
        result = session.terminate(instance_id, force=force, wait=wait, timeout=timeout)
    _render_action(out, result)


def status(ctx: typer.Context, instance_id: InstanceId, output: OutputOption = None) -> None:
    """State, type, lifecycle, zone, uptime, cost so far, SSM ping and current job."""
    from runctl.services.instances.lifecycle import instance_status

    out = command_output(ctx, output)
    _check_id(instance_id)
    session = job_session(ctx, out)
    info = instance_status(
        session.ec2, lambda: session.ssm, session.prices, instance_id,
        job_status=session.current_job_status,
    )  # fmt: skip
    out.document(info, lambda o: _print_status(o, info))


def _print_status(out: Output, info: InstanceStatus) -> None:
    out.fields(
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
            ("job state", info.job_state),
            ("python", _python(info)),
            ("private_ip", info.private_ip),
            ("public_ip", info.public_ip),
        ]
    )


def _python(info: InstanceStatus) -> str | None:
    """``/opt/pytorch/bin/python (3.11.9, framework), venv /opt/runctl/venvs/...``."""
    if info.job_python is None:
        return None
    detail = ", ".join(p for p in (info.job_python_version, info.job_python_source) if p)
    text = f"{info.job_python} ({detail})" if detail else info.job_python
    return f"{text}, venv {info.job_venv}" if info.job_venv else text


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
