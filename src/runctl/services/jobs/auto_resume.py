"""Running a job to its end: ``aws train --wait`` and, with ``--auto-resume``, through spot
interruptions and lost instances.

When an attempt ends ``interrupted`` (spot notice or shutdown, its checkpoint committed on the
instance) or its instance is lost, a replacement of the same spec is launched (other zones,
then on-demand when fallback is allowed, as ``aws create`` does), attempt N+1 of the same job
starts there and restores the committed checkpoint, and following goes on. A script that fails
is not retried: its exit code is the verdict. After ``max_restarts`` replacements, or when no
replacement can be launched, it gives up and terminates every instance it launched. A job found
lost and not resumed is recorded ``lost`` in its status.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from runctl.errors import RunctlError, WaitTimeoutError
from runctl.job.record import JobRecord
from runctl.job.spec import INTERRUPTED, LOST, seconds_between, utc_now
from runctl.services import tags
from runctl.services.jobs.follow import FollowResult
from runctl.services.jobs.outcome import AttemptRecord, JobOutcome
from runctl.services.jobs.start import StartedJob

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance
    from runctl.config import Settings
    from runctl.services.instances.launch_request import LaunchRequest
    from runctl.services.jobs.session import JobSession


def should_resume(result: FollowResult) -> bool:
    """An attempt is worth resuming when its instance went away, not when its script failed."""
    return result.lost or (result.status is not None and result.status.state == INTERRUPTED)


def replacement_request(
    instance: Instance,
    job_id: str,
    attempt: int,
    settings: Settings,
    user: str,
    *,
    preferred_zone: str | None = None,
) -> LaunchRequest:
    """A launch request for the same spec as ``instance``; idempotent per job attempt.
    ``preferred_zone`` (where the job's data volume is) is tried first."""
    from runctl.services.instances.launch_request import LaunchRequest

    profile = None
    if instance.iam_instance_profile_arn:
        profile = instance.iam_instance_profile_arn.rsplit("/", 1)[-1]
    extra = {
        key: value
        for key, value in instance.tags.items()
        if (key == tags.WORKFLOW or not key.startswith(("runctl:", "aws:"))) and key != "Name"
    }
    return LaunchRequest(
        instance_type=instance.instance_type,
        project=instance.tags.get(tags.PROJECT) or settings.aws.project_name or "runctl",
        user=user,
        spot=instance.lifecycle == "spot",
        spot_max_price=settings.aws.spot_max_price,
        fallback=True,
        ami_id=instance.image_id,
        ami_source="the interrupted instance",
        key_name=instance.key_name,
        security_group=settings.aws.security_group,
        subnet_id=settings.aws.subnet_id,
        iam_instance_profile=profile,
        tags=extra,
        name=f"{job_id}-a{attempt}"[:128],
        job_id=job_id,
        client_token=f"{job_id}-a{attempt}"[-64:],
        max_instances=settings.aws.max_instances,
        remote_root=settings.aws.remote_root,
        preferred_zone=preferred_zone,
    )


def attempt_record(started: StartedJob, instance: Instance, result: FollowResult) -> AttemptRecord:
    """The timeline entry of one followed attempt."""
    status = result.status
    return AttemptRecord(
        attempt=started.attempt,
        instance_id=started.instance_id,
        lifecycle=instance.lifecycle,
        state=result.state,
        exit_code=result.exit_code,
        started=status.started if status else None,
        ended=status.ended if status else None,
        notice=status.notice if status else None,
        checkpoint_id=status.checkpoint_id if status else None,
        notice_to_commit_seconds=status.notice_to_commit_seconds if status else None,
    )


def run_to_end(
    session: JobSession,
    first: StartedJob,
    *,
    on_log: Callable[[bytes], None],
    auto_resume: bool = False,
    max_restarts: int = 3,
    timeout: float | None = None,
) -> JobOutcome:
    """Follow ``first`` until the job ends for good; the outcome (never raises for the job's own
    failure). Raises WaitTimeoutError after ``timeout`` seconds of one attempt (the job goes on).
    """
    started, instance = first, session.ec2.describe_instance(first.instance_id)
    timeline: list[AttemptRecord] = []
    launched: list[str] = []
    gave_up: str | None = None
    while True:
        result = _follow(session, started, on_log, timeout)
        entry = attempt_record(started, instance, result)
        if timeline and timeline[-1].notice and entry.started:
            timeline[-1].recovery_seconds = seconds_between(timeline[-1].notice, entry.started)
        timeline.append(entry)
        if not (auto_resume and should_resume(result)):
            break
        restarts = len(timeline) - 1
        if restarts >= max_restarts:
            gave_up = (
                f"the job was interrupted {restarts + 1} times; --max-restarts {max_restarts} "
                "reached"
            )
            break
        try:
            started, instance = _replace(session, started, instance, entry, restarts + 1,
                                         max_restarts, launched)  # fmt: skip
        except RunctlError as err:
            gave_up = f"no replacement could be started: {err.message}"
            break
    if result.lost:
        _record_lost(session, started, result)
    status = result.status
    return JobOutcome(
        job_id=started.job_id,
        job_uri=started.location.uri,
        instance_id=started.instance_id,
        script=first.script,
        verdict=result.verdict or LOST,
        state=result.state,
        exit_code=result.exit_code,
        attempt=result.attempt,
        checkpoint_id=status.checkpoint_id if status else None,
        reason=status.reason if status else None,
        message=status.message if status else None,
        timeline=timeline,
        launched=launched,
        terminated=_terminate_launched(session, launched) if gave_up else [],
        gave_up=gave_up,
        status=status,
    )


def _follow(
    session: JobSession,
    started: StartedJob,
    on_log: Callable[[bytes], None],
    timeout: float | None,
) -> FollowResult:
    try:
        return session.follow(started, on_log=on_log, timeout=timeout)
    except WaitTimeoutError:
        minutes = (timeout or 0) / 60
        raise WaitTimeoutError(
            f"job {started.job_id} is still running after {minutes:g} minutes; it goes on",
            hint=f"follow it with `runctl aws monitor {started.instance_id} --follow`",
            resource=started.job_id,
        ) from None


def _replace(
    session: JobSession,
    started: StartedJob,
    instance: Instance,
    entry: AttemptRecord,
    restart: int,
    max_restarts: int,
    launched: list[str],
) -> tuple[StartedJob, Instance]:
    """Launch a replacement of ``instance`` and start the next attempt there."""
    request = replacement_request(
        instance, started.job_id, started.attempt + 1, session.settings, tags.current_user(),
        preferred_zone=_data_volume_zone(session, started),
    )  # fmt: skip
    checkpoint = f", checkpoint {entry.checkpoint_id}" if entry.checkpoint_id else ""
    session.report.info(
        f"attempt {started.attempt} {entry.state} on {started.instance_id}{checkpoint}; "
        f"launching a replacement {request.instance_type} (restart {restart}/{max_restarts})"
    )
    ready = session.launch_ready(request)
    assert ready.instance is not None
    for tried in ready.result.attempts:
        session.report.detail(tried.describe())
    launched.append(ready.instance.instance_id)
    following = session.resume(started.location, ready.instance.instance_id, force=True)
    session.report.info(f"attempt {following.attempt} started on {ready.instance.instance_id}")
    return following, ready.instance


def _data_volume_zone(session: JobSession, started: StartedJob) -> str | None:
    """The zone of the job's data volume (a replacement there needs no copy of it), if any."""
    spec = JobRecord(started.location, s3=session.s3).read_spec()
    if not spec.data_volume:
        return None
    return session.ebs.describe_volume(spec.data_volume).availability_zone


def _record_lost(session: JobSession, started: StartedJob, result: FollowResult) -> None:
    """Say in status.json that the job is lost, unless its runner wrote an end meanwhile."""
    record = JobRecord(started.location, s3=session.s3)
    current = record.read_status()
    if current is None or current.is_terminal or current.attempt != result.attempt:
        return
    now = utc_now()
    record.write_status(
        replace(
            current,
            state=LOST,
            reason=f"instance {started.instance_id} is gone",
            ended=now,
            updated=now,
        )
    )


def _terminate_launched(session: JobSession, launched: list[str]) -> list[str]:
    """Terminate the replacements this run launched that are still alive."""
    alive = [
        instance_id
        for instance_id in launched
        if session.ec2.describe_instance(instance_id).state not in ("shutting-down", "terminated")
    ]
    if alive:
        session.ec2.terminate_instances(alive)
    return alive
