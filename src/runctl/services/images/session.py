"""Images for one invocation: :class:`ImageSession` builds, pushes, or both.

``runctl docker build|push|build-push`` and ``aws train --docker`` (through
:class:`runctl.services.jobs.session.JobSession`) all come through here. Every local check
(:func:`runctl.services.images.build.plan_image`) runs before the Docker daemon or AWS is asked;
the daemon is connected, and the ECR client built, on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runctl.paths import Project, cache_dir
from runctl.services.images.build import (
    BuiltImage,
    ImageOptions,
    ImagePlan,
    build_image,
    plan_image,
)
from runctl.services.images.push import PushedImage, ensure_repository, push_image

if TYPE_CHECKING:
    from runctl.aws.docker_engine import DockerEngine, LayerProgress
    from runctl.aws.ecr import Ecr
    from runctl.aws.session import AwsContext
    from runctl.config import Settings

OutputSink = Callable[[str], None]
ProgressSink = Callable[["LayerProgress"], None]


def _ignore(_: Any) -> None:
    return None


@dataclass
class PublishedImage:
    """An image built here and then pushed (or found unchanged) in ECR."""

    built: BuiltImage
    pushed: PushedImage

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``docker build-push``: the push's keys plus ``build``."""
        return {**self.pushed.to_dict(), "build": self.built.to_dict()}


class ImageSession:
    """Build and push images; see the module."""

    def __init__(
        self,
        settings: Settings,
        *,
        cwd: Path,
        aws: AwsContext | None = None,
        engine: DockerEngine | None = None,
        cache: Path | None = None,
    ) -> None:
        self.settings = settings
        self.cwd = cwd
        self.aws = aws
        self.cache = cache or cache_dir()
        if engine is not None:
            self.__dict__["engine"] = engine

    @cached_property
    def engine(self) -> DockerEngine:
        from runctl.aws.docker_engine import DockerEngine

        return DockerEngine.connect()

    @cached_property
    def ecr(self) -> Ecr:
        from runctl.aws.ecr import Ecr

        assert self.aws is not None, "pushing needs an AWS context"
        return Ecr(self.aws.client("ecr"))

    def code_tag(self, project: Project) -> str:
        """The default tag: the sha256 of the project's code bundle (packed again only when a
        file changed)."""
        from runctl.services.bundles.fingerprint import cached_code_sha

        return cached_code_sha(project.root, self.cache / "code")

    def plan(self, options: ImageOptions, *, for_build: bool = True) -> ImagePlan:
        """``options`` resolved and checked (UsageError / NotFoundError) before anything runs."""
        return plan_image(
            options, self.settings, self.cwd, code_tag=self.code_tag, for_build=for_build
        )

    def build(self, options: ImageOptions, *, on_output: OutputSink = _ignore) -> BuiltImage:
        """``docker build``: the image ``repository:tag`` on the local daemon."""
        plan = self.plan(options)
        return build_image(self.engine, plan, on_output=on_output)

    def push(self, options: ImageOptions, *, on_progress: ProgressSink = _ignore) -> PushedImage:
        """``docker push``: the local ``repository:tag`` to ECR (repository made if missing)."""
        return self._push(self.plan(options, for_build=False), on_progress)

    def build_push(
        self,
        options: ImageOptions,
        *,
        on_output: OutputSink = _ignore,
        on_progress: ProgressSink = _ignore,
    ) -> PublishedImage:
        """``docker build-push``: build, then push unless ECR holds this image already."""
        plan = self.plan(options)
        built = build_image(self.engine, plan, on_output=on_output)
        return PublishedImage(built, self._push(plan, on_progress))

    def _push(self, plan: ImagePlan, on_progress: ProgressSink) -> PushedImage:
        from runctl.services import tags

        labels = tags.resource_tags(
            project=plan.project.key,
            user=tags.current_user(),
            name=plan.repository,
            created=datetime.now(UTC),
        )
        repository, created = ensure_repository(
            self.ecr, plan.repository, keep_last_n=self.settings.docker.keep_last_n, tags=labels
        )
        pushed = push_image(
            self.engine,
            self.ecr,
            repository,
            image=plan.image,
            tag=plan.tag,
            on_progress=on_progress,
        )
        pushed.repository_created = created
        return pushed
