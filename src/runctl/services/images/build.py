"""Building an image: what to build (checked before Docker or AWS is asked), and the build.

:func:`plan_image` resolves a docker command's options: the context (default: the project root),
the Dockerfile (``--dockerfile`` relative to here, else ``[docker] dockerfile`` in the context),
the repository (``--repository``, ``[docker] repository``, else ``runctl/<project>``), the tag
(``--tag``, else the sha256 of the project's code bundle, so the same code gives the same tag),
``--build-arg K=V`` and ``--platform OS/ARCH[/VARIANT]``. Bad input is a UsageError (exit 2), a
missing context or Dockerfile a NotFoundError (exit 6).

:func:`build_image` sends the context (:mod:`runctl.services.images.context`), streams the
builder's output and, when a step fails, names the Dockerfile line it came from.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runctl.errors import ImageBuildError, NotFoundError, UsageError
from runctl.job.images import check_repository, check_tag
from runctl.paths import Project

if TYPE_CHECKING:
    from runctl.aws.docker_engine import DockerEngine
    from runctl.config import Settings

REPOSITORY_PREFIX = "runctl/"
_PLATFORM_RE = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$")
_ARG_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STEP_NUMBER_RE = re.compile(r"^Step (\d+)/\d+ : ")


@dataclass(frozen=True)
class ImageOptions:
    """What a docker command was asked, before anything is resolved."""

    context: str | None = None
    dockerfile: str | None = None
    tag: str | None = None
    repository: str | None = None
    build_args: Sequence[str] = ()
    platform: str | None = None
    project_name: str | None = None


@dataclass(frozen=True)
class ImagePlan:
    """The options resolved: the image ``repository:tag`` and, for a build, what it is made of."""

    project: Project
    repository: str
    tag: str
    context: Path
    dockerfile: Path
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None

    @property
    def image(self) -> str:
        """The local image name: ``repository:tag``."""
        return f"{self.repository}:{self.tag}"


@dataclass
class BuiltImage:
    """An image built here."""

    image: str
    image_id: str
    repository: str
    tag: str
    context_files: int
    context_bytes: int
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``docker build`` (stable keys)."""
        return {
            "image": self.image,
            "image_id": self.image_id,
            "repository": self.repository,
            "tag": self.tag,
            "context_files": self.context_files,
            "context_bytes": self.context_bytes,
            "skipped": self.skipped,
        }


def default_repository(settings: Settings, project: Project) -> str:
    """``[docker] repository``, else ``runctl/<project>`` (what ``aws setup`` lets instances
    pull)."""
    return settings.docker.repository or f"{REPOSITORY_PREFIX}{project.key}"


def parse_build_args(pairs: Sequence[str]) -> dict[str, str]:
    """``["K=V", ...]`` -> dict; UsageError for a pair without a valid name."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _ARG_NAME_RE.match(name):
            raise UsageError(f"--build-arg {pair!r} is not NAME=VALUE", hint="e.g. --build-arg V=1")
        found[name] = value
    return found


def plan_image(
    options: ImageOptions,
    settings: Settings,
    cwd: Path,
    *,
    code_tag: Callable[[Project], str],
    for_build: bool = True,
) -> ImagePlan:
    """Resolve and check ``options`` (see the module); ``code_tag`` gives the default tag.

    ``for_build`` False (``docker push``) skips the context and Dockerfile checks.
    """
    project = Project.find(cwd, options.project_name or settings.aws.project_name)
    try:
        repository = check_repository(options.repository or default_repository(settings, project))
        tag = check_tag(options.tag) if options.tag else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if options.platform and not _PLATFORM_RE.match(options.platform):
        raise UsageError(
            f"--platform {options.platform!r} is not OS/ARCH[/VARIANT]", hint="e.g. linux/amd64"
        )
    build_args = parse_build_args(options.build_args)
    context = (cwd / options.context).resolve() if options.context else project.root
    if options.dockerfile:
        dockerfile = (cwd / options.dockerfile).resolve()
    else:
        dockerfile = context / settings.docker.dockerfile
    if for_build:
        if not context.is_dir():
            raise NotFoundError(
                f"build context {context} is not a directory", resource=str(context)
            )
        if not dockerfile.is_file():
            raise NotFoundError(
                f"no Dockerfile at {dockerfile}",
                hint="pass --dockerfile PATH, or set [docker] dockerfile in .runctl.toml",
                resource=str(dockerfile),
            )
    return ImagePlan(
        project=project,
        repository=repository,
        tag=tag or code_tag(project),
        context=context,
        dockerfile=dockerfile,
        build_args=build_args,
        platform=options.platform,
    )


def build_image(
    engine: DockerEngine, plan: ImagePlan, *, on_output: Callable[[str], None]
) -> BuiltImage:
    """Build ``plan`` as ``repository:tag``; the builder's output goes to ``on_output``.

    Raises ImageBuildError (exit 7) naming the Dockerfile line of a failing step.
    """
    from runctl.services.images.context import select_context, write_context

    context = select_context(plan.context, plan.dockerfile)
    with tempfile.TemporaryFile(prefix="runctl-context-") as archive:
        size = write_context(context, archive)
        archive.seek(0)
        try:
            image_id = engine.build(
                archive,
                dockerfile=context.dockerfile,
                tag=plan.image,
                build_args=plan.build_args,
                platform=plan.platform,
                on_output=on_output,
            )
        except ImageBuildError as err:
            raise _located(err, plan.dockerfile) from None
    return BuiltImage(
        image=plan.image,
        image_id=image_id,
        repository=plan.repository,
        tag=plan.tag,
        context_files=context.files,
        context_bytes=size,
        skipped=context.skipped,
    )


def instruction_lines(text: str) -> list[int]:
    """The 1-based line on which each instruction of a Dockerfile starts, in order (what the
    builder counts as steps): comments and blank lines skipped (inside a ``\\`` continuation
    too, as Docker's parser does), continuations joined."""
    starts: list[int] = []
    continued = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not continued:
            starts.append(number)
        continued = line.endswith("\\")
    return starts


def _located(err: ImageBuildError, dockerfile: Path) -> ImageBuildError:
    """``err`` with the Dockerfile line of its step, when it can be found."""
    match = _STEP_NUMBER_RE.match(err.step or "")
    if match is None:
        return err
    try:
        lines = instruction_lines(dockerfile.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return err
    step = int(match.group(1))
    if not 0 < step <= len(lines):
        return err
    where = f"{dockerfile.name} line {lines[step - 1]}"
    return ImageBuildError(
        err.message.replace("docker build failed at ", f"docker build failed at {where}, ", 1),
        step=err.step,
        hint=err.hint,
        resource=f"{dockerfile}:{lines[step - 1]}",
    )
