"""The Docker Engine, through the docker SDK: the one module that imports it (lazily).

The SDK is the optional ``docker`` extra (``pip install "runctl[docker]"``); without it, or
without a daemon to talk to (``DOCKER_HOST``, else the local socket), :meth:`DockerEngine.connect`
raises an error saying how to get one. Raw SDK answers stop here: builds and pushes report their
progress through callbacks with typed values, and the errors the daemon reports *inside* a build
or push stream (the SDK does not raise for them) become runctl errors:

- a build step that fails (``RUN`` exiting non-zero, a base image that cannot be pulled) or a
  Dockerfile the daemon cannot parse: :class:`~runctl.errors.ImageBuildError` naming the step;
- a push the registry refuses: AuthError (``denied``, ``unauthorized``), NotFoundError (no such
  repository or local image), otherwise RunctlError with the registry's words.

:func:`context_paths` applies ``.dockerignore`` with Docker's own semantics (the SDK's port of
moby's pattern matcher), so the build context runctl sends is the one ``docker build`` would.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from runctl.errors import (
    AuthError,
    ConfigError,
    ImageBuildError,
    NotFoundError,
    RunctlError,
    WrongStateError,
)

if TYPE_CHECKING:
    from docker import DockerClient

INSTALL_HINT = 'install the Docker SDK: pip install "runctl[docker]"'
DAEMON_HINT = (
    "start Docker (e.g. `sudo systemctl start docker`), or point DOCKER_HOST at a running daemon"
)
_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_DENIED = ("denied", "unauthorized", "authentication required", "no basic auth credentials")


def sdk_installed() -> bool:
    """True when the docker SDK can be imported (without importing it)."""
    return importlib.util.find_spec("docker") is not None


@dataclass(frozen=True)
class LayerProgress:
    """One push event of one layer: ``status`` (Preparing, Waiting, Pushing, Pushed, Layer
    already exists, ``Mounted from <repository>`` when the registry lends the layer from another
    of its repositories), bytes ``current`` of ``total`` while pushing."""

    layer: str
    status: str
    current: int | None = None
    total: int | None = None

    @property
    def done(self) -> bool:
        return self.status in ("Pushed", "Layer already exists") or self.status.startswith(
            "Mounted from"
        )

    @property
    def uploaded(self) -> bool:
        """True when the registry received this layer's bytes (it did not have it)."""
        return self.status == "Pushed"


@dataclass(frozen=True)
class RegistryAuth:
    """Who pushes or pulls, and where (``registry``: host[:port])."""

    username: str
    password: str
    registry: str

    def as_config(self) -> dict[str, str]:
        return {
            "username": self.username,
            "password": self.password,
            "serveraddress": self.registry,
        }

    def __repr__(self) -> str:  # never print the password
        return f"RegistryAuth(username={self.username!r}, registry={self.registry!r})"


def read_dockerignore(root: Path) -> list[str]:
    """The patterns of ``root/.dockerignore`` (comments and blank lines dropped), as
    ``docker build`` reads them."""
    path = root / ".dockerignore"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def context_paths(root: Path, patterns: list[str], dockerfile: str) -> set[str]:
    """Relative paths (files, directories and links, ``/``-separated) of ``root`` that
    ``patterns`` (``.dockerignore`` syntax) leave in the context; the Dockerfile and
    ``.dockerignore`` always stay, as with ``docker build``."""
    from docker.utils.build import exclude_paths

    return {p.replace("\\", "/") for p in exclude_paths(str(root), list(patterns), dockerfile)}


