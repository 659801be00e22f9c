"""``runctl checkpoint resume``: start the next attempt of a job from its newest checkpoint.

The job is found from the target (:mod:`runctl.services.checkpoints.admin`): an S3 job prefix
names it; a store names it through its newest manifest's job id, whose ``job.json`` is the S3
job the store belongs to (``.../jobs/ID/checkpoints/``) or a ``runctl local`` job of the current
project (``.runctl/jobs/<job-id>/job.json``).

- On an instance (:func:`resume_on_instance`): :func:`runctl.services.jobs.resume.resume_job`,
  so the instance's runner restores the checkpoint as attempt N+1. Script arguments given here
  replace ``job.json``'s (later resumes use them too).
- Here (:func:`resume_here`): the job runner of ``runctl local`` in the foreground, with the
  job's id, script, arguments (or the given ones), environment and checkpoint store, the code of
  the current project, and attempt N+1. An S3 job's status and log go to S3 as on an instance,
  and its checkpoint directory is ``.runctl/jobs/<job-id>/checkpoints`` (emptied first: only
  the committed state counts).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from runctl.config import Settings
from runctl.errors import NotFoundError, UsageError, WrongStateError
from runctl.job.checkpoints import Manifest, latest_manifest
from runctl.job.layout import JobPaths
from runctl.job.spec import JobLayout, JobSpec, JobStatus, read_json
from runctl.polling import Timing
from runctl.remote.process import Echo
from runctl.services.bundles.code import find_project_root
from runctl.services.checkpoints.admin import CheckpointTarget, S3ClientFactory, no_checkpoint
from runctl.services.instances.lifecycle import validate_instance_id
from runctl.services.jobs.local import LocalJobResult, resolve_script, run_attempt_here
from runctl.services.jobs.start import AwsJobClients, StartedJob

LOCAL_JOBS = Path(".runctl") / "jobs"
ACTIVE_STATES = ("running", "starting")
STARTUP_POLL = Timing(interval=0.3, max_interval=2.0)


@dataclass
class ResumePlan:
    """The job to resume and the checkpoint its next attempt starts from."""

    spec: JobSpec
    status: JobStatus | None
    layout: JobLayout | None
    manifest: Manifest
    store_uri: str

    @property
    def next_attempt(self) -> int:
        if self.status is not None:
            return self.status.attempt + 1
        return self.manifest.attempt + 1


def plan_resume(target: CheckpointTarget, *, cwd: Path, s3_client: S3ClientFactory) -> ResumePlan:
    """The job behind ``target`` and its newest committed checkpoint.

    ``runctl local`` jobs are looked up in the project that holds ``cwd``. Raises NotFoundError
    (exit 6) when there is no committed checkpoint or the job's ``job.json`` cannot be found.
    """
    manifest = latest_manifest(target.store) if target.store is not None else None
    if manifest is None:
        raise no_checkpoint(target)
    spec, status, layout = target.spec, target.status, target.job
    if spec is None and layout is not None:
        from runctl.services.jobs.resume import read_job

        spec, status = read_job(s3_client(), layout)
    if spec is None:
        spec, status = _local_job(find_project_root(cwd), manifest)
    assert target.store is not None
    return ResumePlan(spec, status, layout, manifest, target.store.uri)


def _local_job(root: Path, manifest: Manifest) -> tuple[JobSpec, JobStatus | None]:
    job_dir = root / LOCAL_JOBS / manifest.job_id if manifest.job_id else None
    data = read_json(job_dir / "job.json") if job_dir is not None else None
    if job_dir is None or not isinstance(data, dict):
        raise NotFoundError(
            f"checkpoint {manifest.id} belongs to job {manifest.job_id or '(unknown)'}, whose "
            f"job.json is neither beside the store nor in {root / LOCAL_JOBS}",
            hint="pass the job's S3 prefix (s3://BUCKET/runctl/PROJECT/jobs/JOB_ID/), or run "
            "from the project whose `runctl local` wrote the checkpoint",
            resource=manifest.job_id or manifest.id,
        )
    status_data = read_json(job_dir / "status.json")
    try:
        spec = JobSpec.from_dict(data)
        status = JobStatus.from_dict(status_data) if isinstance(status_data, dict) else None
    except ValueError as exc:
        raise NotFoundError(f"{job_dir}: {exc}", resource=manifest.job_id) from None
    return spec, status


def check_not_running(plan: ResumePlan, force: bool) -> None:
    """WrongStateError (exit 8) when the job is still running somewhere, unless ``force``."""
    status = plan.status
    if status is None or status.state not in ACTIVE_STATES or force:
        return
    where = ", ".join(status.instance_ids[-1:]) or "somewhere"
    raise WrongStateError(
        f"job {plan.spec.job_id} is still {status.state} on {where}",
        hint="stop it first (`runctl aws stop ID`), or pass --force",
        resource=plan.spec.job_id,
    )


def resume_on_instance(
    clients: AwsJobClients,
    plan: ResumePlan,
    instance_id: str,
    settings: Settings,
    *,
    cache_dir: Path,
    args: Sequence[str] | None = None,
    force: bool = False,
) -> StartedJob:
    """Start attempt N+1 of an S3 job on ``instance_id``; its runner restores the checkpoint.

    Raises UsageError for a malformed instance id or a job that is not in S3, and what
    ``resume_job`` raises (the job is still running, the instance is not ready); job.json is
    put back if starting fails.
    """
    from runctl.aws.s3 import S3Uri, put_bytes
    from runctl.services.jobs.resume import resume_job
    from runctl.services.jobs.start import JSON

    validate_instance_id(instance_id)
    layout = plan.layout
    if layout is None:
        raise UsageError(
            f"job {plan.spec.job_id} is not in S3, so no instance can resume it",
            hint="pass the job's S3 prefix, or leave out --instance-id to resume it here",
            resource=plan.spec.job_id,
        )
    original = plan.spec
    where = S3Uri(layout.bucket, layout.job_key)
    if args is not None and list(args) != original.args:
        changed = replace(original, args=list(args)).to_json().encode()
        put_bytes(clients.s3, where, changed, content_type=JSON)
    try:
        return resume_job(clients, layout, instance_id, settings, cache_dir=cache_dir, force=force)
    except BaseException:
        if args is not None and list(args) != original.args:
            put_bytes(clients.s3, where, original.to_json().encode(), content_type=JSON)
        raise


def resume_here(
    plan: ResumePlan,
    *,
    cwd: Path,
    args: Sequence[str] | None = None,
    force: bool = False,
    s3_client: S3ClientFactory | None = None,
    echo: Echo | None = None,
    notify: Callable[[str], None] | None = None,
) -> LocalJobResult:
    """Run attempt N+1 of the job on this machine, in the foreground, with the code of the
    project that holds ``cwd``.

    Returns how it ended (the script's failure is in the result, not raised). Raises
    NotFoundError when the job's script is not in the project, WrongStateError when the job
    is still running (unless ``force``).
    """
    check_not_running(plan, force)
    root = find_project_root(cwd)
    resolve_script(plan.spec.script, root, root)
    spec = replace(
        plan.spec,
        args=list(args) if args is not None else plan.spec.args,
        # The store the checkpoint was found in (a local store path may have been relative).
        checkpoint_s3=plan.store_uri if plan.spec.checkpoint_s3 else None,
    )
    paths = JobPaths(root / LOCAL_JOBS / spec.job_id)
    checkpoint_dir = paths.checkpoint_dir(spec.checkpoint.dir)
    if paths.job_dir in checkpoint_dir.parents and checkpoint_dir.is_dir():
        shutil.rmtree(checkpoint_dir)  # ours: the restore alone decides what is in it
    return run_attempt_here(
        spec,
        attempt=plan.next_attempt,
        paths=paths,
        checkpoint_dir=checkpoint_dir,
        root=root,
        s3_client=s3_client,
        echo=echo,
        notify=notify,
    )
