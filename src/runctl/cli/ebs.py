"""``runctl aws ebs``: persistent data volumes (create, attach, detach, delete, snapshot, restore,
pre-warm). Each command parses, calls one service of :mod:`runctl.services.volumes`, and renders
with :mod:`runctl.cli.ebs_output`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runctl.cli import ebs_output as show
from runctl.cli.aws_clients import job_session
from runctl.cli.options import Yes
from runctl.cli.state import OutputOption, command_output, get_state
from runctl.services.tags import current_user, parse_tag_options

ebs_app = typer.Typer(
    help="Persistent EBS data volumes: create, attach and mount, snapshot, restore, pre-warm.",
    rich_markup_mode=None,
    no_args_is_help=True,
)

Volume = Annotated[str, typer.Argument(help="Volume id (vol-...).", show_default=False)]
Zone = Annotated[
    str | None, typer.Option("--availability-zone", help="Zone (default: see --instance-id).")
]
ForInstance = Annotated[
    str | None, typer.Option("--instance-id", help="Put it in this instance's zone.")
]
VolumeType = Annotated[str, typer.Option("--type", help="gp3, gp2, io2 or st1.")]
Iops = Annotated[int | None, typer.Option("--iops", help="Provisioned IOPS (gp3, io2).")]
Throughput = Annotated[int | None, typer.Option("--throughput", help="MiB/s (gp3).")]
Name = Annotated[str | None, typer.Option("--name", help="Name tag.")]
Tags = Annotated[list[str] | None, typer.Option("--tag", help="Extra tag K=V (repeatable).")]
AllUsers = Annotated[bool, typer.Option("--all-users", help="Every user's, not only yours.")]
Foreign = Annotated[bool, typer.Option("--all", help="Include what runctl did not create.")]
Project = Annotated[str | None, typer.Option("--project", help="Only this project.")]


def _project(ctx: typer.Context) -> str:
    """The project key new volumes are tagged with."""
    from runctl.paths import Project as Proj

    settings = get_state(ctx).config().settings
    return Proj.find(Path.cwd(), settings.aws.project_name).key


@ebs_app.command("create")
def create(
    ctx: typer.Context,
    size: Annotated[int | None, typer.Option("--size", help="Size in GiB.")] = None,
    volume_type: VolumeType = "gp3",
    iops: Iops = None,
    throughput: Throughput = None,
    availability_zone: Zone = None,
    instance_id: ForInstance = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="gp3 sizing: dataset or checkpoints.")
    ] = None,
    name: Name = None,
    snapshot_id: Annotated[
        str | None, typer.Option("--snapshot-id", help="Start from this snapshot.")
    ] = None,
    tag: Tags = None,
    output: OutputOption = None,
) -> None:
    """Create a volume, tagged at creation, in the zone of --instance-id or --availability-zone."""
    from runctl.services.volumes.manage import NewVolume, create_volume
    from runctl.services.volumes.specs import check_placement, volume_shape

    out = command_output(ctx, output)
    check_placement(availability_zone, instance_id, snapshot_id)
    shape = volume_shape(
        volume_type,
        size,
        iops=iops,
        throughput=throughput,
        preset=preset,
        from_snapshot=snapshot_id is not None,
    )
    request = NewVolume(
        shape,
        _project(ctx),
        current_user(),
        availability_zone,
        instance_id,
        snapshot_id,
        name,
        parse_tag_options(tag or []),
    )
    with out.spinner("creating the volume"):
        volume, why = create_volume(job_session(ctx, out), request)
    show.created(out, volume, why)


@ebs_app.command("list")
def list_(
    ctx: typer.Context,
    project: Project = None,
    all_users: AllUsers = False,
    include_all: Foreign = False,
    output: OutputOption = None,
) -> None:
    """Your runctl volumes: state, size, zone, where attached, cost per month."""
    from runctl.services.account.resources import Scope
    from runctl.services.volumes.manage import list_volumes

    out = command_output(ctx, output)
    scope = Scope.of(project, all_users=all_users or include_all, include_foreign=include_all)
    show.volumes(out, list_volumes(job_session(ctx, out).ebs, scope), scope)


@ebs_app.command("attach")
def attach(
    ctx: typer.Context,
    volume_id: Volume,
    instance_id: Annotated[str, typer.Argument(help="Instance id (i-...).", show_default=False)],
    device: Annotated[
        str | None, typer.Option("--device", help="Name for EC2 (default: first free /dev/sdf-p).")
    ] = None,
    mount: Annotated[str, typer.Option("--mount", help="Mount point.")] = "/mnt/data",
    no_mount: Annotated[bool, typer.Option("--no-mount", help="Attach only.")] = False,
    output: OutputOption = None,
) -> None:
    """Attach a volume and mount it over SSM (a blank volume gets a filesystem; fstab nofail)."""
    from runctl.services.instances.lifecycle import validate_instance_id
    from runctl.services.volumes.mounts import attach_volume
    from runctl.services.volumes.specs import check_device, check_mount, check_volume_id

    out = command_output(ctx, output)
    check_volume_id(volume_id)
    validate_instance_id(instance_id)
    where = None if no_mount else check_mount(mount)
    with out.spinner(f"attaching {volume_id} to {instance_id}"):
        result = attach_volume(
            job_session(ctx, out),
            volume_id,
            instance_id,
            device=check_device(device) if device else None,
            mount=where,
        )
    show.attached(out, result)


@ebs_app.command("detach")
def detach(
    ctx: typer.Context,
    volume_id: Volume,
    force: Annotated[
        bool, typer.Option("--force", help="Even while a job or process uses it.")
    ] = False,
    output: OutputOption = None,
) -> None:
    """Unmount (over SSM) and detach a volume; refuses while a job writes there unless --force."""
    from runctl.services.volumes.mounts import detach_volume
    from runctl.services.volumes.specs import check_volume_id

    out = command_output(ctx, output)
    check_volume_id(volume_id)
    with out.spinner(f"detaching {volume_id}"):
        result = detach_volume(job_session(ctx, out), volume_id, force=force)
    show.detached(out, result)


@ebs_app.command("delete")
def delete(
    ctx: typer.Context,
    volume_id: Volume,
    yes: Yes = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only check.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Also a volume runctl did not create.")
    ] = False,
    output: OutputOption = None,
) -> None:
    """Delete a volume (never an attached or protected one)."""
    from runctl.services.volumes.manage import delete_volume
    from runctl.services.volumes.specs import check_volume_id

    out = command_output(ctx, output)
    check_volume_id(volume_id)
    ebs = job_session(ctx, out).ebs
    volume = delete_volume(ebs, volume_id, force=force, dry_run=True)
    if not (dry_run or yes):
        out.confirm(f"delete {volume_id} ({volume.size_gb} GiB)?", refusing=f"delete {volume_id}")
    if not dry_run:
        volume = delete_volume(ebs, volume_id, force=force)
    show.deleted(out, volume, dry_run)


@ebs_app.command("snapshot")
def snapshot(
    ctx: typer.Context,
    volume_id: Volume,
    description: Annotated[str | None, typer.Option("--description")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Until the snapshot completes.")] = False,
    output: OutputOption = None,
) -> None:
    """Snapshot a volume (tagged at creation)."""
    from runctl.services.volumes.manage import snapshot_volume
    from runctl.services.volumes.specs import check_volume_id

    out = command_output(ctx, output)
    check_volume_id(volume_id)
    with out.spinner(f"snapshotting {volume_id}"):
        taken = snapshot_volume(
            job_session(ctx, out), volume_id, description=description, wait=wait
        )
    show.snapshot_taken(out, taken)


@ebs_app.command("snapshot-list")
def snapshot_list(
    ctx: typer.Context,
    volume: Annotated[str | None, typer.Option("--volume", help="Only of this volume.")] = None,
    project: Project = None,
    all_users: AllUsers = False,
    include_all: Foreign = False,
    output: OutputOption = None,
) -> None:
    """Your runctl snapshots, newest first."""
    from runctl.services.account.resources import Scope
    from runctl.services.volumes.manage import list_snapshots
    from runctl.services.volumes.specs import check_volume_id

    out = command_output(ctx, output)
    if volume is not None:
        check_volume_id(volume, "--volume")
    scope = Scope.of(project, all_users=all_users or include_all, include_foreign=include_all)
    show.snapshots(out, list_snapshots(job_session(ctx, out).ebs, scope, volume), scope)


@ebs_app.command("restore")
def restore(
    ctx: typer.Context,
    snapshot_id: Annotated[str, typer.Argument(help="Snapshot id (snap-...).", show_default=False)],
    availability_zone: Zone = None,
    instance_id: ForInstance = None,
    volume_type: VolumeType = "gp3",
    size: Annotated[
        int | None, typer.Option("--size", help="GiB (default: the snapshot's).")
    ] = None,
    iops: Iops = None,
    throughput: Throughput = None,
    name: Name = None,
    output: OutputOption = None,
) -> None:
    """Create a volume from a snapshot in a zone (that of --instance-id, or --availability-zone)."""
    from runctl.services.volumes.manage import NewVolume, create_volume
    from runctl.services.volumes.specs import check_placement, check_snapshot_id, volume_shape

    out = command_output(ctx, output)
    check_placement(availability_zone, instance_id, check_snapshot_id(snapshot_id))
    shape = volume_shape(volume_type, size, iops=iops, throughput=throughput, from_snapshot=True)
    request = NewVolume(
        shape, _project(ctx), current_user(), availability_zone, instance_id, snapshot_id, name
    )
    with out.spinner(f"restoring {snapshot_id}"):
        volume, why = create_volume(job_session(ctx, out), request)
    show.created(out, volume, why)


@ebs_app.command("pre-warm")
def pre_warm(
    ctx: typer.Context,
    volume_id: Volume,
    s3_uri: Annotated[str | None, typer.Argument(help="s3://bucket/prefix/ to copy in.")] = None,
    s3_source: Annotated[str | None, typer.Option("--s3-source", help="Same as S3_URI.")] = None,
    instance_id: Annotated[
        str | None, typer.Option("--instance-id", help="Fill it there (default: a temporary one).")
    ] = None,
    instance_type: Annotated[
        str, typer.Option("--instance-type", help="Type of the temporary instance.")
    ] = "m5.large",
    mount: Annotated[str, typer.Option("--mount", help="Mount point while filling.")] = "/mnt/data",
    snapshot: Annotated[bool, typer.Option("--snapshot", help="Snapshot it afterwards.")] = False,
    output: OutputOption = None,
) -> None:
    """Fill a volume from S3 on an instance in its zone; a temporary one is always terminated."""
    from runctl.services.volumes.prewarm import PrewarmRequest, prewarm
    from runctl.services.volumes.specs import check_prewarm

    out = command_output(ctx, output)
    source = check_prewarm(volume_id, s3_uri, s3_source, instance_id, mount)
    request = PrewarmRequest(
        volume_id,
        source,
        instance_id=instance_id,
        instance_type=instance_type,
        mount=mount,
        snapshot=snapshot,
    )
    with out.spinner(f"pre-warming {volume_id} from {source}"):
        result = prewarm(job_session(ctx, out), request)
    show.prewarmed(out, result)
