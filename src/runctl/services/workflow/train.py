"""``workflow train``: launch N instances, run one job on each, fetch outputs, terminate.

In order: every local check (:func:`~runctl.services.workflow.plan.plan_jobs`); N instances of
one spec through the launch strategy (``aws create --count N``: all or none, exit 5), tagged
``runctl:workflow`` and waited for until SSM is online; then one worker thread per job starts it
(one start at a time: the code bundle is built and uploaded once), follows it to its end --
through spot interruptions on replacements with ``auto_resume``, each job on its own -- with its
log lines going to ``log_for(job)``, downloads its outputs to ``<download_dir>/<job-id>/`` and
terminates its instances at once, so an idle instance is not paid for while the others run.

However the workflow ends, nothing it launched is left running: on Ctrl-C, SIGHUP or SIGTERM
(:mod:`~runctl.services.workflow.interrupts`) or an error, the workers are cancelled and every
instance tagged with the workflow is terminated, each running job committing its checkpoint first
(a second Ctrl-C skips that step); a last sweep by tag catches a replacement launched meanwhile.
Each job also runs with ``terminate_on_finish``: its instance ends itself even if this process
is killed outright.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runctl.aws.spot_history import SpotHistory
from runctl.errors import NotFoundError, RunctlError
from runctl.job.record import JobRecord
from runctl.polling import Timing
from runctl.services import tags
from runctl.services.jobs.cost import estimate_job_cost
from runctl.services.workflow.interrupts import Stopper, hangup_as_interrupt, shielded
from runctl.services.workflow.plan import WorkflowRequest, plan_jobs
from runctl.services.workflow.results import WorkflowJob, WorkflowResult

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance
    from runctl.services.jobs.session import JobSession

LogSink = Callable[[bytes], None]
#: How long a teardown waits for cancelled workers before its last sweep.
WORKER_GRACE_SECONDS = 30.0
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def run_workflow(
    session: JobSession, request: WorkflowRequest, *, log_for: Callable[[WorkflowJob], LogSink]
) -> WorkflowResult:
    """Run the workflow to its end; the result (whatever the jobs' verdicts).

    Raises what the local checks raise before any AWS call, NoCapacityError when the N
    instances cannot be placed (nothing left running), and KeyboardInterrupt (Ctrl-C, or
    :class:`~runctl.services.workflow.interrupts.Hangup`) after terminating everything.
    """
    plans = plan_jobs(request, session.settings, session.cwd)
    workflow = Workflow(session, request, [WorkflowJob(plan) for plan in plans], log_for)
    with hangup_as_interrupt():
        try:
            workflow.launch()
            workflow.run_jobs()
        except BaseException:
            workflow.tear_down()
            raise
        finally:
            workflow.sweep()
    return workflow.result


class Workflow:
    """One run of ``workflow train``: its jobs, their workers, and its teardown."""

    def __init__(
        self,
        session: JobSession,
        request: WorkflowRequest,
        jobs: list[WorkflowJob],
        log_for: Callable[[WorkflowJob], LogSink],
    ) -> None:
        self.session = session
        self.request = request
        self.stopper = Stopper()
        # The workers' session sleeps through the stopper: a teardown wakes them up.
        self.workers = session.with_timing(Timing(sleep=self.stopper.sleep))
        self.result = WorkflowResult(f"wf-{secrets.token_hex(6)}", jobs)
        self.log_for = log_for
        # One start at a time: the first builds and uploads the code bundle, the others find it.
        self._start_lock = threading.Lock()
        self._lock = threading.Lock()
        self._futures: list[Future[None]] = []

    def report(self, message: str) -> None:
        """Say what happens; a terminal that went away (SIGHUP) must not stop a teardown."""
        with contextlib.suppress(OSError):
            self.session.report.info(message)

    def launch(self) -> None:
        """The N instances, running with SSM online; each job gets its instance."""
        launch = replace(
            self.request.launch,
            tags={**self.request.launch.tags, tags.WORKFLOW: self.result.workflow_id},
        )
        count = len(self.result.jobs)
        self.report(f"workflow {self.result.workflow_id}: launching {count} x "
                    f"{launch.instance_type}")  # fmt: skip
        launched = self.workers.launch_ready(
            launch, count=count, wait=True, timeout=self.request.ready_timeout
        )
        self.result.launched = [i.instance_id for i in launched.instances]
        for job, instance in zip(self.result.jobs, launched.instances, strict=True):
            job.instance_id = instance.instance_id
        where = ", ".join(f"{i.instance_id} ({i.lifecycle})" for i in launched.instances)
        self.report(f"ready: {where}")

    def run_jobs(self) -> None:
        """Each job on its instance in a worker thread, until all have ended."""
        pool = ThreadPoolExecutor(max_workers=len(self.result.jobs), thread_name_prefix="job")
        self._futures = [pool.submit(self._run_one, job) for job in self.result.jobs]
        pool.shutdown(wait=False)
        pending = set(self._futures)
        while pending:  # short waits: the main thread stays responsive to Ctrl-C
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # a worker's unexpected error ends the workflow

    def _run_one(self, job: WorkflowJob) -> None:
        assert job.instance_id is not None
        session, plan = self.workers, job.plan
        sink = self.log_for(job)

        def on_log(chunk: bytes) -> None:
            with contextlib.suppress(OSError):
                sink(chunk)

        try:
            with self._start_lock:
                self.stopper.check()
                job.started = session.start(replace(plan.train, instance_id=job.instance_id))
            self.report(f"[{plan.label}] job {plan.job_id} started on {job.instance_id}")
            if self.request.detach:
                job.detached = True
                return
            job.outcome = session.run_to_end(
                job.started, on_log=on_log, auto_resume=self.request.auto_resume,
                max_restarts=self.request.max_restarts, timeout=self._follow_timeout(),
            )  # fmt: skip
            self.report(f"[{plan.label}] job {plan.job_id} {job.outcome.verdict}")
            self._fetch(job)
        except RunctlError as err:
            job.error = err
            self.report(f"[{plan.label}] {err.message}")
        finally:
            if not self.stopper.cancelled and not job.detached:
                self._finish(job)

    def _follow_timeout(self) -> float | None:
        minutes = self.request.timeout_minutes
        return None if minutes is None else minutes * 60

    def _fetch(self, job: WorkflowJob) -> None:
        """Download the job's outputs to ``<download_dir>/<job-id>/``."""
        from runctl.aws.s3 import S3Uri
        from runctl.aws.s3_copy import download_path

        if self.request.download_dir is None or job.started is None:
            return
        spec = JobRecord(job.started.location, s3=self.session.s3).read_spec()
        if spec.output_uri is None:
            return
        target = self.session.cwd / self.request.download_dir / job.plan.job_id
        try:
            report = download_path(
                self.session.s3, S3Uri.parse(spec.output_uri), target, recursive=True
            )
        except NotFoundError:
            self.report(f"[{job.plan.label}] no outputs in {spec.output_uri}")
            return
        job.outputs_dir, job.output_files = target, report.files
        self.report(f"[{job.plan.label}] {report.files} output file(s) -> {target}")

    def _finish(self, job: WorkflowJob) -> None:
        """Terminate the job's instances (its replacements too) and price the job."""
        outcome = job.outcome
        ids = {job.instance_id, *(outcome.launched if outcome else ())}
        if outcome is not None:
            ids.add(outcome.instance_id)
        try:
            self._terminate(sorted(i for i in ids if i))
            if job.started is not None:
                spec, status = JobRecord(job.started.location, s3=self.session.s3).read()
                job.cost = estimate_job_cost(
                    spec,
                    status,
                    self.session.prices,
                    instance=None,
                    now=datetime.now(UTC),
                    history=SpotHistory(self.session.ec2.client),
                )
        except RunctlError as err:
            self.report(f"[{job.plan.label}] {err.message}")

    def _terminate(self, instance_ids: list[str]) -> list[str]:
        """Terminate those of ``instance_ids`` that still live (no checkpoint step)."""
        if not instance_ids:
            return []
        ec2 = self.session.ec2
        alive = [
            i.instance_id
            for i in ec2.describe_instances(instance_ids=instance_ids)
            if i.state in LIVE_STATES
        ]
        if alive:
            ec2.terminate_instances(alive)
            with self._lock:
                self.result.terminated.extend(alive)
            self.report(f"terminated {', '.join(alive)}")
        return alive

    def _tagged(self) -> list[Instance]:
        """Every instance of this workflow that still lives (replacements included)."""
        filters = {f"tag:{tags.WORKFLOW}": [self.result.workflow_id],
                   "instance-state-name": LIVE_STATES}  # fmt: skip
        return self.session.ec2.describe_instances(filters=filters)

    def tear_down(self) -> None:
        """Cancel the workers and terminate every instance of the workflow, each running job
        committing its checkpoint first; a second Ctrl-C terminates at once."""
        self.stopper.cancel()
        try:
            ids = [i.instance_id for i in self._tagged()]
            if not ids:
                return
            self.report(
                f"stopping: terminating {', '.join(ids)}; each running job commits its "
                "checkpoint first (Ctrl-C again to skip that)"
            )
            pool = ThreadPoolExecutor(max_workers=len(ids), thread_name_prefix="teardown")
            pending = {pool.submit(self._terminate_gracefully, i) for i in ids}
            pool.shutdown(wait=False)
            while pending:  # short waits: a second Ctrl-C must get through
                done, pending = wait(pending, timeout=0.5)
                for future in done:
                    said = future.result()
                    if said:
                        self.report(said)
        except KeyboardInterrupt:
            self.report("terminating without the checkpoint step")
        except RunctlError as err:
            self.report(f"the checkpoint step failed ({err.message}); terminating at once")

    def _terminate_gracefully(self, instance_id: str) -> str | None:
        result = self.session.terminate(instance_id)
        with self._lock:
            self.result.terminated.append(instance_id)
        return result.job_stop.message if result.job_stop else None

    def sweep(self) -> None:
        """The last word: wait (briefly) for cancelled workers, then terminate whatever of the
        workflow still lives, with Ctrl-C, SIGHUP and SIGTERM held back meanwhile."""
        running = [f for f in self._futures if not f.done()]
        try:
            if running:
                wait(running, timeout=WORKER_GRACE_SECONDS)
        except KeyboardInterrupt:
            pass  # stop waiting for them: terminate now
        # A detached workflow leaves its started jobs' instances running: they end themselves.
        keep = set() if self.stopper.cancelled else {j.instance_id for j in self.result.jobs
                                                      if j.detached}  # fmt: skip
        with shielded():
            try:
                self._terminate(
                    [i.instance_id for i in self._tagged() if i.instance_id not in keep]
                )
                self.result.left_running = [
                    i.instance_id for i in self._tagged() if i.instance_id not in keep
                ]
            except RunctlError as err:
                self.result.left_running = list(self.result.launched)
                self.report(
                    f"could not terminate the workflow's instances: {err.message}; find them "
                    f"with `runctl resources list` (tag {tags.WORKFLOW}={self.result.workflow_id})"
                )
