"""What ``aws train`` was asked to run, checked here before any AWS call, and the job.json it
becomes.

Every local check fails before AWS is touched (exit 2 for bad input, 6 for a missing script, 3
without a bucket): the instance id's shape, the S3 URIs, the finish action, the project name and
the script, which must be inside the project whose code is shipped. job.json records who started
the job (``user``) and the instance it runs on (``launch_spec``: type, market, zone, image), so
``jobs list`` can price it after the instance is gone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runctl.config import Settings
from runctl.errors import ConfigError, UsageError
from runctl.job.spec import CheckpointSettings, JobSpec, code_key, new_job_id
from runctl.paths import Project
from runctl.services.instances.lifecycle import validate_instance_id
from runctl.services.jobs.local import check_s3_option, resolve_script
from runctl.services.tags import current_user
from runctl.services.volumes.specs import check_volume_id

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance


@dataclass(frozen=True)
class TrainRequest:
    """What ``aws train`` was asked to do."""

    instance_id: str
    script: str
    args: Sequence[str] = ()
    sync_code: bool = True
    include_patterns: Sequence[str] = ()
    data_s3: str | None = None
    data_volume: str | None = None
    output_s3: str | None = None
    checkpoint_s3: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    project_name: str | None = None
    stop_on_finish: bool = False
    terminate_on_finish: bool = False
    force: bool = False
    max_restarts: int = 3
    launch_spec: Mapping[str, Any] = field(default_factory=dict)
    #: The job's id when the caller chose it (``workflow train`` names its jobs up front).
    job_id: str | None = None
    #: ``--auto-resume --detach``: the job's runners launch its successors themselves
    #: (runctl.remote.succession), so recovery needs no process on the laptop.
    recover_on_instance: bool = False
    #: Run the script in a container: ``docker_image``, else one built from the Dockerfile.
    docker: bool = False
    docker_image: str | None = None


@dataclass(frozen=True)
class PreparedScript:
    """The script checked locally: the project root, the path relative to it, the project key."""

    root: Path
    relative: str
    project: str


def prepare_script(
    request: TrainRequest, settings: Settings, cwd: Path, *, check_instance: bool = True
) -> PreparedScript:
    """Every local check, before any AWS call: id (unless ``check_instance`` is off, for a job
    whose instance does not exist yet), S3 options, project name, script (2 / 6)."""
    if check_instance:
        validate_instance_id(request.instance_id)
    check_s3_option("--data-s3", request.data_s3)
    check_s3_option("--output-s3", request.output_s3)
    check_s3_option("--checkpoint-s3", request.checkpoint_s3)
    if request.data_volume is not None:
        check_volume_id(request.data_volume, "--data-volume")
        if request.recover_on_instance:
            # The successor is launched by the instance, which cannot move a volume to its zone.
            raise UsageError(
                "--data-volume cannot be recovered with the laptop closed (--auto-resume "
                "--detach): the volume must follow the job to its new zone",
                hint="drop --detach (runctl then recovers from this terminal), or stage the "
                "data with --data-s3",
            )
    if request.stop_on_finish and request.terminate_on_finish:
        raise UsageError("--stop-on-finish and --terminate-on-finish exclude each other")
    project = Project.find(cwd, request.project_name or settings.aws.project_name)
    script = resolve_script(request.script, cwd, project.root)
    if not script.is_relative_to(project.root):
        raise UsageError(
            f"script {request.script} is outside the project at {project.root}",
            hint="run runctl from the project that holds the script",
        )
    relative = Path(os.path.relpath(script, project.root)).as_posix()
    return PreparedScript(root=project.root, relative=relative, project=project.key)


def require_bucket(settings: Settings) -> str:
    """The configured bucket, or a ConfigError saying how to set one (exit 3)."""
    if not settings.aws.s3_bucket:
        raise ConfigError(
            "no S3 bucket is configured for job files",
            hint="run `runctl aws setup`, or `runctl config set aws.s3_bucket NAME`",
        )
    return settings.aws.s3_bucket


def build_spec(
    request: TrainRequest,
    prepared: PreparedScript,
    settings: Settings,
    *,
    bucket: str,
    region: str,
    code_sha256: str | None,
    data_dir: str | None = None,
    instance: Instance | None = None,
    docker_image: str | None = None,
    docker_ecr_region: str | None = None,
) -> JobSpec:
    """job.json for a new job (on ``instance``, recorded in its launch spec; ``data_dir``: where
    its data volume is mounted; in a container when ``docker_image`` is given)."""
    checkpoint = settings.checkpoint
    launch_spec = {**request.launch_spec, **(instance_spec(instance) if instance else {})}
    return JobSpec(
        job_id=request.job_id or new_job_id(prepared.project),
        project=prepared.project,
        script=prepared.relative,
        args=list(request.args),
        env=dict(request.env),
        bucket=bucket,
        region=region,
        code_key=code_key(prepared.project, code_sha256) if code_sha256 else None,
        code_sha256=code_sha256,
        data_s3=request.data_s3,
        data_volume=request.data_volume,
        data_dir=data_dir,
        output_s3=request.output_s3,
        checkpoint_s3=request.checkpoint_s3,
        checkpoint=CheckpointSettings(
            dir=checkpoint.dir,
            sync_interval_seconds=float(checkpoint.sync_interval_seconds),
            keep_last_n=checkpoint.keep_last_n,
            grace_seconds=float(checkpoint.grace_seconds),
        ),
        stop_on_finish=request.stop_on_finish,
        terminate_on_finish=request.terminate_on_finish,
        max_restarts=request.max_restarts,
        launch_spec=launch_spec,
        user=current_user(),
        docker_image=docker_image,
        docker_ecr_region=docker_ecr_region,
    )


def instance_spec(instance: Instance) -> dict[str, Any]:
    """What job.json's ``launch_spec`` records of the instance an attempt runs on."""
    return {
        "instance_id": instance.instance_id,
        "instance_type": instance.instance_type,
        "lifecycle": instance.lifecycle,
        "availability_zone": instance.availability_zone,
        "image_id": instance.image_id,
    }
