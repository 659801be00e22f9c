"""The image a container job runs: ``aws train --docker [--docker-image URI]``.

Without ``--docker-image`` the project's Dockerfile is built and pushed to ECR first
(:class:`runctl.services.images.session.ImageSession`, tagged with the code bundle's sha256, so
unchanged code pushes nothing), and the job pulls exactly that image (``uri@digest``). With it,
the image is used as given; it is pulled after an ECR login when it lives in ECR: its host is an
ECR registry (``<account>.dkr.ecr.<region>.amazonaws.com``), or ECR knows its repository under
that host (an endpoint override). Either way the instance role's right to pull it is checked
before the job is written (:func:`runctl.services.account.access.check_instance_ecr_access`).

:func:`check_docker_options` is the local part, run before any AWS call: a malformed
``--docker-image`` is a UsageError; a build needs the Dockerfile (NotFoundError) and the Docker
SDK (ConfigError).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runctl.aws.partitions import arn
from runctl.errors import ConfigError, NotFoundError, RunctlError, UsageError
from runctl.job.images import ImageRef

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance
    from runctl.config import Settings
    from runctl.services.images.push import PushedImage
    from runctl.services.jobs.request import PreparedScript, TrainRequest
    from runctl.services.jobs.session import JobSession


@dataclass(frozen=True)
class JobImage:
    """What the runner pulls, where it logs in first, and the repository the role pulls from."""

    reference: str
    ecr_region: str | None = None
    repository_arn: str | None = None
    pushed: PushedImage | None = None


def check_docker_options(request: TrainRequest, settings: Settings, root: Path) -> None:
    """The local checks of ``--docker``/``--docker-image`` (see the module)."""
    if request.docker_image is not None:
        try:
            ImageRef.parse(request.docker_image)
        except ValueError as exc:
            raise UsageError(
                f"--docker-image: {exc}", hint="e.g. --docker-image REPO:TAG"
            ) from None
        return
    if not request.docker:
        return
    dockerfile = root / settings.docker.dockerfile
    if not dockerfile.is_file():
        raise NotFoundError(
            f"--docker builds the project's Dockerfile, but there is none at {dockerfile}",
            hint="add one, set [docker] dockerfile, or pass --docker-image URI",
            resource=str(dockerfile),
        )
    from runctl.aws.docker_engine import INSTALL_HINT, sdk_installed

    if not sdk_installed():
        raise ConfigError(
            "--docker builds the image here, which needs the Docker SDK",
            hint=f"{INSTALL_HINT}, or pass --docker-image URI",
        )


def resolve_job_image(
    session: JobSession, request: TrainRequest, prepared: PreparedScript, code_sha: str
) -> JobImage | None:
    """The job's image (None without ``--docker``): built and pushed, or the one named."""
    if request.docker_image is not None:
        return _named_image(session, ImageRef.parse(request.docker_image))
    if not request.docker:
        return None
    from runctl.services.images.build import ImageOptions

    session.report.info(
        f"image: building {session.settings.docker.dockerfile} (tag {code_sha[:12]})"
    )
    options = ImageOptions(
        context=str(prepared.root), tag=code_sha, project_name=request.project_name
    )
    published = session.images.build_push(
        options, on_output=lambda text: session.report.detail(text.rstrip("\n"))
    )
    pushed = published.pushed
    session.report.info(
        f"image: {pushed.uri} "
        + (f"pushed ({pushed.layers_pushed} new layers)" if pushed.pushed else "unchanged")
    )
    return JobImage(pushed.reference, session.region, pushed.repository_arn, pushed)


def _named_image(session: JobSession, ref: ImageRef) -> JobImage:
    region, account = ref.ecr_region, ref.ecr_account
    if region is not None and account is not None:
        repository = arn(
            region, "ecr", f"repository/{ref.repository}", account=account, scope=region
        )
        return JobImage(str(ref), region, repository)
    if ref.registry is None:
        return JobImage(str(ref))  # Docker Hub: pulled without a login
    try:
        found = session.images.ecr.describe_repository(ref.repository)
    except RunctlError as exc:
        session.report.info(
            f"warning: could not ask ECR about {ref.name} ({exc.message}); "
            "the instance pulls it without logging in"
        )
        return JobImage(str(ref))
    if found is None or found.registry != ref.registry:
        return JobImage(str(ref))
    return JobImage(str(ref), session.region, found.arn)


def check_image_access(session: JobSession, instance: Instance, image: JobImage) -> None:
    """AuthError (exit 4) when the instance's role may not pull an ECR image."""
    if image.repository_arn is None:
        return
    from runctl.services.account.access import check_instance_ecr_access

    for warning in check_instance_ecr_access(
        session.iam, instance, image.repository_arn, image=image.reference
    ):
        session.report.info(f"warning: {warning}")
