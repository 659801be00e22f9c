"""Volumes and snapshots in ``resources list`` and ``resources cleanup``.

Listing covers the tag-owned volumes and snapshots of the scope (the caller's ``runctl:user``
unless ``--all-users``). Cleanup never touches a protected or foreign one and deletes:

- what runctl made for a job (a volume restored in another zone for an attempt, a snapshot taken
  for it: tagged ``runctl:job``) once that job has ended (its status.json says so, or it is gone);
- with ``include_volumes``, the scope's other volumes and snapshots too (datasets the user made
  with ``aws ebs create``/``snapshot``/``pre-warm``, which are kept by default).

A volume attached to an instance the same cleanup terminates is deleted once it is released; one
attached to any other instance is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runctl.errors import RunctlError
from runctl.services import tags as tagging
from runctl.services.volumes.manage import (
    SnapshotRow,
    VolumeRow,
    list_snapshots,
    list_volumes,
)

if TYPE_CHECKING:
    from runctl.aws.ebs import Ebs
    from runctl.services.account.resources import Scope

#: A job's state by its job URI (None when its record cannot be read).
JobState = Callable[[str], str | None]


@dataclass
class StorageCleanup:
    """What cleanup deleted (or, with ``dry_run``, would delete) and what it kept, and why."""

    dry_run: bool
    volumes: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def list_storage(ebs: Ebs, scope: Scope) -> tuple[list[VolumeRow], list[SnapshotRow]]:
    """The scope's volumes and snapshots in ``ebs``'s region."""
    return list_volumes(ebs, scope), list_snapshots(ebs, scope)


def job_state_reader(s3: object) -> JobState:
    """Reads a job's state from its status.json through ``s3`` (None when unreadable)."""
    from runctl.job.record import JobRecord
    from runctl.job.spec import JobLocation

    def state(uri: str) -> str | None:
        try:
            status = JobRecord(JobLocation.from_uri(uri), s3=s3).read_status()
        except (RunctlError, ValueError):
            return None
        return status.state if status is not None else None

    return state


def _why_kept(
    tags_: Mapping[str, str], job: str | None, job_state: JobState, include_volumes: bool
) -> str | None:
    """Why a volume or snapshot is kept, or None when cleanup deletes it."""
    from runctl.job.spec import TERMINAL_STATES

    if not tagging.is_managed(tags_):
        return "not runctl-managed"
    if tagging.is_protected(tags_):
        return "tagged runctl:protected=true"
    if job is None:
        return None if include_volumes else "a data volume you made: pass --include-volumes"
    uri = tags_.get(tagging.JOB_URI)
    state = job_state(uri) if uri else None
    if state is not None and state not in TERMINAL_STATES:
        return f"its job {job} is still {state}"
    return None


def cleanup_storage(
    ebs: Ebs,
    scope: Scope,
    *,
    job_state: JobState,
    include_volumes: bool = False,
    terminating: Collection[str] = (),
    dry_run: bool = False,
    timeout: float = 300,
) -> StorageCleanup:
    """Delete the scope's volumes and snapshots that cleanup may delete (see the module
    docstring); volumes first (a snapshot can outlive its volume), then snapshots."""
    from dataclasses import replace

    managed = replace(scope, include_foreign=False)
    volumes, snapshots = list_storage(ebs, managed)
    result = StorageCleanup(dry_run)
    for row in volumes:
        why = _why_kept(row.tags, row.job, job_state, include_volumes)
        if why is None and row.attached_to and row.attached_to not in terminating:
            why = f"attached to {row.attached_to}"
        if why is not None:
            result.skipped[row.volume_id] = why
            continue
        result.volumes.append(row.volume_id)
        if not dry_run:
            if row.attached_to:
                ebs.wait_volume(row.volume_id, "available", timeout=timeout)
            ebs.delete_volume(row.volume_id)
    for snap in snapshots:
        why = _why_kept(snap.tags, snap.job, job_state, include_volumes)
        if why is not None:
            result.skipped[snap.snapshot_id] = why
            continue
        result.snapshots.append(snap.snapshot_id)
        if not dry_run:
            ebs.delete_snapshot(snap.snapshot_id)
    return result
