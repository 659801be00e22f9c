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

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runctl.config import Settings
from runctl.paths import cache_dir
from runctl.polling import Timing

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

    from runctl.aws.ebs import Ebs
    from runctl.aws.ec2 import Ec2, Instance
    from runctl.aws.iam import Iam
    from runctl.aws.session import AwsContext
    from runctl.aws.ssm import Ssm
    from runctl.job.spec import JobLocation
    from runctl.services.bundles.runtime import RuntimeRef
    from runctl.services.images.session import ImageSession
    from runctl.services.instances.launch import LaunchResult
    from runctl.services.instances.launch_request import LaunchRequest
    from runctl.services.instances.lifecycle import ActionResult, GracefulStopResult, Readiness
    from runctl.services.instances.prices import PriceBook, PriceQuote
    from runctl.services.jobs.cost import CostEstimate
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
    """Instances launched by :meth:`JobSession.launch_ready`: what was tried, whether each is
    ready (by instance id; empty without waiting), and each one's price."""

    result: LaunchResult
    readiness: dict[str, Readiness] = field(default_factory=dict)
    prices: dict[str, PriceQuote] = field(default_factory=dict)

    @property
    def instance(self) -> Instance | None:
        return self.result.instance

    @property
    def instances(self) -> list[Instance]:
        return self.result.instances

    def instance_dict(self, instance: Instance) -> dict[str, Any]:
        """One launched instance in JSON (the keys ``aws create`` prints for each)."""
        price = self.prices.get(instance.instance_id)
        ready = self.readiness.get(instance.instance_id)
        return {
            "instance_id": instance.instance_id,
            "instance_type": instance.instance_type,
            "lifecycle": instance.lifecycle,
            "availability_zone": instance.availability_zone,
            "ami_id": instance.image_id,
            "state": instance.state,
            "private_ip": instance.private_ip,
            "public_ip": instance.public_ip,
            "hourly_price_usd": price.usd_per_hour if price else None,
            "price_source": price.source if price else None,
            "tags": dict(instance.tags),
            "ssm_online": ready.ssm_online if ready else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``aws create`` (stable keys): the first instance's fields at the
        top, as a single launch always had them, and every instance under ``instances``."""
        result, first = self.result, self.result.instance
        image = result.image.image if result.image else None
        head = self.instance_dict(first) if first else {}
        return {
            "instance_id": head.get("instance_id"),
            "instance_type": result.instance_type.name,
            "lifecycle": head.get("lifecycle"),
            "availability_zone": head.get("availability_zone"),
            "ami_id": head.get("ami_id") or (image.image_id if image else None),
            "ami_name": image.name if image else None,
            "state": head.get("state"),
            "private_ip": head.get("private_ip"),
            "public_ip": head.get("public_ip"),
            "hourly_price_usd": head.get("hourly_price_usd"),
            "price_source": head.get("price_source"),
            "tags": head.get("tags", {}),
            "ssm_online": head.get("ssm_online"),
            "reused": result.reused,
            "dry_run": result.dry_run,
            "request_key": result.request_key,
            "attempts": [vars(a) for a in result.attempts],
            "warnings": result.warnings,
            "count": result.count,
            "instances": [self.instance_dict(i) for i in result.instances],
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

    def with_timing(self, timing: Timing) -> JobSession:
        """The same session (AWS context, settings, reporter) polling with ``timing``."""
        return JobSession(
            self.aws, self.settings, cwd=self.cwd, report=self.report, timing=timing,
            cache=self.cache,
        )  # fmt: skip

    # -- AWS access, built on first use ----------------------------------------------------------

    @cached_property
    def ec2(self) -> Ec2:
        from runctl.aws.ec2 import Ec2

        return Ec2(self.aws.ec2())

    @cached_property
    def ebs(self) -> Ebs:
        from runctl.aws.ebs import Ebs

        return Ebs(self.aws.ec2(), timing=self.timing)

    @cached_property
    def ssm(self) -> Ssm:
        from runctl.aws.ssm import Ssm

        return Ssm(self.aws.ssm())

    @cached_property
    def iam(self) -> Iam:
        from runctl.aws.iam import Iam

        return Iam(self.aws.iam())

    @cached_property
    def images(self) -> ImageSession:
        """Builds and pushes of container jobs (``aws train --docker``)."""
        from runctl.services.images.session import ImageSession

        return ImageSession(self.settings, cwd=self.cwd, aws=self.aws, cache=self.cache)

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
        count: int = 1,
        allow_partial: bool = False,
        wait: bool = True,
        dry_run: bool = False,
        timeout: float = 600.0,
        on_progress: Callable[[str], None] | None = None,
    ) -> Launched:
        """Launch ``count`` instances (spot zones, then on-demand), with ``wait`` until each runs
        with its SSM agent online, and price them. Raises what ``launch_instances`` and
        ``wait_ready`` raise."""
        from runctl.services.instances.launch import launch_instances

        progress = on_progress or self.report.detail
        clock = self.timing.clock if self.timing else time.monotonic
        started = clock()
        result = launch_instances(
            self.ec2, self.ssm, request, count=count, allow_partial=allow_partial,
            dry_run=dry_run, confirm_running=wait, timeout=timeout, timing=self.timing,
            on_event=progress,
        )  # fmt: skip
        launched = Launched(result)
        if wait and result.instances:
            for instance in list(result.instances):
                left = max(timeout - (clock() - started), 0.0)
                launched.readiness[instance.instance_id] = self.wait_ready(
                    instance.instance_id, timeout=left, on_progress=progress
                )
            ids = [i.instance_id for i in result.instances]
            fresh = {i.instance_id: i for i in self.ec2.describe_instances(instance_ids=ids)}
            result.instances[:] = [fresh.get(i.instance_id, i) for i in result.instances]
        for instance in result.instances:
            launched.prices[instance.instance_id] = self.prices.for_instance(instance)
        return launched

    def wait_ready(
        self,
        instance_id: str,
        *,
        timeout: float = 600.0,
        on_progress: Callable[[str], None] | None = None,
    ) -> Readiness:
        """Wait until the instance runs with its SSM agent online (see ``wait_ready``)."""
        from runctl.services.instances.lifecycle import wait_ready

        return wait_ready(
            self.ec2, self.ssm, instance_id, timeout=timeout, timing=self.timing,
            on_progress=on_progress or self.report.detail,
        )  # fmt: skip

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

    def job_cost(self, location: JobLocation) -> CostEstimate:
        """The job's cost so far with its storage (:mod:`runctl.services.jobs.cost`)."""
        from runctl.services.jobs.catalog import show_job

        return show_job(self, location).row.cost

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
