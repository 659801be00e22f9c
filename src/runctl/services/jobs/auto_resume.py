"""``aws train --wait --auto-resume``: keep a job going through spot interruptions.

When an attempt ends ``interrupted`` (spot notice or shutdown, its checkpoint committed on the
instance) or its instance is lost, a replacement of the same spec is launched (other zones,
then on-demand when fallback is allowed, as ``aws create`` does), attempt N+1 of the same job
starts there and restores the committed checkpoint, and following goes on. A script that fails
is not retried: its exit code is the verdict. After ``max_restarts`` replacements, or when no
replacement can be launched, it gives up and terminates every instance it launched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runctl.config import Settings
from runctl.errors import RunctlError
from runctl.job.spec import INTERRUPTED, JobStatus, seconds_between
from runctl.services.jobs.follow import FollowResult
from runctl.services.jobs.start import AwsJobClients, StartedJob

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance
    from runctl.services.instances.launch import LaunchRequest

Notify = Callable[[str], None]
FollowAttempt = Callable[[StartedJob], FollowResult]
Launch = Callable[["LaunchRequest"], "Instance"]


@dataclass
class AttemptRecord:
    """One attempt of the job in the timeline printed at the end."""

    attempt: int
    instance_id: str
    lifecycle: str
    state: str
    exit_code: int | None = None
    started: str | None = None
    ended: str | None = None
    notice: str | None = None
    checkpoint_id: str | None = None
    notice_to_commit_seconds: float | None = None
    recovery_seconds: float | None = None


@dataclass
class ResumeOutcome:
    """How the job ended: the last follow result, every attempt, and why it stopped trying."""

    result: FollowResult
    last: StartedJob
    timeline: list[AttemptRecord] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    gave_up: str | None = None


def should_resume(result: FollowResult) -> bool:
    """An attempt is worth resuming when its instance went away, not when its script failed."""
    return result.lost or (result.status is not None and result.status.state == INTERRUPTED)


def replacement_request(
    instance: Instance, job_id: str, attempt: int, settings: Settings, user: str
) -> LaunchRequest:
    """A launch request for the same spec as ``instance``; idempotent per job attempt."""
    from runctl.services.instances.launch import LaunchRequest

    profile = None
    if instance.iam_instance_profile_arn:
        profile = instance.iam_instance_profile_arn.rsplit("/", 1)[-1]
    extra = {
        key: value
        for key, value in instance.tags.items()
        if not key.startswith(("runctl:", "aws:")) and key != "Name"
    }
    return LaunchRequest(
        instance_type=instance.instance_type,
        project=instance.tags.get("runctl:project") or settings.aws.project_name or "runctl",
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
    )


def record(started: StartedJob, instance: Instance, result: FollowResult) -> AttemptRecord:
    status: JobStatus | None = result.status
    state = "lost" if result.lost else (status.state if status else "unknown")
    return AttemptRecord(
        attempt=started.attempt,
        instance_id=started.instance_id,
        lifecycle=instance.lifecycle,
        state=state,
        exit_code=status.exit_code if status else None,
        started=status.started if status else None,
        ended=status.ended if status else None,
        notice=status.notice if status else None,
        checkpoint_id=status.checkpoint_id if status else None,
        notice_to_commit_seconds=status.notice_to_commit_seconds if status else None,
    )


def run_with_auto_resume(
    clients: AwsJobClients,
    first: StartedJob,
    first_instance: Instance,
    settings: Settings,
    *,
    max_restarts: int,
    follow_attempt: FollowAttempt,
    launch: Launch,
    resume: Callable[[str], StartedJob],
    user: str,
    notify: Notify = lambda _: None,
) -> ResumeOutcome:
    """Follow ``first`` and resume it on replacements until it ends for good.

    ``launch`` launches a request and waits until the instance is ready; ``resume(instance_id)``
    starts the next attempt there. Returns the outcome; terminates what it launched on give-up.
    """
    started, instance = first, first_instance
    outcome: ResumeOutcome | None = None
    timeline: list[AttemptRecord] = []
    launched: list[str] = []
    restarts = 0
    while True:
        result = follow_attempt(started)
        entry = record(started, instance, result)
        if timeline and timeline[-1].notice and entry.started:
            timeline[-1].recovery_seconds = seconds_between(timeline[-1].notice, entry.started)
        timeline.append(entry)
        outcome = ResumeOutcome(result, started, timeline, launched)
        if not should_resume(result):
            return outcome
        if restarts >= max_restarts:
            outcome.gave_up = (
                f"the job was interrupted {restarts + 1} times; --max-restarts {max_restarts} "
                "reached"
            )
            break
        restarts += 1
        request = replacement_request(instance, started.job_id, started.attempt + 1, settings, user)
        notify(
            f"attempt {started.attempt} {entry.state} on {started.instance_id}"
            + (f", checkpoint {entry.checkpoint_id}" if entry.checkpoint_id else "")
            + f"; launching a replacement {request.instance_type} (restart {restarts}/"
            f"{max_restarts})"
        )
        try:
            instance = launch(request)
            launched.append(instance.instance_id)
            started = resume(instance.instance_id)
        except RunctlError as err:
            outcome.gave_up = f"no replacement could be started: {err.message}"
            break
        notify(f"attempt {started.attempt} started on {instance.instance_id}")
    outcome.terminated = terminate_launched(clients, launched)
    return outcome


def terminate_launched(clients: AwsJobClients, launched: list[str]) -> list[str]:
    """Terminate the replacements this run launched that are still alive."""
    alive = [
        instance_id
        for instance_id in launched
        if clients.ec2.describe_instance(instance_id).state not in ("shutting-down", "terminated")
    ]
    if alive:
        clients.ec2.terminate_instances(alive)
    return alive


def timeline_rows(timeline: list[AttemptRecord]) -> list[dict[str, Any]]:
    """The timeline as JSON-ready dicts."""
    return [dict(vars(entry)) for entry in timeline]
