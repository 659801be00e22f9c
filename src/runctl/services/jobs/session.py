"""The job workflow in one place: :class:`JobSession`.

One session is built per invocation from the AWS context, the settings, the working directory
and a :class:`Reporter` (the CLI's output, or anything with ``info`` and ``detail``). It owns
what every job command composes — launch an instance and wait until it is ready
(:meth:`~JobSession.launch_ready`), start a job or its next attempt (:meth:`~JobSession.start`,
:meth:`~JobSession.resume`, one shared tail), watch it (:meth:`~JobSession.watch`,
:meth:`~JobSession.follow`), run it to its end through interruptions
(:meth:`~JobSession.run_to_end`), and stop or terminate an instance with the job's checkpoint
committed first (:meth:`~JobSession.stop`, :meth:`~JobSession.terminate`) — and returns typed
results (:class:`StartedJob`, :class:`FollowResult`, :class:`JobOutcome`) that the CLI renders.

AWS clients are built on first use, so every local check runs before boto3 is even imported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runctl.config import Settings
from runctl.paths import cache_dir
from runctl.polling import Timing

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

    from runctl.aws.ec2 import Ec2, Instance
    from runctl.aws.iam import Iam
    from runctl.aws.session import AwsContext
    from runctl.aws.ssm import Ssm
    from runctl.job.spec import JobLocation, JobStatus
    from runctl.services.bundles.runtime import RuntimeRef
    from runctl.services.instances.launch import LaunchRequest, LaunchResult
    from runctl.services.instances.lifecycle import ActionResult, GracefulStopResult, Readiness
    from runctl.services.instances.prices import PriceBook, PriceQuote
    from runctl.services.jobs.follow import FollowResult, JobWatch
    from runctl.services.jobs.outcome import JobOutcome
    from runctl.services.jobs.request import TrainRequest
    from runctl.services.jobs.start import StartedJob


class Reporter(Protocol):
    """Where a session says what it is doing: one line each, for people."""

    def info(self, message: str) -> None: ...

    def detail(self, message: str) -> None: ...


class Quiet:
    """A reporter that says nothing."""

    def info(self, message: str) -> None:
        return None

    def detail(self, message: str) -> None:
        return None


@dataclass
class Launched:
    """An instance launched by :meth:`JobSession.launch_ready`: what was tried, whether it is
    ready (None without waiting), and its price."""

    result: LaunchResult
    readiness: Readiness | None
    price: PriceQuote | None

    @property
    def instance(self) -> Instance | None:
        return self.result.instance

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``aws create`` (stable keys)."""
        result, instance, price = self.result, self.result.instance, self.price
        image = result.image.image if result.image else None
        return {
            "instance_id": instance.instance_id if instance else None,
            "instance_type": result.instance_type.name,
            "lifecycle": instance.lifecycle if instance else None,
            "availability_zone": instance.availability_zone if instance else None,
            "ami_id": instance.image_id if instance else (image.image_id if image else None),
            "ami_name": image.name if image else None,
            "state": instance.state if instance else None,
            "private_ip": instance.private_ip if instance else None,
            "public_ip": instance.public_ip if instance else None,
            "hourly_price_usd": price.usd_per_hour if price else None,
            "price_source": price.source if price else None,
            "tags": dict(instance.tags) if instance else {},
            "ssm_online": self.readiness.ssm_online if self.readiness else None,
            "reused": result.reused,
            "dry_run": result.dry_run,
            "request_key": result.request_key,
            "attempts": [vars(a) for a in result.attempts],
            "warnings": result.warnings,
        }