class DockerEngine:
    """The daemon operations runctl uses."""

    def __init__(self, client: DockerClient) -> None:
        self.client = client

    @classmethod
    def connect(cls) -> DockerEngine:
        """An engine on the daemon the environment names (``DOCKER_HOST``, else the local
        socket). ConfigError without the SDK, WrongStateError/AuthError when the daemon cannot
        be reached or refuses this user."""
        if not sdk_installed():
            raise ConfigError("the Docker SDK is not installed", hint=INSTALL_HINT)
        import docker
        from docker.errors import DockerException

        try:
            client = docker.from_env()
        except DockerException as exc:
            text = str(exc)
            if "Permission denied" in text or "PermissionError" in text:
                raise AuthError(
                    f"the Docker daemon refused this user: {text}",
                    hint="add yourself to the docker group (and log in again), or use sudo",
                ) from None
            raise WrongStateError(
                f"cannot reach the Docker daemon: {text}", hint=DAEMON_HINT, resource="docker"
            ) from None
        return cls(client)

    # -- images ------------------------------------------------------------------------------

    def build(
        self,
        context: BinaryIO,
        *,
        dockerfile: str,
        tag: str,
        build_args: Mapping[str, str] | None = None,
        platform: str | None = None,
        on_output: Callable[[str], None] = lambda text: None,
    ) -> str:
        """Build the image from a tar ``context`` (the Dockerfile at ``dockerfile`` inside it),
        tag it ``tag`` and return its id. The daemon's output goes to ``on_output`` as it comes.
        Raises ImageBuildError naming the failing step."""
        from docker.errors import APIError

        step: str | None = None
        image_id: str | None = None
        try:
            events = self.client.api.build(
                fileobj=context,
                custom_context=True,
                dockerfile=dockerfile,
                tag=tag,
                buildargs=dict(build_args or {}),
                platform=platform,
                rm=True,
                forcerm=True,
                decode=True,
            )
            for event in events:
                text = event.get("stream")
                if text:
                    on_output(text)
                    match = _STEP_RE.match(text.strip())
                    if match:
                        step = text.strip()
                if "error" in event or "errorDetail" in event:
                    raise build_error(event, step)
                aux = event.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = str(aux["ID"])
        except APIError as exc:
            raise ImageBuildError(
                f"docker build failed: {exc.explanation or exc}",
                hint="fix the Dockerfile and build again",
                resource=tag,
            ) from None
        if image_id is None:
            image_id = self.image_id(tag)
        if image_id is None:
            raise ImageBuildError(f"docker build of {tag} ended without an image", resource=tag)
        return image_id

    def image_id(self, name: str) -> str | None:
        """The id of the local image ``name``, or None when there is none."""
        info = self._inspect(name)
        return str(info["Id"]) if info else None

    def repo_digests(self, name: str) -> list[str]:
        """``repository@sha256:...`` of every registry the local image ``name`` was pushed to
        or pulled from."""
        info = self._inspect(name)
        return list(info.get("RepoDigests") or []) if info else []

    def _inspect(self, name: str) -> dict[str, Any] | None:
        from docker.errors import ImageNotFound

        try:
            info: dict[str, Any] = self.client.api.inspect_image(name)  # type: ignore[no-untyped-call]
        except ImageNotFound:
            return None
        return info

    def tag(self, image: str, repository: str, tag: str) -> None:
        """Name the local ``image`` ``repository:tag`` too."""
        self.client.api.tag(image, repository, tag, force=True)

    # -- registries --------------------------------------------------------------------------

    def login(self, auth: RegistryAuth) -> None:
        """Check ``auth`` with the registry (AuthError when it refuses)."""
        from docker.errors import APIError

        try:
            self.client.api.login(auth.username, auth.password, registry=auth.registry, reauth=True)
        except APIError as exc:
            raise AuthError(
                f"the registry {auth.registry} refused the login: {exc.explanation or exc}",
                hint="check the credentials (for ECR: your IAM identity's ecr permissions)",
                resource=auth.registry,
            ) from None

    def registry_digest(self, reference: str, auth: RegistryAuth) -> str | None:
        """The manifest digest the registry holds for ``reference`` (``name:tag``), or None when
        it holds nothing under that tag."""
        from docker.errors import APIError, NotFound

        try:
            found = self.client.api.inspect_distribution(  # type: ignore[no-untyped-call]
                reference, auth_config=auth.as_config()
            )
        except NotFound:
            return None
        except APIError as exc:
            text = str(exc.explanation or exc)
            if "manifest unknown" in text or "not found" in text.lower():
                return None
            raise registry_error(text, reference) from None
        digest = (found.get("Descriptor") or {}).get("digest")
        return str(digest) if digest else None

    def push(
        self,
        repository: str,
        tag: str,
        auth: RegistryAuth,
        on_progress: Callable[[LayerProgress], None] = lambda event: None,
    ) -> str:
        """Push ``repository:tag``; its manifest digest. Each layer's progress goes to
        ``on_progress``. Raises what the registry's refusal means (see the module)."""
        from docker.errors import APIError

        digest: str | None = None
        reference = f"{repository}:{tag}"
        try:
            events: Iterable[dict[str, Any]] = self.client.api.push(
                repository, tag=tag, stream=True, decode=True, auth_config=auth.as_config()
            )
            for event in events:
                if "error" in event or "errorDetail" in event:
                    detail = event.get("errorDetail") or {}
                    raise registry_error(str(detail.get("message") or event["error"]), reference)
                layer = event.get("id")
                if layer and event.get("status"):
                    progress = event.get("progressDetail") or {}
                    on_progress(
                        LayerProgress(
                            str(layer),
                            str(event["status"]),
                            progress.get("current"),
                            progress.get("total"),
                        )
                    )
                aux = event.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
        except APIError as exc:
            raise registry_error(str(exc.explanation or exc), reference) from None
        if digest is None:
            raise RunctlError(f"pushing {reference} ended without a digest", resource=reference)
        return digest


def build_error(event: Mapping[str, Any], step: str | None) -> ImageBuildError:
    """The ImageBuildError for an error event of a build stream, naming ``step``."""
    detail = event.get("errorDetail") or {}
    message = str(detail.get("message") or event.get("error") or "unknown error").strip()
    where = f" at {step}" if step else ""
    return ImageBuildError(
        f"docker build failed{where}: {message}",
        step=step,
        hint="fix that step of the Dockerfile and build again",
    )


def registry_error(message: str, reference: str) -> RunctlError:
    """The runctl error for a registry's refusal of ``reference`` (see the module)."""
    lowered = message.lower()
    if any(word in lowered for word in _DENIED):
        return AuthError(
            f"the registry refused {reference}: {message}",
            hint="check that you may push to this repository (ECR: ecr:InitiateLayerUpload, "
            "ecr:PutImage ...), then retry",
            resource=reference,
        )
    if "does not exist locally" in lowered or "name unknown" in lowered:
        return NotFoundError(
            f"cannot push {reference}: {message}",
            hint="build the image first (`runctl docker build`), or check --repository/--tag",
            resource=reference,
        )
    return RunctlError(
        f"pushing {reference} failed: {message}",
        hint="check that the registry is reachable, then retry",
        resource=reference,
    )
