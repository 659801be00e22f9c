"""``aws ebs pre-warm``: fill a volume from S3 on an instance in its zone.

The instance is the one named (``--instance-id``), else the one the volume is attached to, else a
temporary one launched with :meth:`JobSession.launch_ready` in the volume's zone. A temporary
instance carries a client token of its own and is terminated in a ``finally`` — after success, a
failed copy, a refused start, and Ctrl-C alike, including a Ctrl-C while it is still booting:
every live instance launched with that token is terminated. On success the volume is unmounted and
detached from it first, so it is available at once.

The copy runs on the instance (:mod:`runctl.remote.fill`, the runner's own S3 staging, with the
instance role's credentials); the instance role must be able to read the source, which is asked of
IAM before anything is launched. The volume is tagged ``runctl:prewarmed`` with the time the copy
ended, so a later restore in another zone can reuse a snapshot taken after it
(:mod:`runctl.services.volumes.capacity`); ``snapshot`` takes one right away.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runctl.errors import AuthError, RunctlError, WrongStateError
from runctl.job.spec import utc_now
from runctl.services import tags as tagging
from runctl.services.volumes.manage import PREWARMED, snapshot_volume
from runctl.services.volumes.mounts import ensure_attached, mount_volume, unmount_volume
from runctl.services.volumes.specs import DEFAULT_MOUNT

if TYPE_CHECKING:
    from runctl.aws.ebs import Volume
    from runctl.aws.ec2 import Instance
    from runctl.services.jobs.session import JobSession

DEFAULT_INSTANCE_TYPE = "m5.large"
PREWARM_SOURCE = "runctl:prewarm-source"


@dataclass(frozen=True)
class PrewarmRequest:
    volume_id: str
    source: str
    instance_id: str | None = None
    instance_type: str = DEFAULT_INSTANCE_TYPE
    mount: str = DEFAULT_MOUNT
    snapshot: bool = False
    timeout: float = 6 * 3600


@dataclass
class PrewarmResult:
    """What a pre-warm copied, where, how fast, and what it launched and terminated."""

    volume_id: str
    source: str
    instance_id: str
    temporary: bool
    files: int
    bytes: int
    copy_seconds: float
    mb_per_s: float
    wall_seconds: float
    mount: str
    snapshot_id: str | None = None
    terminated: list[str] = field(default_factory=list)


def prewarm(session: JobSession, request: PrewarmRequest) -> PrewarmResult:
    """Fill the volume from ``request.source``; see the module docstring. Raises AuthError when
    the instance role may not read the source, WrongStateError for a volume held elsewhere, and
    what the launch, the attach and the copy raise (after cleaning up)."""
    started = time.monotonic()
    volume = session.ebs.describe_volume(request.volume_id)
    chosen = request.instance_id or volume.attached_to
    if chosen is not None:
        instance = session.ec2.describe_instance(chosen)
        if not request.instance_id:
            session.report.info(f"filling {volume.volume_id} on {chosen}, where it is attached")
        result = _fill_on(session, volume, instance, request, temporary=False)
    else:
        result = _fill_on_temporary(session, volume, request)
    result.wall_seconds = round(time.monotonic() - started, 3)
    return result


def _fill_on_temporary(
    session: JobSession, volume: Volume, request: PrewarmRequest
) -> PrewarmResult:
    from runctl.services.account.access import READ_ACTIONS, S3Need, check_profile_s3_access

    settings = session.settings.aws
    need = S3Need("S3_URI", request.source, READ_ACTIONS)
    for warning in check_profile_s3_access(
        session.iam, settings.iam_instance_profile, [need], region=session.region,
        holder=f"the pre-warm instance (profile {settings.iam_instance_profile})",
    ):  # fmt: skip
        session.report.info(f"warning: {warning}")
    launch = _launch_request(session, volume, request)
    assert launch.client_token is not None
    terminated: list[str] = []
    try:
        session.report.info(
            f"launching a temporary {request.instance_type} in {volume.availability_zone} "
            f"to fill {volume.volume_id}"
        )
        launched = session.launch_ready(launch, wait=True)
        assert launched.instance is not None
        result = _fill_on(session, volume, launched.instance, request, temporary=True)
    finally:
        terminated = _terminate_launched(session, launch.client_token)
    result.terminated = terminated
    return result


def _launch_request(session: JobSession, volume: Volume, request: PrewarmRequest) -> Any:
    from runctl.services.instances.launch_request import LaunchRequest

    settings = session.settings.aws
    project = volume.tags.get(tagging.PROJECT) or settings.project_name or "runctl"
    return LaunchRequest(
        instance_type=request.instance_type,
        project=project,
        user=tagging.current_user(),
        ami_id=settings.default_ami,
        ami_source="aws.default_ami",
        key_name=settings.key_name,
        security_group=settings.security_group,
        subnet_id=settings.subnet_id,
        iam_instance_profile=settings.iam_instance_profile,
        tags={"runctl:purpose": f"pre-warm {volume.volume_id}"},
        name=f"runctl-prewarm-{volume.volume_id}",
        # A token of its own: whatever happens, every instance launched with it is found again.
        client_token=f"prewarm-{volume.volume_id}-{secrets.token_hex(4)}",
        force=True,
        remote_root=settings.remote_root,
        availability_zone=volume.availability_zone,
    )


def _terminate_launched(session: JobSession, token: str) -> list[str]:
    """Terminate every live instance launched with ``token`` (the launch's own clean-up may
    have got there first, on a Ctrl-C while it waited); the ids of all it launched."""
    from runctl.aws.ec2 import LIVE_STATES

    found = session.ec2.describe_instances(filters={f"tag:{tagging.REQUEST}": [token]})
    live = [i.instance_id for i in found if i.state in LIVE_STATES]
    if live:
        session.ec2.terminate_instances(live)
    launched = [i.instance_id for i in found]
    if launched:
        session.report.info(f"terminated the temporary instance {', '.join(launched)}")
    return launched


def _fill_on(
    session: JobSession,
    volume: Volume,
    instance: Instance,
    request: PrewarmRequest,
    *,
    temporary: bool,
) -> PrewarmResult:
    """Attach and mount the volume on ``instance``, copy the source into it, and tag it; on a
    temporary instance also unmount and detach it again."""
    if volume.attached_to not in (None, instance.instance_id):
        raise WrongStateError(
            f"volume {volume.volume_id} is attached to {volume.attached_to}, not "
            f"{instance.instance_id}",
            hint=f"pre-warm it there (--instance-id {volume.attached_to}) or detach it first",
            resource=volume.volume_id,
        )
    attached, _ = ensure_attached(session, volume, instance)
    info = mount_volume(session, instance, attached, request.mount)
    copied = _copy(session, instance.instance_id, request, info.mount)
    if temporary:
        unmount_volume(session, instance, attached)
        session.ebs.detach_volume(attached.volume_id, instance.instance_id)
        session.ebs.wait_volume(attached.volume_id, "available")
    session.ec2.create_tags(
        [volume.volume_id], {PREWARMED: utc_now(), PREWARM_SOURCE: request.source[:256]}
    )
    snapshot_id = None
    if request.snapshot:
        snapshot = snapshot_volume(
            session, volume.volume_id, wait=True,
            description=f"runctl: {volume.volume_id} pre-warmed from {request.source}"[:255],
        )  # fmt: skip
        snapshot_id = snapshot.snapshot_id
    return PrewarmResult(
        volume_id=volume.volume_id,
        source=request.source,
        instance_id=instance.instance_id,
        temporary=temporary,
        files=int(copied.get("files", 0)),
        bytes=int(copied.get("bytes", 0)),
        copy_seconds=float(copied.get("seconds", 0.0)),
        mb_per_s=float(copied.get("mb_per_s", 0.0)),
        wall_seconds=0.0,
        mount=info.mount,
        snapshot_id=snapshot_id,
    )


def _copy(
    session: JobSession, instance_id: str, request: PrewarmRequest, mount: str
) -> dict[str, Any]:
    """Run the fill on the instance; its JSON report. Ctrl-C cancels the command there."""
    from runctl.aws.ssm_commands import cancel_command, send_shell_command, wait_invocation
    from runctl.job.spec import split_s3_uri
    from runctl.services.jobs.commands import parse_command_json
    from runctl.services.jobs.request import require_bucket
    from runctl.services.jobs.volume_commands import fill_command

    runtime = session.runtime_bundle(require_bucket(session.settings))
    script = fill_command(
        runtime.url, runtime.sha256, request.source, mount, region=session.region,
        remote_root_default=session.remote_root,
    )  # fmt: skip
    seconds = int(request.timeout)
    session.report.info(f"copying {request.source} into {mount} on {instance_id}")
    command_id = send_shell_command(
        session.ssm_client, instance_id, script, timeout_seconds=seconds,
        comment=f"runctl pre-warm {request.volume_id}",
    )  # fmt: skip
    try:
        result = wait_invocation(session.ssm_client, command_id, instance_id, timeout=seconds + 60)
    except KeyboardInterrupt:
        cancel_command(session.ssm_client, command_id, instance_id)
        raise
    try:
        answer = parse_command_json(result.stdout)
    except ValueError:
        answer = {}
    if result.ok and "error" not in answer:
        return answer
    message = str(answer.get("message") or result.stderr.strip()[-500:] or "no output")
    bucket = split_s3_uri(request.source)[0]
    if answer.get("exit_code") == 4:
        raise AuthError(
            f"pre-warm of {request.volume_id} could not read {request.source}: {message}",
            hint=f"grant the instance role read access to s3://{bucket}/ "
            f"(`runctl aws setup --grant {request.source} --read-only`)",
            resource=request.source,
        )
    raise RunctlError(
        f"pre-warm of {request.volume_id} from {request.source} on {instance_id} failed "
        f"({result.status}): {message}",
        hint="check the source with `runctl s3 list`; re-run with --debug",
        resource=request.volume_id,
    )
