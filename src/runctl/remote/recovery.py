"""Which committed checkpoint each run of an attempt starts from, and falling back to older ones.

An attempt restores the newest intact checkpoint (or the one ``checkpoint resume --checkpoint``
pinned for it); a checkpoint that cannot be restored -- manifest unreadable, blob missing or
corrupt -- is given up for the one before it (a ``restore`` fallback). When the script then fails
before committing anything new, the checkpoint it started from is suspect (a torn file it cannot
load, say): the supervisor asks :meth:`CheckpointRecovery.fall_back`, which gives it up too (a
``run`` fallback) and restores the previous committed checkpoint for another run, and so on down
the list, at most ``max_restarts`` run fallbacks in all over the job's attempts. Every fallback
is recorded in status.json (:class:`runctl.job.spec.CheckpointFallback`) and said in the log.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from runctl.job.checkpoints import find_restorable, restore_checkpoint
from runctl.job.manifests import Manifest
from runctl.job.spec import RESTORE_FAILED, RUN_FAILED, CheckpointFallback
from runctl.job.stores import CheckpointStore

Say = Callable[[str], None]


class CheckpointRecovery:
    """Restores an attempt's checkpoint into ``directory`` and takes the fallbacks.

    ``owned``: the directory is runctl's (under the job's directory), so it is emptied before a
    restore and only the committed state is in it; a user's directory (``runctl local``) is
    restored over. ``used`` is how many run fallbacks earlier attempts took.
    """

    def __init__(
        self,
        store: Callable[[], CheckpointStore | None],
        directory: Path,
        *,
        attempt: int,
        max_restarts: int,
        owned: bool,
        used: int,
        say: Say,
        record: Callable[[CheckpointFallback], None],
    ) -> None:
        self._store = store
        self.directory = directory
        self.attempt = attempt
        self.max_restarts = max_restarts
        self.owned = owned
        self.used = used
        self.say = say
        self.record = record
        self.restored: Manifest | None = None

    def restore(self, start: str | None = None, below: int | None = None) -> Manifest | None:
        """Restore the newest intact checkpoint (from ``start`` down, under sequence ``below``);
        its manifest, or None when there is none (or no store)."""
        store = self._store()
        if store is None:
            return None
        if self.owned and self.directory.is_dir():
            _empty_dir(self.directory)
        where = f"checkpoint {start}" if start else "the newest committed checkpoint"
        self.say(f"restoring {where} from {store.uri}")
        self.restored = restore_checkpoint(
            store,
            self.directory,
            log=self.say,
            start=start,
            below=below,
            on_skip=lambda checkpoint_id, why: self.record(
                CheckpointFallback(self.attempt, checkpoint_id, RESTORE_FAILED, why)
            ),
        )
        if self.restored is not None:
            self.say(f"restored checkpoint {self.restored.id} ({len(self.restored.files)} files)")
        return self.restored

    def fall_back(self, exit_code: int) -> Manifest | None:
        """The script failed with ``exit_code`` before committing anything new: give up the
        checkpoint it started from and restore the previous one; None when there is no run
        fallback left or no older checkpoint (nothing is changed then)."""
        failed, store = self.restored, self._store()
        if failed is None or store is None:
            return None
        if self.used >= self.max_restarts:
            self.say(
                f"no fallback from checkpoint {failed.id}: max-restarts {self.max_restarts} "
                "fallbacks already taken"
            )
            return None
        if not find_restorable(store, below=failed.sequence):
            self.say(f"no committed checkpoint older than {failed.id} to fall back to")
            return None
        self.used += 1
        reason = f"the script exited with code {exit_code} before committing a new checkpoint"
        self.record(CheckpointFallback(self.attempt, failed.id, RUN_FAILED, reason))
        self.say(
            f"checkpoint {failed.id}: {reason}; retrying from the previous committed checkpoint "
            f"(fallback {self.used} of at most {self.max_restarts})"
        )
        return self.restore(below=failed.sequence)


def _empty_dir(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink()
