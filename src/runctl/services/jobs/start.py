"""Starting a job's attempt on an instance: a new job (``aws train``) and the next attempt of an
existing one (:mod:`runctl.services.jobs.resume`) share one tail, :func:`start_attempt`.

In order: the instance must be running with its SSM agent online; then, at the same time, the
instance is asked whether a job's runner is alive there, which python3 it has and whether it has
docker (:func:`~runctl.services.jobs.commands.probe_command`) while the code and runtime bundles
go to S3 (content-addressed, uploaded only when absent). A container job's image is built and
pushed, or looked up, once the instance is known to take it, and the instance role's right to
pull it is checked (:mod:`runctl.services.jobs.job_image`). Only when the instance can take the
job are job.json and a ``pending`` status.json written; one SSM command starts the detached
runner; the instance is tagged with the job last, so a refused job never becomes an instance's
current job.
A start that the runner still refuses (another start won a race) leaves the job ``refused``.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from runctl.errors import RunctlError, WrongStateError
from runctl.job.record import JobRecord
from runctl.job.spec import FAILED, PENDING, REFUSED, JobLocation, JobSpec, JobStatus, utc_now
from runctl.services import tags
from runctl.services.instances.lifecycle import GONE
from runctl.services.jobs.request import (
    PreparedScript,
    TrainRequest,
    build_spec,
    prepare_script,
    require_bucket,
)

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance
    from runctl.services.bundles.runtime import RuntimeRef
    from runctl.services.jobs.session import JobSession

START_TIMEOUT_SECONDS = 300
PROBE_TIMEOUT_SECONDS = 60


@dataclass
class StartedJob:
    """A job attempt whose runner has started on an instance."""

    job_id: str
    instance_id: str
    location: JobLocation
    attempt: int
    script: str
    code_sha256: str | None
    code_uploaded: bool
    runtime_uploaded: bool
    docker_image: str | None = None

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
            "docker_image": self.docker_image,
        }


def start_job(session: JobSession, request: TrainRequest) -> StartedJob:
    """Start ``request`` as a new job on its instance.

    Raises UsageError/NotFoundError for bad input (before any AWS call), ConfigError without a
    bucket, WrongStateError when the instance is not ready, busy, has no usable python3 or (a
    container job) no docker, AuthError when its role may not reach the job's S3 URIs or image,
    ImageBuildError when the job's image does not build.
    """
    from runctl.services.jobs.job_image import (
        check_docker_options,
        check_image_access,
        resolve_job_image,
    )

    prepared = prepare_script(request, session.settings, session.cwd)
    check_docker_options(request, session.settings, prepared.root)
    bucket = require_bucket(session.settings)
    instance = check_instance_ready(session, request.instance_id)
    check_job_fits(session, instance, request)
    containerized = request.docker or request.docker_image is not None
    with ThreadPoolExecutor(max_workers=1) as pool:
        probe = pool.submit(probe_instance, session, request.instance_id)
        code_sha, code_uploaded = _ship_code(session, request, prepared, bucket)
        runtime = session.runtime_bundle(bucket)
        check_probe(probe, request.instance_id, force=request.force, docker=containerized)
    image = resolve_job_image(session, request, prepared, code_sha)
    if image is not None:
        check_image_access(session, instance, image)
    data_dir = _mount_data_volume(session, request, instance)
    spec = build_spec(
        request,
        prepared,
        session.settings,
        bucket=bucket,
        region=session.region,
        code_sha256=code_sha,
        data_dir=data_dir,
        instance=instance,
        docker_image=image.reference if image else None,
        docker_ecr_region=image.ecr_region if image else None,
    )
    assert spec.location is not None
    if request.recover_on_instance:
        from runctl.services.account.recovery_grant import require_recovery_grant
        from runctl.services.jobs.recovery_plan import recovery_plan

        for warning in require_recovery_grant(session.iam, instance, region=session.region):
            session.report.info(f"warning: {warning}")
        spec = replace(spec, recovery=recovery_plan(session, instance, spec, runtime))
    record = JobRecord(spec.location, s3=session.s3)
    record.write_spec(spec)
    now = utc_now()
    pending = JobStatus(spec.job_id, PENDING, 0, [request.instance_id], created=now, updated=now)
    started = start_attempt(
        session, record, spec, pending, request.instance_id, force=request.force, runtime=runtime
    )
    return replace(started, code_uploaded=code_uploaded)


def start_attempt(
    session: JobSession,
    record: JobRecord,
    spec: JobSpec,
    pending: JobStatus,
    instance_id: str,
    *,
    force: bool,
    runtime: RuntimeRef,
    previous: JobStatus | None = None,
) -> StartedJob:
    """The shared tail: write the ``pending`` status, start the runner, tag the instance.

    When the runner refuses, a new job is recorded ``refused`` and a resumed one gets its
    ``previous`` status back (it is not the job that was refused, only this attempt).
    """
    location = record.location
    assert location is not None
    record.write_status(pending)
    try:
        send_start(session, instance_id, location, pending.attempt, force=force, runtime=runtime)
    except RunctlError as err:
        state = REFUSED if isinstance(err, WrongStateError) else FAILED
        ended = replace(
            pending,
            state=state,
            reason="the runner did not start",
            message=err.message,
            ended=utc_now(),
            updated=utc_now(),
        )
        record.write_status(previous if previous is not None else ended)
        raise
    session.ec2.create_tags([instance_id], {tags.JOB: location.job_id, tags.JOB_URI: location.uri})
    return StartedJob(
        job_id=location.job_id,
        instance_id=instance_id,
        location=location,
        attempt=pending.attempt,
        script=spec.script,
        code_sha256=spec.code_sha256,
        code_uploaded=False,
        runtime_uploaded=runtime.uploaded,
        docker_image=spec.docker_image,
    )


def _mount_data_volume(
    session: JobSession, request: TrainRequest, instance: Instance
) -> str | None:
    """``--data-volume``: attach and mount it on the job's instance; its mount point."""
    if request.data_volume is None:
        return None
    from runctl.services.volumes.capacity import attach_for_job

    data = attach_for_job(session, request.data_volume, instance)
    session.report.info(
        f"data volume {data.volume_id} mounted at {data.mount.mount} on {instance.instance_id}"
    )
    return data.mount.mount


