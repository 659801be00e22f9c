"""``runctl checkpoint download SOURCE DIR [--checkpoint SEQ]``: a checkpoint's files, verified.

The files a committed checkpoint lists are restored into ``DIR`` under their names from the
manifest (the blobs themselves are content-addressed), each downloaded into a staging directory,
checked against the manifest's size and sha256 and only then renamed into place -- the same
restore a resumed job does (:func:`runctl.job.checkpoints.restore_checkpoint`). Files already in
``DIR`` with the right content are not downloaded again; other files there are left alone.

Without ``--checkpoint`` the newest intact checkpoint is taken: one that cannot be restored (a
blob missing or corrupt) is given up for the one before it, and the result says so. A checkpoint
asked for by ``--checkpoint`` is that one or an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runctl.errors import NotFoundError, UsageError
from runctl.job.checkpoints import restore_checkpoint
from runctl.job.manifests import Manifest
from runctl.services.checkpoints.admin import CheckpointTarget, find_manifest, no_checkpoint


@dataclass
class DownloadResult:
    """The checkpoint restored into ``destination``, and those given up on the way."""

    source: str
    destination: Path
    manifest: Manifest
    given_up: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        manifest = self.manifest
        return {
            "source": self.source,
            "destination": str(self.destination),
            "checkpoint_id": manifest.id,
            "sequence": manifest.sequence,
            "job_id": manifest.job_id or None,
            "attempt": manifest.attempt,
            "created": manifest.created,
            "file_count": len(manifest.files),
            "total_size": manifest.total_size,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in manifest.files],
            "verified": True,
            "fallbacks": [{"checkpoint_id": c, "reason": why} for c, why in self.given_up],
        }


def download_checkpoint(
    target: CheckpointTarget, destination: Path, checkpoint: str | None = None
) -> DownloadResult:
    """Restore a committed checkpoint's files into ``destination`` (created when missing).

    ``checkpoint`` is an id, a sequence number or a unique id prefix; without it, the newest
    intact checkpoint. Raises UsageError when ``destination`` is a file, NotFoundError (exit 6)
    when there is no such checkpoint or it (or, without ``checkpoint``, every one) cannot be
    restored intact.
    """
    if destination.exists() and not destination.is_dir():
        raise UsageError(
            f"{destination} is a file; checkpoint files go into a directory",
            hint="name a new or existing directory",
            resource=str(destination),
        )
    store = target.store
    if store is None:
        raise no_checkpoint(target)
    wanted = find_manifest(store, checkpoint).id if checkpoint is not None else None
    given_up: list[tuple[str, str]] = []
    manifest = restore_checkpoint(
        store,
        destination,
        start=wanted,
        fallback=wanted is None,
        on_skip=lambda checkpoint_id, why: given_up.append((checkpoint_id, why)),
    )
    if manifest is not None:
        return DownloadResult(target.location, destination, manifest, given_up)
    if not given_up:
        raise no_checkpoint(target)
    if wanted:
        message = f"checkpoint {wanted} cannot be restored intact: {given_up[0][1]}"
    else:
        reasons = "; ".join(f"{c}: {why}" for c, why in given_up)
        message = f"no checkpoint in {target.location} can be restored intact ({reasons})"
    raise NotFoundError(
        message,
        hint=f"choose another with --checkpoint (see `runctl checkpoint list {target.location}`)",
        resource=wanted or target.location,
    )
