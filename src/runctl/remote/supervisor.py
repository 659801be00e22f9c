"""The job supervisor: one attempt of a job, from staging to the final status.

In order: status ``starting``; code, data and the latest committed checkpoint are fetched and a
venv is made for ``requirements.txt`` (instance only); the script starts with the environment of
docs/reference.md (the job model); status goes ``running``. While it runs, the log goes to S3 every
few seconds, ``RUNCTL_CHECKPOINT_DIR`` is committed every ``sync_interval_seconds``, and a stop
may be requested: a spot notice (the IMDS watcher), ``runctl.remote.control stop`` (a
``stop-request`` file plus SIGUSR1), or SIGTERM/SIGINT to the runner. A stop SIGTERMs the
script's process group, waits the grace period, SIGKILLs, commits the final checkpoint and marks
the job ``interrupted`` (spot, shutdown), ``stopped`` (asked for) or ``cancelled`` (asked for with
the reason ``cancel``: ``jobs cancel``). Whenever the script ends the checkpoint is committed once
more, outputs are uploaded, the log shipped, and status.json written last with the script's exit
code as the verdict: 0 ``succeeded``, else ``failed``. Then, on an instance,
``stop_on_finish``/``terminate_on_finish`` are applied to the instance itself.

Commits never take a file the script's processes are writing (:mod:`runctl.remote.writers`,
watched while it runs and while it is stopped). After a spot notice, commits end their uploads
at a deadline a few seconds before the instance goes. A resumed run that fails before committing
anything new is not committed; it is run again from the previous committed checkpoint
(:mod:`runctl.remote.recovery`), and status.json records the checkpoint each run restored and
every fallback taken.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runctl.errors import RunctlError
from runctl.job import spec as js
from runctl.job.checkpoints import CommitResult
from runctl.job.layout import JobPaths
from runctl.job.manifests import Manifest
from runctl.job.record import JobRecord
from runctl.job.snapshot import scan_checkpoint_dir
from runctl.job.spec import RUN_FAILED, CheckpointFallback, JobSpec, JobStatus, utc_now
from runctl.job.stores import CheckpointStore, open_store
from runctl.remote.finish import apply_finish_action, finish_action
from runctl.remote.imds import ImdsClient, SpotNotice, SpotWatcher
from runctl.remote.process import Echo, JobLog, ScriptProcess
from runctl.remote.recovery import CheckpointRecovery
from runctl.remote.staging import (
    StagingError,
    fetch_code,
    fetch_data,
    install_requirements,
    without_runtime_path,
)
from runctl.remote.sync import CheckpointSync, LogShipper
from runctl.remote.writers import WriterWatch

if TYPE_CHECKING:
    from runctl.remote.container import JobContainer

SPOT = "spot"
STOP = "stop"
SHUTDOWN = "shutdown"
#: The ``stop-request`` reason of ``jobs cancel`` (see :mod:`runctl.remote.control`).
CANCEL = "cancel"
LOG_INTERVAL = 2.0
# After a spot notice, commits end their uploads this many seconds before the instance goes, to
# write the manifest, the outputs and status.json.
NOTICE_MARGIN_SECONDS = 5.0


@dataclass
class RunContext:
    """Where and how one attempt runs; built by the runner (instance) or ``runctl local``."""

    spec: JobSpec
    attempt: int
    paths: JobPaths
    checkpoint_dir: Path
    workdir: Path
    instance_id: str = "local"
    on_instance: bool = False
    python: str = "python3"
    echo: Echo | None = None
    notify: Callable[[str], None] | None = None
    s3_client: Callable[[], Any] | None = None
    ec2_client: Callable[[], Any] | None = None
    imds: ImdsClient | None = None
    venvs_dir: Path | None = None
    log_interval: float = LOG_INTERVAL
    #: Called (in the watcher's thread) after a spot notice has asked for the stop: the
    #: laptop-closed recovery launches the successor there (runctl.remote.succession).
    on_notice: Callable[[SpotNotice], None] | None = None
    #: Called with the final status once it is written, before any finish action.
    on_end: Callable[[JobStatus], None] | None = None
    # A container job (``spec.docker_image``): runctl's Docker config, and ECR by region.
    docker_config: Path | None = None
    ecr_client: Callable[[str], Any] | None = None
    #: RUNCTL_DATA_DIR when it is not the job's own ``data/`` (a mounted data volume).
    data_dir: Path | None = None

    @property
    def data_path(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.paths.data_dir


class Supervisor:
    """Runs one attempt; ``run()`` returns the final JobStatus."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.location = ctx.spec.location
        self.log = JobLog(ctx.paths.log(ctx.attempt), echo=ctx.echo)
        self.status = JobStatus(job_id=ctx.spec.job_id, created=ctx.spec.created)
        self.stop_event = threading.Event()
        self.stop_reason: str | None = None
        self.notice: SpotNotice | None = None
        self.process: ScriptProcess | None = None
        self._status_lock = threading.Lock()
        self._script_done = threading.Event()
        self._finished = threading.Event()
        self._store: CheckpointStore | None = None
        self._s3: Any = None
        self.error: BaseException | None = None
        self.writers: WriterWatch | None = None
        self.container: JobContainer | None = None
        if ctx.spec.docker_image:
            from runctl.remote.container import JobContainer

            self.container = JobContainer(ctx, self.log, self.say)
        self._run_commits = 0
        self.recovery = CheckpointRecovery(
            self.store,
            ctx.checkpoint_dir,
            attempt=ctx.attempt,
            max_restarts=ctx.spec.max_restarts,
            owned=ctx.paths.job_dir in ctx.checkpoint_dir.parents,
            used=0,
            say=self.say,
            record=self._record_fallback,
        )
        self.checkpoints = CheckpointSync(
            self.store,
            ctx.checkpoint_dir,
            job_id=ctx.spec.job_id,
            attempt=ctx.attempt,
            keep_last_n=ctx.spec.checkpoint.keep_last_n,
            say=self.say,
            note=self.log.note,
        )
        self.shipper = LogShipper(ctx.paths.log(ctx.attempt), self._put_log, ctx.log_interval)

    # -- plumbing -------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        self.log.note(message)
        if self.ctx.notify is not None:
            self.ctx.notify(message)

    def s3(self) -> Any:
        if self._s3 is None:
            if self.ctx.s3_client is None:
                raise StagingError("this job needs S3 but no S3 client is configured")
            self._s3 = self.ctx.s3_client()
        return self._s3

    def store(self) -> CheckpointStore | None:
        uri = self.spec.checkpoint_uri
        if self._store is None and uri:
            self._store = open_store(uri, self.s3)
        return self._store

    def record(self) -> JobRecord:
        """The job's documents: on this machine, and in S3 when the job has a location."""
        s3 = self.s3() if self.location is not None else None
        return JobRecord(self.location, paths=self.ctx.paths, s3=s3)

    def set_status(self, **changes: Any) -> None:
        """Update status.json locally (atomically) and in S3 (errors there are logged)."""
        with self._status_lock:  # held over the PUT too: S3 never gets an older document last
            self.status = replace(self.status, updated=utc_now(), **changes)
            self.record().write_status(
                self.status,
                on_s3_error=lambda exc: self.log.note(f"could not write status.json to S3: {exc}"),
            )

    def _put(self, key: str, data: bytes, what: str) -> None:
        from runctl.aws.s3 import S3Uri, put_bytes

        assert self.location is not None
        try:
            put_bytes(self.s3(), S3Uri(self.location.bucket, key), data)
        except (RunctlError, OSError) as exc:
            self.log.note(f"could not write {what} to S3: {exc}")

    def request_stop(self, reason: str, notice: SpotNotice | None = None) -> None:
        """Ask for the graceful stop (thread- and signal-safe; the first reason wins)."""
        if self.stop_event.is_set():
            return
        self.stop_reason = reason
        self.notice = notice
        if notice is not None:  # commits in flight from now on end before the instance goes
            left = notice.seconds_left() - NOTICE_MARGIN_SECONDS
            self.checkpoints.deadline = time.monotonic() + left
        self.stop_event.set()

    # -- the attempt ----------------------------------------------------------------------------

    def run(self) -> JobStatus:
        previous = self._load_previous_status()
        instance_ids = list(previous.instance_ids) if previous else []
        if self.ctx.instance_id not in instance_ids:
            instance_ids.append(self.ctx.instance_id)
        self.status = JobStatus(
            job_id=self.spec.job_id,
            created=(previous.created if previous else None) or self.spec.created,
            checkpoint_id=previous.checkpoint_id if previous else None,
            fallbacks=list(previous.fallbacks) if previous else [],
        )
        self.recovery.used = sum(1 for f in self.status.fallbacks if f.kind == RUN_FAILED)
        self.set_status(
            state=js.STARTING,
            attempt=self.ctx.attempt,
            instance_ids=instance_ids,
            started=utc_now(),
        )
        shipper = threading.Thread(
            target=self.shipper.loop, args=(self._finished,), name="runctl-log", daemon=True
        )
        shipper.start()
        try:
            return self._run()
        except (StagingError, RunctlError, OSError) as exc:
            self.error = exc
            self.say(f"job failed before the script ran: {exc}")
            self._finish(js.FAILED, None, f"{type(exc).__name__}: {exc}")
            return self.status
        finally:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate(grace=0)  # never leave the script behind
            self._script_done.set()
            self._finished.set()
            shipper.join(timeout=10.0)
            self._ship_log()
            self.log.close()

    def _load_previous_status(self) -> JobStatus | None:
        try:
            return self.record().read_status()
        except RunctlError:
            return None

    def _run(self) -> JobStatus:
        watcher = self._start_watcher()
        try:
            return self._stage_and_run()
        finally:
            if watcher is not None:
                watcher.stop()

    def _stage_and_run(self) -> JobStatus:
        resumed = self._stage()
        if self.stop_event.is_set():
            # Never started: a lost instance can be resumed, a stop request cancels.
            state = js.CANCELLED if self.stop_reason == STOP else js.INTERRUPTED
            self._finish(state, None, f"stopped ({self.stop_reason}) before the script ran")
            return self.status
        while True:
            started_from = self.recovery.restored
            code = self._run_script(resumed)
            failed_early = (
                started_from is not None
                and code != 0
                and self.stop_reason is None
                and self._run_commits == 0
            )
            if not failed_early:
                return self._end(code)
            fallback = self.recovery.fall_back(code)
            self._restored(self.recovery.restored)
            assert started_from is not None
            if fallback is None or self.stop_event.is_set():
                return self._end(code, not_committed=started_from)
            resumed = True

    def _run_script(self, resumed: bool) -> int:
        """Run the script once, committing periodically; its exit code."""
        argv = self._argv()
        self.say(f"starting {self.spec.script} (attempt {self.ctx.attempt})")
        if self.container is not None:
            process: ScriptProcess = self.container.start(argv, self._contract_env(resumed))
        else:
            env = self._script_env(resumed)
            process = ScriptProcess(argv, cwd=self.ctx.workdir, env=env, log=self.log)
        self.process = process
        self.writers = WriterWatch(self.ctx.checkpoint_dir, process.pid)
        self.checkpoints.busy = self.writers.held
        self._run_commits = 0
        self._script_done = threading.Event()
        self.set_status(state=js.RUNNING)
        syncer = threading.Thread(
            target=self.checkpoints.loop,
            args=(
                float(self.spec.checkpoint.sync_interval_seconds),
                self._script_done,
                self.stop_event,
                self._committed,
            ),
            name="runctl-ckpt",
            daemon=True,
        )
        syncer.start()
        code = self._supervise(process)
        # A script that ends with 0 on its own closed its files itself.
        self.writers.ended(trusted=code == 0 and self.stop_reason is None)
        self._script_done.set()
        syncer.join()
        return code

    def _end(self, code: int, not_committed: Manifest | None = None) -> JobStatus:
        """After the last run: the final commit (none for a run that failed before committing
        anything new from ``not_committed``), outputs, then status.json."""
        commit = None
        if not_committed is None:
            commit = self.checkpoints.commit()
            if commit is not None and commit.manifest is not None:
                self._committed(commit, final=True)
        else:
            self.say(
                "not committing the checkpoint directory: the script failed before committing "
                f"anything new from checkpoint {not_committed.id}, which stays the newest"
            )
        # Outputs before the final status: an instance that goes right after loses neither.
        self._upload_outputs()
        if self.stop_reason is not None:
            state = self._stopped_state()
            self._finish(state, code, f"{self.stop_reason}: script ended with exit code {code}")
            return self.status
        if commit is not None and commit.created:
            self.checkpoints.prune()
        state = js.SUCCEEDED if code == 0 else js.FAILED
        self._finish(state, code, f"script exited with code {code}")
        self._apply_finish_action()
        return self.status

    def _stage(self) -> bool:
        """Fetch code, data and checkpoint, install requirements; True when a checkpoint was
        restored (or, locally, the checkpoint directory already holds files)."""
        spec, paths = self.spec, self.ctx.paths
        for directory in (paths.output_dir, self.ctx.data_path, self.ctx.checkpoint_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if self.ctx.on_instance and spec.code_key:
            assert spec.bucket is not None
            fetch_code(
                self.s3(), spec.bucket, spec.code_key, spec.code_sha256, paths.code_dir, self.log
            )
        if spec.data_s3 and not self.stop_event.is_set():
            fetch_data(self.s3(), spec.data_s3, self.ctx.data_path, self.log)
        resumed = False
        if self.store() is not None and not self.stop_event.is_set():
            pinned = spec.checkpoint_to_restore(self.ctx.attempt)
            resumed = self._restored(self.recovery.restore(pinned)) is not None
        if not resumed and not self.ctx.on_instance:
            resumed = bool(scan_checkpoint_dir(self.ctx.checkpoint_dir))
        if self.container is not None and not self.stop_event.is_set():
            self.container.prepare(should_stop=self.stop_event.is_set)
        requirements = self._requirements()
        if requirements is not None and not self.stop_event.is_set():
            assert self.ctx.venvs_dir is not None
            self.say(f"installing {requirements}")
            venv_python = install_requirements(
                requirements,
                self.ctx.venvs_dir,
                self.log,
                python=self.ctx.python,
                should_stop=self.stop_event.is_set,
            )
            self.ctx.python = str(venv_python)
        return resumed

    def _requirements(self) -> Path | None:
        """On an instance: ``requirements.txt`` at the code root, else beside the script (none
        for a container job: its image holds its packages)."""
        if self.ctx.venvs_dir is None or self.container is not None:
            return None
        script_dir = (self.ctx.workdir / self.spec.script).parent
        for directory in (self.ctx.workdir, script_dir):
            candidate = directory / "requirements.txt"
            if candidate.is_file():
                return candidate
        return None

    def _argv(self) -> list[str]:
        script = Path(self.spec.script)
        path = script if script.is_absolute() else self.ctx.workdir / script
        if not path.is_file():
            raise StagingError(f"script {self.spec.script} not found in {self.ctx.workdir}")
        if path.suffix == ".sh":
            return ["bash", str(path), *self.spec.args]
        if path.suffix != ".py" and os.access(path, os.X_OK):
            return [str(path), *self.spec.args]
        python = "python3" if self.container is not None else self.ctx.python  # the image's
        return [python, str(path), *self.spec.args]

    def _script_env(self, resumed: bool) -> dict[str, str]:
        env = dict(os.environ)
        if self.ctx.on_instance:
            cleaned = without_runtime_path(env.get("PYTHONPATH", ""))
            if cleaned:
                env["PYTHONPATH"] = cleaned
            else:
                env.pop("PYTHONPATH", None)
        env.update(self._contract_env(resumed))
        return env

    def _contract_env(self, resumed: bool) -> dict[str, str]:
        """The job's ``--env`` and the environment contract (docs/reference.md)."""
        env = dict(self.spec.env)
        env.update(
            {
                "RUNCTL_JOB_ID": self.spec.job_id,
                "RUNCTL_ATTEMPT": str(self.ctx.attempt),
                "RUNCTL_INSTANCE_ID": self.ctx.instance_id,
                "RUNCTL_DATA_DIR": str(self.ctx.data_path),
                "RUNCTL_CHECKPOINT_DIR": str(self.ctx.checkpoint_dir),
                "RUNCTL_RESUMED": "1" if resumed else "0",
                "RUNCTL_OUTPUT_DIR": str(self.ctx.paths.output_dir),
                "RUNCTL_GRACE_SECONDS": str(int(self.spec.checkpoint.grace_seconds)),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    # -- while it runs --------------------------------------------------------------------------

    def _supervise(self, process: ScriptProcess) -> int:
        while True:
            code = process.wait(timeout=0.2)
            if code is not None:
                return code
            if self.writers is not None:
                self.writers.look()  # what it writes, should it die before the next look
            self._check_stop_file()
            if self.stop_event.is_set():
                return self._graceful_stop(process)

    def _check_stop_file(self) -> None:
        if self.ctx.paths.stop_request.exists() and not self.stop_event.is_set():
            self.request_stop(STOP)

    def _stopped_state(self) -> str:
        """The final state of a stopped attempt: ``interrupted`` (spot, shutdown), ``cancelled``
        when the stop request's reason says so (``jobs cancel``), else ``stopped``."""
        if self.stop_reason != STOP:
            return js.INTERRUPTED
        request = js.read_json(self.ctx.paths.stop_request)
        cancelled = isinstance(request, dict) and request.get("reason") == CANCEL
        return js.CANCELLED if cancelled else js.STOPPED

    def _graceful_stop(self, process: ScriptProcess) -> int:
        grace = self._grace()
        noticed = utc_now()
        if self.notice is not None:
            left = self.notice.seconds_left()
            self.say(f"spot interruption notice: {self.notice.action} in {left:.0f}s")
        self.say(f"stopping the script ({self.stop_reason}): SIGTERM, then {grace:.0f}s grace")
        self.set_status(notice=noticed, reason=self.stop_reason)
        code = process.terminate(
            grace, on_sigterm=lambda: self.set_status(sigterm=utc_now()), observer=self.writers
        )
        self.say(f"script ended with exit code {code}")
        return code

    def _grace(self) -> float:
        configured = float(self.spec.checkpoint.grace_seconds)
        if self.notice is None:
            return configured
        allowance = self.checkpoints.upload_allowance()
        return max(1.0, min(configured, self.notice.seconds_left() - allowance))

    def _start_watcher(self) -> SpotWatcher | None:
        if self.ctx.imds is None:
            return None

        def on_spot(notice: SpotNotice) -> None:
            self.request_stop(SPOT, notice)
            if self.ctx.on_notice is not None:
                self.ctx.on_notice(notice)

        watcher = SpotWatcher(
            self.ctx.imds,
            on_spot,
            interval=self.spec.spot_poll_seconds,
            log=self.say,
        )
        watcher.start()
        return watcher

    def _committed(self, result: CommitResult, final: bool = False) -> None:
        """Record a commit in status.json; the final one also stamps ``checkpoint_committed``."""
        assert result.manifest is not None
        changes: dict[str, Any] = {"checkpoint_id": result.manifest.id}
        if final:
            changes["checkpoint_committed"] = utc_now()
        elif result.created:
            self._run_commits += 1
        self.set_status(**changes)

    def _restored(self, manifest: Manifest | None) -> Manifest | None:
        """Record in status.json the checkpoint the next run starts from."""
        changes: dict[str, Any] = {"restored_checkpoint": manifest.id if manifest else None}
        if manifest is not None:
            changes["checkpoint_id"] = manifest.id
        self.set_status(**changes)
        return manifest

    def _record_fallback(self, fallback: CheckpointFallback) -> None:
        self.set_status(fallbacks=[*self.status.fallbacks, fallback])

    def _put_log(self, data: bytes) -> None:
        if self.location is not None:
            self._put(self.location.log_key(self.ctx.attempt), data, "the log")

    def _ship_log(self) -> None:
        if self.location is not None:
            self.shipper.ship()

    # -- the end --------------------------------------------------------------------------------

    def _upload_outputs(self) -> None:
        uri = self.spec.output_uri
        output_dir = self.ctx.paths.output_dir
        if not uri or not any(output_dir.iterdir()):
            return
        try:
            from runctl.aws.s3_sync import sync

            report = sync(self.s3(), str(output_dir), uri).transfer
            self.say(f"outputs uploaded to {uri}: {report.files} files, {report.bytes} bytes")
        except (RunctlError, OSError) as exc:
            self.say(f"uploading outputs to {uri} failed: {exc}")

    def _finish(self, state: str, code: int | None, message: str) -> None:
        self._ship_log()
        self.set_status(state=state, exit_code=code, ended=utc_now(), message=message)
        if self.ctx.on_end is not None:
            self.ctx.on_end(self.status)

    def _apply_finish_action(self) -> None:
        action = finish_action(self.spec.stop_on_finish, self.spec.terminate_on_finish)
        if not self.ctx.on_instance or self.ctx.ec2_client is None or action is None:
            return
        if self.ctx.instance_id in ("local", "unknown"):
            return

        def say(message: str) -> None:  # shipped at once: the instance may be gone next
            self.say(message)
            self._ship_log()

        def record(note: str) -> None:
            self.set_status(message=f"{self.status.message}; {note}")

        apply_finish_action(
            self.ctx.ec2_client(), self.ctx.instance_id, action, say, before_terminate=record
        )


def install_signal_handlers(supervisor: Supervisor, mapping: dict[int, str]) -> Callable[[], None]:
    """Route signals to ``request_stop``; returns a function restoring the previous handlers.

    Does nothing outside the main thread (Python only delivers signals there).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}

    def handler(signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and supervisor.stop_event.is_set():
            process = supervisor.process  # Ctrl-C twice: do not wait for the grace period
            if process is not None:
                process.signal_group(signal.SIGKILL)
            return
        supervisor.request_stop(mapping[signum])

    for signum in mapping:
        previous[signum] = signal.signal(signum, handler)

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore
