"""What the supervisor keeps moving while a script runs: checkpoint commits and the job log.

:class:`CheckpointSync` commits ``RUNCTL_CHECKPOINT_DIR`` to the job's store one commit at a time
(a periodic commit and the final one never overlap), remembers how long the last one took (the
upload allowance of a spot notice's grace period) and prunes old checkpoints after a new one.
Each commit leaves alone the files the script's processes write (``busy``) and ends its uploads
at the ``deadline`` once one is set (a spot notice). Its first commit, and the one after a failed
commit, first aborts the multipart uploads an earlier commit of the job left unfinished (a
runner killed mid-upload), so their parts are not stored and billed forever.
:class:`LogShipper` re-puts the whole job log to S3 every few seconds when it grew; a big log is
shipped less often, so this stays cheap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from runctl.job.checkpoints import Busy, CommitResult, commit_checkpoint, prune_checkpoints
from runctl.job.manifests import BLOBS
from runctl.job.snapshot import HashCache, scan_checkpoint_dir
from runctl.job.stores import CheckpointStore

MIN_UPLOAD_ALLOWANCE = 10.0
ASSUMED_UPLOAD_BYTES_PER_SECOND = 50e6

Say = Callable[[str], None]


class CheckpointSync:
    """Serialised commits of one checkpoint directory to one store."""

    def __init__(
        self,
        store: Callable[[], CheckpointStore | None],
        directory: Path,
        *,
        job_id: str,
        attempt: int,
        keep_last_n: int,
        say: Say,
        note: Say,
    ) -> None:
        self._store = store
        self.directory = directory
        self.job_id = job_id
        self.attempt = attempt
        self.keep_last_n = keep_last_n
        self.say = say
        self.note = note
        self.last_seconds = 0.0
        self.busy: Busy | None = None
        self.deadline: float | None = None  # time.monotonic() by which uploads must end
        self._lock = threading.Lock()
        self._hashes = HashCache()
        self._look_for_unfinished = True

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def commit(self) -> CommitResult | None:
        """Commit now (after any commit in progress); None when there is no store or it failed."""
        store = self._store()
        if store is None:
            return None
        with self._lock:
            if self._look_for_unfinished:
                self._abort_unfinished(store)
            try:
                result = commit_checkpoint(
                    store,
                    self.directory,
                    job_id=self.job_id,
                    attempt=self.attempt,
                    cache=self._hashes,
                    log=self.say,
                    busy=self.busy,
                    stop=self.past_deadline,
                )
            except Exception as exc:  # a failed commit must not take the job down with it
                self.say(f"checkpoint commit failed: {exc}")
                self._look_for_unfinished = True
                return None
        manifest = result.manifest
        if result.created and manifest is not None:
            self.last_seconds = result.seconds
            self.say(
                f"checkpoint {manifest.id} committed: {len(manifest.files)} files, "
                f"{result.uploaded_files} uploaded ({result.uploaded_bytes} bytes) "
                f"in {result.seconds:.1f}s"
            )
        if self.past_deadline() and (result.carried or result.left_out):
            self.say(
                "the spot notice's deadline came before every file was uploaded; see the lines "
                "above for what kept its last committed version"
            )
        return result

    def _abort_unfinished(self, store: CheckpointStore) -> None:
        """Abort what killed commits left (before this commit starts uploads of its own)."""
        self._look_for_unfinished = False
        try:
            aborted = store.abort_incomplete_uploads(BLOBS)
        except Exception as exc:  # housekeeping: never fail a commit for it
            self.note(f"could not look for unfinished checkpoint uploads: {exc}")
            return
        if aborted:
            self.say(
                f"aborted {len(aborted)} unfinished upload(s) an earlier commit left: "
                + ", ".join(sorted(aborted))
            )

    def prune(self) -> None:
        store = self._store()
        if store is None:
            return
        try:
            pruned = prune_checkpoints(store, self.keep_last_n)
        except Exception as exc:  # pruning is housekeeping: log and go on
            self.note(f"pruning old checkpoints failed: {exc}")
            return
        if pruned.deleted_manifests:
            self.note(
                f"pruned {len(pruned.deleted_manifests)} old checkpoints "
                f"and {pruned.deleted_blobs} blobs"
            )

    def upload_allowance(self) -> float:
        """Seconds to keep for the final upload: twice the last commit, or a size estimate."""
        size = sum(f.size for f in scan_checkpoint_dir(self.directory))
        return max(
            MIN_UPLOAD_ALLOWANCE,
            2 * self.last_seconds,
            size / ASSUMED_UPLOAD_BYTES_PER_SECOND,
        )

    def loop(
        self,
        interval: float,
        done: threading.Event,
        stopping: threading.Event,
        on_commit: Callable[[CommitResult], None],
    ) -> None:
        """Commit every ``interval`` seconds until ``done``; skip once a stop has begun."""
        while not done.wait(max(1.0, interval)):
            if stopping.is_set():
                return
            result = self.commit()
            if result is not None and result.created:
                on_commit(result)
                self.prune()


class LogShipper:
    """Puts the job log to S3 whenever it grew, at most every ``interval`` seconds."""

    def __init__(self, path: Path, put: Callable[[bytes], None], interval: float) -> None:
        self.path = path
        self.put = put
        self.interval = interval
        self._shipped = -1
        self._lock = threading.Lock()

    def ship(self) -> None:
        with self._lock:
            try:
                if self.path.stat().st_size == self._shipped:
                    return
                data = self.path.read_bytes()
            except OSError:
                return
            self.put(data)
            self._shipped = len(data)

    def loop(self, done: threading.Event) -> None:
        wait = self.interval
        while not done.wait(wait):
            started = time.monotonic()
            self.ship()
            wait = max(self.interval, 5 * (time.monotonic() - started))
