"""Starting a training job on an instance (``runctl aws train``).

In order, and failing before any AWS call where it can: the instance id, the S3 options and the
script are checked locally; then the instance must be running with its SSM agent online; the code
bundle and runctl's runtime bundle are uploaded only when S3 lacks them (content-addressed);
``job.json`` and a ``pending`` ``status.json`` go to the job's S3 prefix; and one small SSM
command starts the instance-side runner detached. Following the job is in
:mod:`runctl.services.jobs.follow`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runctl.config import Settings
from runctl.errors import ConfigError, RunctlError, UsageError, WrongStateError
from runctl.job.record import JobRecord
from runctl.job.spec import (
    PENDING,
    CheckpointSettings,
    JobLocation,
    JobSpec,
    JobStatus,
    code_key,
    new_job_id,
    utc_now,
)
from runctl.paths import Project
from runctl.services.instances.lifecycle import GONE, validate_instance_id
from runctl.services.jobs.local import check_s3_option, resolve_script

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

    from runctl.aws.ec2 import Ec2, Instance
    from runctl.aws.ssm import Ssm

JOB_TAG = "runctl:job"
JOB_URI_TAG = "runctl:job-uri"
JSON = "application/json"
START_TIMEOUT_SECONDS = 300
Notify = Callable[[str], None]


@dataclass(frozen=True)
class TrainRequest:
    """What ``aws train`` was asked to do."""

    instance_id: str
    script: str
    args: Sequence[str] = ()
    sync_code: bool = True
    include_patterns: Sequence[str] = ()
    data_s3: str | None = None
    output_s3: str | None = None
    checkpoint_s3: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    project_name: str | None = None
    stop_on_finish: bool = False
    terminate_on_finish: bool = False
    force: bool = False
    launch_spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class AwsJobClients:
    """The AWS access a job needs, passed in so tests hand in what they like."""

    s3: S3Client
    ssm_client: SSMClient
    ec2: Ec2
    ssm: Ssm
    region: str


@dataclass
class StartedJob:
    """A job whose runner has started on an instance."""

    job_id: str
    instance_id: str
    location: JobLocation
    attempt: int
    script: str
    code_sha256: str | None
    code_uploaded: bool
    runtime_uploaded: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "instance_id": self.instance_id,
            "job_uri": self.location.uri,
            "attempt": self.attempt,
            "script": self.script,
            "code_sha256": self.code_sha256,
            "code_uploaded": self.code_uploaded,
            "runtime_uploaded": self.runtime_uploaded,
        }


@dataclass(frozen=True)
class PreparedScript:
    """The script checked locally: the project root and the path relative to it."""

    root: Path
    relative: str
    project: str


def prepare_script(request: TrainRequest, settings: Settings, cwd: Path) -> PreparedScript:
    """Every local check, before any AWS call: id, S3 options, env, script (exit 2 / 6)."""
    validate_instance_id(request.instance_id)
    check_s3_option("--data-s3", request.data_s3)
    check_s3_option("--output-s3", request.output_s3)
    check_s3_option("--checkpoint-s3", request.checkpoint_s3)
    if request.stop_on_finish and request.terminate_on_finish:
        raise UsageError("--stop-on-finish and --terminate-on-finish exclude each other")
    found = Project.find(cwd, request.project_name or settings.aws.project_name)
    root = found.root
    script = resolve_script(request.script, cwd, root)
    if not script.is_relative_to(root):
        raise UsageError(
            f"script {request.script} is outside the project at {root}",
            hint="run runctl from the project that holds the script",
        )
    relative = Path(os.path.relpath(script, root)).as_posix()
    return PreparedScript(root=root, relative=relative, project=found.key)


def require_bucket(settings: Settings) -> str:
    """The configured bucket, or a ConfigError saying how to set one (exit 3)."""
    if not settings.aws.s3_bucket:
        raise ConfigError(
            "no S3 bucket is configured for job files",
            hint="run `runctl aws setup`, or `runctl config set aws.s3_bucket NAME`",
        )
    return settings.aws.s3_bucket


def check_instance_ready(clients: AwsJobClients, instance_id: str) -> Instance:
    """The instance, when it is running with its SSM agent online; WrongStateError otherwise."""
    instance = clients.ec2.describe_instance(instance_id)
    if instance.state in ("stopped", "stopping"):
        raise WrongStateError(
            f"instance {instance_id} is {instance.state}",
            hint=f"start it with `runctl aws start {instance_id} --wait`",
            resource=instance_id,
        )
    if instance.state in GONE:
        raise WrongStateError(
            f"instance {instance_id} is {instance.state}",
            hint="create a new one with `runctl aws create TYPE --wait`",
            resource=instance_id,
        )
    if instance.state != "running":
        raise WrongStateError(
            f"instance {instance_id} is still {instance.state}",
            hint=f"wait for it with `runctl aws wait {instance_id}`",
            resource=instance_id,
        )
    agent = clients.ssm.describe_instance_information([instance_id]).get(instance_id)
    if agent is None or not agent.online:
        if instance.iam_instance_profile_arn is None:
            why = "it has no instance profile, so its SSM agent cannot register"
            hint = "create instances with --iam-instance-profile (see `runctl aws setup`)"
        else:
            state = agent.ping_status if agent else "not registered"
            why = f"its SSM agent is {state}"
            hint = (
                f"wait with `runctl aws wait {instance_id}`; if it stays offline, check that "
                "the instance profile has AmazonSSMManagedInstanceCore"
            )
        raise WrongStateError(
            f"cannot run commands on {instance_id}: {why}", hint=hint, resource=instance_id
        )
    return instance


def build_spec(
    request: TrainRequest,
    prepared: PreparedScript,
    settings: Settings,
    *,
    bucket: str,
    region: str,
    code_sha256: str | None,
    job_id: str | None = None,
) -> JobSpec:
    """job.json for a new job."""
    checkpoint = settings.checkpoint
    return JobSpec(
        job_id=job_id or new_job_id(prepared.project),
        project=prepared.project,
        script=prepared.relative,
        args=list(request.args),
        env=dict(request.env),
        bucket=bucket,
        region=region,
        code_key=code_key(prepared.project, code_sha256) if code_sha256 else None,
        code_sha256=code_sha256,
        data_s3=request.data_s3,
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
        launch_spec=dict(request.launch_spec),
    )


def latest_code_sha(s3: S3Client, bucket: str, project: str) -> str:
    """The newest code bundle already in S3 for ``project`` (for ``--no-sync-code``)."""
    from runctl.aws.s3 import S3Uri, iter_objects

    prefix = S3Uri(bucket, f"runctl/{project}/code/")
    bundles = [o for o in iter_objects(s3, prefix) if o.key.endswith(".tar.gz")]
    if not bundles:
        raise UsageError(
            f"--no-sync-code: no code has been uploaded for project {project} yet",
            hint="run once without --no-sync-code to ship the code",
            resource=str(prefix),
        )
    newest = max(bundles, key=lambda o: o.last_modified)
    return newest.key.rsplit("/", 1)[-1].removesuffix(".tar.gz")


def write_job_files(s3: S3Client, spec: JobSpec, instance_id: str, attempt: int) -> JobLocation:
    """Put job.json and a pending status.json (status last: it makes the job visible)."""
    location = spec.location
    assert location is not None  # a job on an instance always has a bucket
    record = JobRecord(location, s3=s3)
    record.write_spec(spec)
    now = utc_now()
    record.write_status(
        JobStatus(
            job_id=spec.job_id,
            state=PENDING,
            attempt=attempt,
            instance_ids=[instance_id],
            created=now,
            updated=now,
        )
    )
    return location


def send_start(
    clients: AwsJobClients,
    *,
    instance_id: str,
    location: JobLocation,
    attempt: int,
    force: bool,
    remote_root: str,
    runtime_url: str,
    runtime_sha: str,
) -> dict[str, object]:
    """Run the start command through SSM; the runner's JSON answer, or the error it reported."""
    from runctl.aws.ssm_commands import run_shell
    from runctl.services.jobs.commands import parse_command_json, start_job_command

    script = start_job_command(
        runtime_url,
        runtime_sha,
        location.uri,
        attempt,
        force,
        remote_root,
        region=clients.region,
    )
    result = run_shell(
        clients.ssm_client,
        instance_id,
        script,
        timeout_seconds=START_TIMEOUT_SECONDS,
        comment=f"runctl start {location.job_id}",
    )
    try:
        answer = parse_command_json(result.stdout)
    except ValueError:
        answer = {}
    if result.ok and answer.get("started"):
        return answer
    message = str(answer.get("message") or result.stderr.strip() or result.stdout.strip())
    if int(result.response_code) == 8 or answer.get("exit_code") == 8:
        raise WrongStateError(
            f"instance {instance_id} is busy: {message}",
            hint=f"follow it with `runctl aws monitor {instance_id} --follow`, stop it with "
            f"`runctl aws stop {instance_id}`, or pass --force to run beside it",
            resource=instance_id,
        )
    raise RunctlError(
        f"starting job {location.job_id} on {instance_id} failed ({result.status}, exit "
        f"{result.response_code}): {message[-500:] or 'no output'}",
        hint="re-run with --debug, or check python3 >= 3.9 on the instance",
        resource=instance_id,
    )


