"""``runctl checkpoint resume``: start the next attempt of a job from its newest checkpoint, or
from an older one (``--checkpoint``: job.json then pins it for that attempt only, see
:meth:`runctl.job.spec.JobSpec.checkpoint_to_restore`).

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
from typing import TYPE_CHECKING

from runctl.errors import NotFoundError, UsageError
from runctl.job.layout import JobPaths
from runctl.job.manifests import Manifest, latest_manifest
from runctl.job.record import JobRecord
from runctl.job.spec import JobLocation, JobSpec, JobStatus
from runctl.paths import Project
from runctl.remote.process import Echo
from runctl.services.checkpoints.admin import (
    CheckpointTarget,
    S3ClientFactory,
    find_manifest,
    no_checkpoint,
)
from runctl.services.instances.lifecycle import validate_instance_id
from runctl.services.jobs.local import LocalJobResult, resolve_script, run_attempt_here
from runctl.services.jobs.start import StartedJob, ensure_not_running

if TYPE_CHECKING:
    from runctl.services.jobs.session import JobSession


@dataclass
class ResumePlan:
    """The job to resume and the checkpoint its next attempt starts from."""

    spec: JobSpec
    status: JobStatus | None
    location: JobLocation | None
    manifest: Manifest
    store_uri: str
    pinned: bool = False  # the checkpoint was chosen (--checkpoint), not the newest

    @property
    def next_attempt(self) -> int:
        if self.status is not None:
            return self.status.attempt + 1
        return self.manifest.attempt + 1

    def spec_for_attempt(self, args: Sequence[str] | None) -> JobSpec:
        """job.json for the next attempt: the given arguments, and the chosen checkpoint."""
        spec = replace(self.spec, args=list(args) if args is not None else self.spec.args)
        if self.pinned:
            spec = replace(
                spec, restore_checkpoint=self.manifest.id, restore_attempt=self.next_attempt
            )
        return spec


def plan_resume(
    target: CheckpointTarget,
    *,
    cwd: Path,
    s3_client: S3ClientFactory,
    checkpoint: str | None = None,
) -> ResumePlan:
    """The job behind ``target`` and the checkpoint to resume from: ``checkpoint`` (an id, a
    sequence number or a unique id prefix) or the newest committed one.

    ``runctl local`` jobs are looked up in the project that holds ``cwd``. Raises NotFoundError
    (exit 6) when there is no (such) committed checkpoint or the job's ``job.json`` cannot be
    found.
    """
    if target.store is not None and checkpoint is not None:
        manifest: Manifest | None = find_manifest(target.store, checkpoint)
    else:
        manifest = latest_manifest(target.store) if target.store is not None else None
    if manifest is None:
        raise no_checkpoint(target)
    spec, status, location = target.spec, target.status, target.job
    if spec is None and location is not None:
        spec, status = JobRecord(location, s3=s3_client()).read()
    if spec is None:
        spec, status = _local_job(Project.find(cwd), manifest)
    assert target.store is not None
    return ResumePlan(
        spec, status, location, manifest, target.store.uri, pinned=checkpoint is not None
    )


def _local_job(project: Project, manifest: Manifest) -> tuple[JobSpec, JobStatus | None]:
    record = JobRecord(paths=JobPaths(project.jobs_dir / (manifest.job_id or "-")))
    try:
        return record.read()
    except NotFoundError:
        raise NotFoundError(
            f"checkpoint {manifest.id} belongs to job {manifest.job_id or '(unknown)'}, whose "
            f"job.json is neither beside the store nor in {project.jobs_dir}",
            hint="pass the job's S3 prefix (s3://BUCKET/runctl/PROJECT/jobs/JOB_ID/), or run "
            "from the project whose `runctl local` wrote the checkpoint",
            resource=manifest.job_id or manifest.id,
        ) from None
    except ValueError as exc:
        raise NotFoundError(f"{record.paths}: {exc}", resource=manifest.job_id) from None


def resume_on_instance(
    session: JobSession,
    plan: ResumePlan,
    instance_id: str,
    *,
    args: Sequence[str] | None = None,
    force: bool = False,
) -> StartedJob:
    """Start attempt N+1 of an S3 job on ``instance_id``; its runner restores the checkpoint.

    Raises UsageError for a malformed instance id or a job that is not in S3, and what
    :meth:`JobSession.resume` raises (the job is still running, the instance is not ready).
    """
    validate_instance_id(instance_id)
    if plan.location is None:
        raise UsageError(
            f"job {plan.spec.job_id} is not in S3, so no instance can resume it",
            hint="pass the job's S3 URI, or leave out --instance-id to resume it here",
            resource=plan.spec.job_id,
        )
    if not plan.pinned:
        return session.resume(plan.location, instance_id, args=args, force=force)
    record = JobRecord(plan.location, s3=session.s3)
    record.write_spec(plan.spec_for_attempt(None))  # the runner reads the pin from job.json
    try:
        return session.resume(plan.location, instance_id, args=args, force=force)
    except BaseException:
        record.write_spec(plan.spec)
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
    ensure_not_running(plan.status, plan.spec.job_id, force=force)
    project = Project.find(cwd)
    root = project.root
    resolve_script(plan.spec.script, root, root)
    spec = replace(
        plan.spec_for_attempt(args),
        # The store the checkpoint was found in (a local store path may have been relative).
        checkpoint_s3=plan.store_uri if plan.spec.checkpoint_s3 else None,
    )
    paths = JobPaths(project.jobs_dir / spec.job_id)
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
