"""``runctl aws create``: launch instances (spot, other zones, then on-demand)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runctl.cli.aws_clients import job_session
from runctl.cli.options import (
    AmiId,
    IamInstanceProfile,
    NoFallback,
    ProjectName,
    Spot,
    SpotMaxPrice,
    Tags,
)
from runctl.cli.output import Output, to_jsonable
from runctl.cli.state import OutputOption, command_output, get_state
from runctl.cli.units import money
from runctl.errors import UsageError
from runctl.services.tags import parse_tag_options

if TYPE_CHECKING:
    from runctl.services.instances.launch import LaunchResult
    from runctl.services.jobs.session import Launched
    from runctl.services.volumes.mounts import AttachResult

CREATE_FORMATS = ("text", "json", "instance-id")


def create(
    ctx: typer.Context,
    instance_type: Annotated[str, typer.Argument(help="EC2 instance type, e.g. t3.micro.")],
    count: Annotated[
        int, typer.Option("--count", "-n", help="How many instances of this spec.", min=1)
    ] = 1,
    allow_partial: Annotated[
        bool,
        typer.Option("--allow-partial", help="Keep what could be placed when not all N fit."),
    ] = False,
    spot: Spot = None,
    spot_max_price: SpotMaxPrice = None,
    no_fallback: NoFallback = False,
    ami_id: AmiId = None,
    key_name: Annotated[str | None, typer.Option("--key-name", help="EC2 key pair.")] = None,
    security_group: Annotated[
        str | None, typer.Option("--security-group", help="Security group id (sg-...).")
    ] = None,
    subnet_id: Annotated[str | None, typer.Option("--subnet-id", help="Subnet id.")] = None,
    root_volume_size: Annotated[
        int | None, typer.Option("--root-volume-size", help="Root volume GB (30; GPU 100).")
    ] = None,
    data_volume_size: Annotated[
        int | None, typer.Option("--data-volume-size", help="Extra gp3 volume at /mnt/data, GB.")
    ] = None,
    volume: Annotated[
        str | None,
        typer.Option("--volume", help="Attach this EBS volume (launches in its zone; /mnt/data)."),
    ] = None,
    project_name: ProjectName = None,
    iam_instance_profile: IamInstanceProfile = None,
    tag: Tags = None,
    name: Annotated[str | None, typer.Option("--name", help="Name tag.")] = None,
    client_token: Annotated[
        str | None,
        typer.Option("--client-token", help="Idempotency token: a rerun returns what it launched."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until running and SSM online.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds --wait may take.", min=0)
    ] = 600.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check permissions and plan; launch nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Launch beyond aws.max_instances.")
    ] = False,
    output: OutputOption = None,
) -> None:
    """Launch new instances (--count N), tagged at launch; prints what was tried and what was
    chosen. Only a repeated --client-token returns the instances it launched before."""
    from runctl.paths import Project
    from runctl.services.instances.launch_request import request_from_settings
    from runctl.services.volumes.capacity import launch_with_volume
    from runctl.services.volumes.specs import check_volume_option

    out = command_output(ctx, output, allowed=CREATE_FORMATS)
    if spot_max_price is not None and spot_max_price <= 0:
        raise UsageError("--spot-max-price must be above 0 (USD per hour)")
    settings = get_state(ctx).config(overrides={
        "aws.use_spot": spot, "aws.default_ami": ami_id, "aws.key_name": key_name,
        "aws.security_group": security_group, "aws.subnet_id": subnet_id,
        "aws.project_name": project_name, "aws.iam_instance_profile": iam_instance_profile,
    }).settings  # fmt: skip
    project = Project.find(Path.cwd(), settings.aws.project_name).key
    request = request_from_settings(
        settings.aws, instance_type, project=project,
        ami_from_flag=ami_id is not None, spot_max_price=spot_max_price, fallback=not no_fallback,
        root_volume_gb=root_volume_size, data_volume_gb=data_volume_size,
        tags=parse_tag_options(tag or []), name=name, client_token=client_token, force=force,
    )  # fmt: skip
    session = job_session(ctx, out, settings)
    if volume is not None:
        check_volume_option(volume, data_volume_size, count)
        with out.spinner(f"launching {instance_type} beside {volume}"):
            launched, attached = launch_with_volume(
                session, request, volume, wait=wait, dry_run=dry_run, timeout=timeout
            )
        _render(out, launched, attached)
        return
    what = f"{count} x {instance_type}" if count > 1 else instance_type
    with out.spinner(f"launching {what}") as update:
        launched = session.launch_ready(
            request, count=count, allow_partial=allow_partial, wait=wait, dry_run=dry_run,
            timeout=timeout, on_progress=update,
        )  # fmt: skip
    _render(out, launched)


def _report_attempts(out: Output, result: LaunchResult) -> None:
    failed = [a for a in result.attempts if a.outcome not in ("launched", "allowed", "reused")]
    for attempt in failed:
        leftovers = ", ".join(attempt.cleaned_up)
        cleaned = f"; terminated leftover {leftovers}" if leftovers else ""
        out.info(f"tried {attempt.describe()}{cleaned}")
    ids = ", ".join(i.instance_id for i in result.instances)
    if result.reused:
        out.info(
            f"client token {result.request_key} already launched {ids}: returning "
            f"{'them' if len(result.instances) > 1 else 'it'}; pass another --client-token "
            "(or none) to launch new instances"
        )
    elif result.dry_run:
        first = result.attempts[0] if result.attempts else None
        where = f" ({first.market} in {first.availability_zone})" if first else ""
        out.success(f"dry run: the launch would be allowed{where}; nothing was launched")
    elif len(result.instances) == 1:
        chosen = [a for a in result.attempts if a.outcome == "launched"][-1]
        out.success(f"launched {ids} ({chosen.describe()})")
    elif result.instances:
        out.success(f"launched {len(result.instances)} instances: {ids}")


def _render(out: Output, launched: Launched, attached: AttachResult | None = None) -> None:
    result = launched.result
    for warning in result.warnings:
        out.warn(warning)
    _report_attempts(out, result)
    if out.format == "instance-id":
        for instance in result.instances:
            out.line(instance.instance_id)
        return
    data = launched.to_dict()
    if attached is not None:
        where = attached.mount.mount if attached.mount else "not mounted (no --wait)"
        out.info(f"attached {attached.volume_id} as {attached.device}; {where}")
        data["volume"] = to_jsonable(attached)
    if len(result.instances) > 1:
        out.document(data, lambda o: _print_fleet(o, data["instances"]))
        return
    out.document(data, lambda o: _print_launched(o, data))


def _print_fleet(out: Output, instances: list[dict[str, Any]]) -> None:
    out.table(
        ["instance_id", "type", "lifecycle", "zone", "state", "price", "ssm"],
        [
            [
                i["instance_id"],
                i["instance_type"],
                i["lifecycle"],
                i["availability_zone"],
                i["state"],
                money(i["hourly_price_usd"], "/h"),
                "online" if i["ssm_online"] else "-",
            ]
            for i in instances
        ],
    )


def _print_launched(out: Output, data: dict[str, Any]) -> None:
    if data["instance_id"] is None:
        out.fields(
            [
                ("instance_type", data["instance_type"]),
                ("ami", data["ami_id"]),
                ("would launch", f"{data['count']} (dry run)"),
            ]
        )
        return
    hourly = money(data["hourly_price_usd"], "/h")
    out.fields(
        [
            ("instance_id", data["instance_id"]),
            ("type", data["instance_type"]),
            ("lifecycle", data["lifecycle"]),
            ("zone", data["availability_zone"]),
            ("ami", f"{data['ami_id']} {data['ami_name'] or ''}".strip()),
            ("state", data["state"]),
            ("private_ip", data["private_ip"]),
            ("public_ip", data["public_ip"]),
            ("price", f"{hourly} ({data['price_source']})"),
            ("ssm", "online" if data["ssm_online"] else "-"),
        ]
    )