def start_job(
    connect: Callable[[], AwsJobClients],
    request: TrainRequest,
    settings: Settings,
    *,
    cwd: Path,
    cache_dir: Path,
    notify: Notify = lambda _: None,
    job_id: str | None = None,
    attempt: int = 0,
) -> StartedJob:
    """Start ``request`` as a new job (or attempt ``attempt`` of ``job_id``) on its instance.

    ``connect`` builds the AWS clients; it is called only after every local check passed.
    Raises UsageError/NotFoundError for bad input (before any AWS call), ConfigError without
    a bucket, WrongStateError when the instance is not ready or busy.
    """
    from runctl.services.bundles.code import build_code_bundle, upload_code_bundle
    from runctl.services.bundles.runtime import ensure_runtime_bundle

    prepared = prepare_script(request, settings, cwd)
    bucket = require_bucket(settings)
    clients = connect()
    check_instance_ready(clients, request.instance_id)

    code_uploaded = False
    if request.sync_code:
        bundle = build_code_bundle(
            prepared.root, cache_dir / "code", include_patterns=request.include_patterns
        )
        for warning in bundle.warnings:
            notify(f"warning: {warning}")
        code_uploaded = upload_code_bundle(clients.s3, bundle, bucket, prepared.project)
        code_sha = bundle.sha256
        notify(
            f"code: {len(bundle.files)} files, {bundle.size / 1e6:.2f} MB "
            + ("uploaded" if code_uploaded else "unchanged, not uploaded")
        )
    else:
        code_sha = latest_code_sha(clients.s3, bucket, prepared.project)
        notify(f"code: reusing bundle {code_sha[:12]}")
    runtime = ensure_runtime_bundle(clients.s3, bucket, cache_dir / "runtime")

    spec = build_spec(
        request,
        prepared,
        settings,
        bucket=bucket,
        region=clients.region,
        code_sha256=code_sha,
        job_id=job_id,
    )
    location = write_job_files(clients.s3, spec, request.instance_id, attempt)
    clients.ec2.create_tags(
        [request.instance_id], {JOB_TAG: spec.job_id, JOB_URI_TAG: location.uri}
    )
    send_start(
        clients,
        instance_id=request.instance_id,
        location=location,
        attempt=attempt,
        force=request.force,
        remote_root=settings.aws.remote_root,
        runtime_url=runtime.url,
        runtime_sha=runtime.sha256,
    )
    return StartedJob(
        job_id=spec.job_id,
        instance_id=request.instance_id,
        location=location,
        attempt=attempt,
        script=prepared.relative,
        code_sha256=code_sha,
        code_uploaded=code_uploaded,
        runtime_uploaded=runtime.uploaded,
    )