def _ship_code(
    session: JobSession, request: TrainRequest, prepared: PreparedScript, bucket: str
) -> tuple[str, bool]:
    """The code bundle's sha256 and whether it was uploaded now (``--no-sync-code``: the newest
    bundle already in S3 for the project)."""
    from runctl.services.bundles.code import (
        build_code_bundle,
        latest_code_sha,
        upload_code_bundle,
    )

    if not request.sync_code:
        sha = latest_code_sha(session.s3, bucket, prepared.project)
        session.report.detail(f"code: reusing bundle {sha[:12]}")
        return sha, False
    bundle = build_code_bundle(
        prepared.root, session.cache / "code", include_patterns=request.include_patterns
    )
    for warning in bundle.warnings:
        session.report.info(f"warning: {warning}")
    uploaded = upload_code_bundle(session.s3, bundle, bucket, prepared.project)
    session.report.detail(
        f"code: {len(bundle.files)} files, {bundle.size / 1e6:.2f} MB "
        + ("uploaded" if uploaded else "unchanged, not uploaded")
    )
    return bundle.sha256, uploaded


def check_instance_ready(session: JobSession, instance_id: str) -> Instance:
    """The instance, when it is running with its SSM agent online; WrongStateError otherwise."""
    instance = session.ec2.describe_instance(instance_id)
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
    agent = session.ssm.describe_instance_information([instance_id]).get(instance_id)
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


def check_job_fits(session: JobSession, instance: Instance, job: TrainRequest | JobSpec) -> None:
    """What the job asks of its instance, checked before anything is written: a finish action
    AWS can carry out (UsageError, exit 2) and the instance role's access to the job's own S3
    URIs (AuthError, exit 4, naming the ``aws setup --grant`` that fixes it)."""
    from runctl.services.account.access import check_instance_s3_access, s3_needs
    from runctl.services.jobs.finish_policy import check_finish_action

    check_finish_action(session.ec2, instance, stop_on_finish=job.stop_on_finish)
    needs = s3_needs(data_s3=job.data_s3, output_s3=job.output_s3, checkpoint_s3=job.checkpoint_s3)
    for warning in check_instance_s3_access(session.iam, instance, needs, region=session.region):
        session.report.info(f"warning: {warning}")


