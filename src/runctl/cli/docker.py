"""``runctl docker build|push|build-push``: images for ``aws train --docker``, pushed to ECR.

Each command parses its options, makes one :class:`~runctl.services.images.session.ImageSession`
call and renders the result: the builder's output streams to stderr, a push shows a progress bar
per layer, and stdout carries the image (``--output json``: its document).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runctl.cli.output import Output
from runctl.cli.registry import group_help
from runctl.cli.state import OutputOption, command_output, get_state

if TYPE_CHECKING:
    from runctl.aws.docker_engine import LayerProgress
    from runctl.services.images.build import ImageOptions
    from runctl.services.images.push import PushedImage
    from runctl.services.images.session import ImageSession

docker_app = typer.Typer(help=group_help("docker"), rich_markup_mode=None, no_args_is_help=True)

Context = Annotated[str | None, typer.Argument(help="Build context (default: the project root).")]
Tag = Annotated[
    str | None,
    typer.Option("--tag", "-t", help="Image tag (default: the sha256 of the code bundle)."),
]
Dockerfile = Annotated[
    str | None,
    typer.Option("--dockerfile", "-f", help="Dockerfile (default: [docker] dockerfile)."),
]
BuildArg = Annotated[
    list[str] | None, typer.Option("--build-arg", help="K=V for the build (repeatable).")
]
Platform = Annotated[
    str | None, typer.Option("--platform", help="Target platform, e.g. linux/amd64.")
]
Repository = Annotated[
    str | None,
    typer.Option("--repository", help="ECR repository (default: runctl/<project>)."),
]
ProjectName = Annotated[str | None, typer.Option("--project-name")]


def _session(ctx: typer.Context) -> ImageSession:
    from runctl.services.images.session import ImageSession

    state = get_state(ctx)
    return ImageSession(state.config().settings, cwd=Path.cwd(), aws=state.aws())


def _options(
    context: str | None = None,
    tag: str | None = None,
    dockerfile: str | None = None,
    build_arg: list[str] | None = None,
    platform: str | None = None,
    repository: str | None = None,
    project_name: str | None = None,
) -> ImageOptions:
    from runctl.services.images.build import ImageOptions

    return ImageOptions(
        context=context, dockerfile=dockerfile, tag=tag, repository=repository,
        build_args=list(build_arg or []), platform=platform, project_name=project_name,
    )  # fmt: skip


def _layers(
    update: Callable[[str, str, int | None, int | None], None],
) -> Callable[[LayerProgress], None]:
    def show(event: LayerProgress) -> None:
        done = event.total if event.done else event.current
        update(f"layer {event.layer}", event.status, done, event.total)

    return show


def _say_pushed(out: Output, pushed: PushedImage) -> None:
    if pushed.repository_created:
        out.info(f"created ECR repository {pushed.repository}")
    if pushed.pushed:
        out.success(f"pushed {pushed.uri} ({pushed.layers_pushed} new layers)")
    else:
        out.success(f"{pushed.uri} is unchanged in the registry: nothing pushed")


@docker_app.command("build")
def build(
    ctx: typer.Context,
    context: Context = None,
    tag: Tag = None,
    dockerfile: Dockerfile = None,
    build_arg: BuildArg = None,
    platform: Platform = None,
    repository: Repository = None,
    project_name: ProjectName = None,
    push: Annotated[bool, typer.Option("--push", help="Push it too (as build-push).")] = False,
    output: OutputOption = None,
) -> None:
    """Build an image from the project's Dockerfile; prints repository:tag."""
    if push:
        _build_push(ctx, _options(context, tag, dockerfile, build_arg, platform, repository,
                                  project_name), output)  # fmt: skip
        return
    out = command_output(ctx, output)
    options = _options(context, tag, dockerfile, build_arg, platform, repository, project_name)
    built = _session(ctx).build(options, on_output=out.stream)
    for warning in _warnings(built.skipped):
        out.warn(warning)
    out.success(f"built {built.image} ({built.image_id[:19]})")
    out.document(built.to_dict(), lambda o: o.line(built.image))


@docker_app.command("push")
def push(
    ctx: typer.Context,
    tag: Tag = None,
    repository: Repository = None,
    project_name: ProjectName = None,
    output: OutputOption = None,
) -> None:
    """Push repository:tag to ECR (the repository is created if missing); prints its URI."""
    out = command_output(ctx, output)
    options = _options(tag=tag, repository=repository, project_name=project_name)
    with out.item_progress() as update:
        pushed = _session(ctx).push(options, on_progress=_layers(update))
    _say_pushed(out, pushed)
    out.document(pushed.to_dict(), lambda o: o.line(pushed.uri))


@docker_app.command("build-push")
def build_push(
    ctx: typer.Context,
    context: Context = None,
    tag: Tag = None,
    dockerfile: Dockerfile = None,
    build_arg: BuildArg = None,
    platform: Platform = None,
    repository: Repository = None,
    project_name: ProjectName = None,
    output: OutputOption = None,
) -> None:
    """Build, then push to ECR unless the registry has this image already; prints its URI."""
    options = _options(context, tag, dockerfile, build_arg, platform, repository, project_name)
    _build_push(ctx, options, output)


def _build_push(ctx: typer.Context, options: ImageOptions, output: str | None) -> None:
    out = command_output(ctx, output)
    with out.item_progress() as update:
        published = _session(ctx).build_push(
            options, on_output=out.stream, on_progress=_layers(update)
        )
    for warning in _warnings(published.built.skipped):
        out.warn(warning)
    _say_pushed(out, published.pushed)
    out.document(published.to_dict(), lambda o: o.line(published.pushed.uri))


def _warnings(skipped: dict[str, list[str]]) -> list[str]:
    from runctl.services.images.context import skipped_warnings

    return skipped_warnings(skipped)