class JobSession:
    """Launch, start, resume, follow, run to the end and stop jobs, for one invocation."""

    def __init__(
        self,
        aws: AwsContext,
        settings: Settings,
        *,
        cwd: Path,
        report: Reporter | None = None,
        timing: Timing | None = None,
        cache: Path | None = None,
    ) -> None:
        self.aws = aws
        self.settings = settings
        self.cwd = cwd
        self.report: Reporter = report or Quiet()
        self.timing = timing
        self.cache = cache or cache_dir()

    # -- AWS access, built on first use ----------------------------------------------------------

    @cached_property
    def ec2(self) -> Ec2:
        from runctl.aws.ec2 import Ec2

        return Ec2(self.aws.ec2())

    @cached_property
    def ssm(self) -> Ssm:
        from runctl.aws.ssm import Ssm

        return Ssm(self.aws.ssm())

    @cached_property
    def iam(self) -> Iam:
        from runctl.aws.iam import Iam

        return Iam(self.aws.iam())

    @property
    def s3(self) -> S3Client:
        return self.aws.s3()

    @property
    def ssm_client(self) -> SSMClient:
        return self.aws.ssm()

    @property
    def region(self) -> str:
        return self.aws.region_name

    @cached_property
    def prices(self) -> PriceBook:
        from runctl.services.instances.prices import PriceBook

        return PriceBook(self.ec2.region, spot_source=self.ec2)

    @property
    def remote_root(self) -> str:
        return self.settings.aws.remote_root

    def runtime_bundle(self, bucket: str) -> RuntimeRef:
        """runctl's runtime bundle in ``bucket`` (built and uploaded only when missing)."""
        from runctl.services.bundles.runtime import ensure_runtime_bundle

        return ensure_runtime_bundle(self.s3, bucket, self.cache / "runtime")

    # -- instances -------------------------------------------------------------------------------

    def launch_ready(
        self,
        request: LaunchRequest,
        *,
        wait: bool = True,
        dry_run: bool = False,
        timeout: float = 600.0,
        on_progress: Callable[[str], None] | None = None,
    ) -> Launched:
        """Launch an instance (spot zones, then on-demand), with ``wait`` until it runs with its
        SSM agent online, and price it. Raises what ``launch_instance`` and ``wait_ready`` raise.
        """
        import time

        from runctl.services.instances.launch import launch_instance
        from runctl.services.instances.lifecycle import wait_ready

        progress = on_progress or self.report.detail
        started = time.monotonic()
        result = launch_instance(
            self.ec2, self.ssm, request, dry_run=dry_run, confirm_running=wait, timeout=timeout,
            timing=self.timing, on_event=progress,
        )  # fmt: skip
        readiness = None
        if wait and result.instance is not None:
            left = max(timeout - (time.monotonic() - started), 0.0)
            instance_id = result.instance.instance_id
            readiness = wait_ready(
                self.ec2, self.ssm, instance_id, timeout=left, timing=self.timing,
                on_progress=progress,
            )  # fmt: skip
            result.instance = self.ec2.describe_instance(instance_id)
        price = self.prices.for_instance(result.instance) if result.instance else None
        return Launched(result, readiness, price)

    def graceful_stop(self, instance: Instance) -> GracefulStopResult | None:
        """Stop the job running on ``instance`` with its checkpoint committed (through SSM)."""
        from runctl.services.jobs.graceful import stop_running_job

        return stop_running_job(self, instance)

    def stop(
        self, instance_id: str, *, force: bool = False, wait: bool = False, timeout: float = 600.0
    ) -> ActionResult:
        """Stop an instance, letting its job checkpoint first unless ``force``."""
        from runctl.services.instances.lifecycle import stop_instance

        return stop_instance(
            self.ec2, instance_id, force=force, wait=wait, timeout=timeout,
            graceful=self.graceful_stop, timing=self.timing,
        )  # fmt: skip

    def terminate(
        self, instance_id: str, *, force: bool = False, wait: bool = False, timeout: float = 600.0
    ) -> ActionResult:
        """Terminate an instance, letting its job checkpoint first unless ``force``."""
        from runctl.services.instances.lifecycle import terminate_instance

        return terminate_instance(
            self.ec2, instance_id, force=force, wait=wait, timeout=timeout,
            graceful=self.graceful_stop, timing=self.timing,
        )  # fmt: skip

    # -- jobs ------------------------------------------------------------------------------------

    def start(self, request: TrainRequest) -> StartedJob:
        """Start a new job (see :func:`runctl.services.jobs.start.start_job`)."""
        from runctl.services.jobs.start import start_job

        return start_job(self, request)

    def resume(
        self,
        location: JobLocation,
        instance_id: str,
        *,
        args: Sequence[str] | None = None,
        force: bool = False,
    ) -> StartedJob:
        """Start the job's next attempt on ``instance_id`` from its committed checkpoint."""
        from runctl.services.jobs.resume import resume_job

        return resume_job(self, location, instance_id, args=args, force=force)

    def current_job_status(self, instance: Instance) -> JobStatus | None:
        """status.json of the job ``aws train`` last started on ``instance``, or None when it
        has none or it cannot be read."""
        from runctl.errors import RunctlError
        from runctl.job.record import JobRecord

        location = self.locate(instance, None)
        if location is None:
            return None
        try:
            return JobRecord(location, s3=self.s3).read_status()
        except RunctlError:  # no access to the bucket: the instance's own status still shows
            return None

    def locate(self, instance: Instance, job_id: str | None) -> JobLocation | None:
        """The S3 location of ``job_id`` (default: the instance's job), if it can be known."""
        from runctl.services.jobs.lookup import job_location

        return job_location(instance, job_id, self.settings, self.cwd)

    def watch(
        self, instance_id: str, job_id: str | None = None, location: JobLocation | None = None
    ) -> JobWatch:
        """A watch on the job ``job_id`` (default: the instance's current job)."""
        from runctl.services.instances.lifecycle import validate_instance_id
        from runctl.services.jobs.follow import JobWatch
        from runctl.services.jobs.lookup import job_on

        instance = self.ec2.describe_instance(validate_instance_id(instance_id))
        job_id = job_id or job_on(instance)
        return JobWatch(self, instance, job_id, location or self.locate(instance, job_id))

    def follow(
        self,
        started: StartedJob,
        *,
        on_log: Callable[[bytes], None],
        timeout: float | None = None,
    ) -> FollowResult:
        """Stream ``started``'s log to ``on_log`` until the attempt ends (or is lost)."""
        from runctl.services.jobs.follow import JobWatch

        instance = self.ec2.describe_instance(started.instance_id)
        watch = JobWatch(self, instance, started.job_id, started.location)
        return watch.follow(
            on_log=on_log,
            attempt=started.attempt,
            on_status=lambda status: self.report.detail(f"job {started.job_id}: {status.state}"),
            timeout=timeout,
        )

    def processes(self, instance_id: str) -> dict[str, Any]:
        """One snapshot of the instance's CPU, memory, disk, GPUs and the job's processes."""
        from runctl.services.instances.lifecycle import validate_instance_id
        from runctl.services.jobs.processes import instance_snapshot

        return instance_snapshot(
            self.ssm_client,
            validate_instance_id(instance_id),
            remote_root=self.remote_root,
            timing=self.timing,
        )

    def run_to_end(
        self,
        started: StartedJob,
        *,
        on_log: Callable[[bytes], None],
        auto_resume: bool = False,
        max_restarts: int = 3,
        timeout: float | None = None,
    ) -> JobOutcome:
        """Follow ``started`` to its end; with ``auto_resume``, through interruptions and lost
        instances on replacements (see :mod:`runctl.services.jobs.auto_resume`)."""
        from runctl.services.jobs.auto_resume import run_to_end

        return run_to_end(
            self,
            started,
            on_log=on_log,
            auto_resume=auto_resume,
            max_restarts=max_restarts,
            timeout=timeout,
        )