def probe_instance(session: JobSession, instance_id: str) -> dict[str, object]:
    """What :func:`~runctl.services.jobs.commands.probe_command` found on the instance."""
    from runctl.aws.ssm_commands import run_shell
    from runctl.services.jobs.commands import parse_command_json, probe_command

    result = run_shell(
        session.ssm_client,
        instance_id,
        probe_command(session.remote_root),
        timeout_seconds=PROBE_TIMEOUT_SECONDS,
        comment="runctl probe",
    )
    try:
        return parse_command_json(result.stdout)
    except ValueError:
        raise RunctlError(
            f"asking {instance_id} whether it can take a job failed ({result.status}): "
            f"{result.stderr.strip()[-300:] or 'no output'}",
            hint="re-run with --debug; check that the instance has bash and python3",
            resource=instance_id,
        ) from None


def check_probe(
    probe: Future[dict[str, object]], instance_id: str, *, force: bool, docker: bool = False
) -> None:
    """WrongStateError (exit 8) when the instance is busy (unless ``force``), has no python3
    new enough, or (``docker``: a container job) no docker CLI; nothing about the job has been
    written at this point."""
    from runctl.services.jobs.commands import MIN_PYTHON

    answer = probe.result()
    need = ".".join(str(part) for part in MIN_PYTHON)
    if not answer.get("python_ok"):
        found = answer.get("python") or "none"
        raise WrongStateError(
            f"instance {instance_id} cannot run runctl's job runner: it needs python3 >= {need}, "
            f"found {found}",
            hint="use an AMI with python3 >= 3.9 (Amazon Linux 2023, Ubuntu 22.04 or newer)",
            resource=instance_id,
        )
    if docker and not answer.get("docker"):
        raise WrongStateError(
            f"instance {instance_id} has no docker CLI, and --docker runs the script in a "
            "container",
            hint="use an AMI with Docker (the Deep Learning AMIs have it, with the NVIDIA "
            "container toolkit), or install it in the instance's user data",
            resource=instance_id,
        )
    busy = answer.get("busy_job")
    if busy and not force:
        raise WrongStateError(
            f"instance {instance_id} is busy: job {busy} is running there",
            hint=f"follow it with `runctl aws monitor {instance_id} --follow`, stop it with "
            f"`runctl aws stop {instance_id}`, or pass --force to run beside it",
            resource=instance_id,
        )


def send_start(
    session: JobSession,
    instance_id: str,
    location: JobLocation,
    attempt: int,
    *,
    force: bool,
    runtime: RuntimeRef,
) -> dict[str, object]:
    """Run the start command through SSM; the runner's JSON answer.

    Raises WrongStateError when the runner refused (busy, python3 too old), RunctlError when the
    command failed otherwise.
    """
    from runctl.aws.ssm_commands import run_shell
    from runctl.services.jobs.commands import parse_command_json, start_job_command

    script = start_job_command(
        runtime.url,
        runtime.sha256,
        location.uri,
        attempt,
        force,
        session.remote_root,
        region=session.region,
    )
    result = run_shell(
        session.ssm_client,
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
            f"instance {instance_id} refused job {location.job_id}: {message}",
            hint=f"follow what runs there with `runctl aws monitor {instance_id} --follow`, "
            f"stop it with `runctl aws stop {instance_id}`, or pass --force to run beside it",
            resource=instance_id,
        )
    raise RunctlError(
        f"starting job {location.job_id} on {instance_id} failed ({result.status}, exit "
        f"{result.response_code}): {message[-500:] or 'no output'}",
        hint="re-run with --debug, or check python3 >= 3.9 on the instance",
        resource=instance_id,
    )


def ensure_not_running(status: JobStatus | None, job_id: str, *, force: bool) -> None:
    """WrongStateError (exit 8) when ``status`` says the job still runs, unless ``force``."""
    if status is None or status.state not in ("running", "starting") or force:
        return
    where = ", ".join(status.instance_ids[-1:]) or "an instance"
    raise WrongStateError(
        f"job {job_id} is still {status.state} on {where}",
        hint="stop it first (`runctl aws stop ID`), or pass --force",
        resource=job_id,
    )
