"""Pushing an image to ECR: the repository, the login, and a push only when something changed.

:func:`ensure_repository` creates the repository when it is missing -- tagged like everything
runctl creates, scanning images on push, with a lifecycle policy that expires all but the newest
``[docker] keep_last_n`` images -- and leaves an existing one as it is.

:func:`push_image` logs in with ECR's authorization token (the daemon checks it with the
registry), names the local image ``<repository URI>:<tag>`` and asks the registry which manifest
it holds under that tag. When that manifest is one this very image was pushed as (the local
image's ``RepoDigests``), nothing is pushed: an unchanged image costs one registry lookup.
Otherwise the layers go up, each reporting its progress, and the result carries the manifest's
digest, which pins exactly this image (``uri@digest``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runctl.errors import NotFoundError

if TYPE_CHECKING:
    from runctl.aws.docker_engine import DockerEngine, LayerProgress
    from runctl.aws.ecr import Ecr, Repository


def keep_last_policy(count: int) -> dict[str, Any]:
    """An ECR lifecycle policy expiring every image but the newest ``count``."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"runctl: keep the last {count} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": count,
                },
                "action": {"type": "expire"},
            }
        ]
    }


@dataclass
class PushedImage:
    """An image in ECR: its URI (``<registry>/<repository>:<tag>``) and manifest digest."""

    uri: str
    digest: str
    repository: str
    repository_uri: str
    repository_arn: str
    tag: str
    image_id: str
    pushed: bool
    repository_created: bool = False
    layers_pushed: int = 0

    @property
    def reference(self) -> str:
        """``uri@digest``: exactly this image, even if the tag moves later."""
        return f"{self.uri}@{self.digest}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``docker push`` (stable keys)."""
        return {
            "uri": self.uri,
            "digest": self.digest,
            "reference": self.reference,
            "repository": self.repository,
            "repository_uri": self.repository_uri,
            "tag": self.tag,
            "image_id": self.image_id,
            "pushed": self.pushed,
            "layers_pushed": self.layers_pushed,
            "repository_created": self.repository_created,
        }


def ensure_repository(
    ecr: Ecr, name: str, *, keep_last_n: int, tags: Mapping[str, str]
) -> tuple[Repository, bool]:
    """The repository ``name`` (created as the module says when missing); True when created."""
    found = ecr.describe_repository(name)
    if found is not None:
        return found, False
    created = ecr.create_repository(name, tags=tags)
    ecr.put_lifecycle_policy(name, keep_last_policy(keep_last_n))
    return created, True


def push_image(
    engine: DockerEngine,
    ecr: Ecr,
    repository: Repository,
    *,
    image: str,
    tag: str,
    on_progress: Callable[[LayerProgress], None] = lambda event: None,
) -> PushedImage:
    """Push the local ``image`` to ``repository`` as ``tag`` unless the registry already holds
    it there. Raises NotFoundError when there is no local ``image``, AuthError when the registry
    refuses the login or the push."""
    from runctl.aws.docker_engine import RegistryAuth

    image_id = engine.image_id(image)
    if image_id is None:
        raise NotFoundError(
            f"there is no local image {image}",
            hint="build it first: `runctl docker build` (or `runctl docker build-push`)",
            resource=image,
        )
    login = ecr.get_authorization_token()
    auth = RegistryAuth(login.username, login.password, repository.registry)
    engine.login(auth)
    engine.tag(image_id, repository.uri, tag)
    uri = f"{repository.uri}:{tag}"
    remote = engine.registry_digest(uri, auth)
    result = PushedImage(
        uri=uri,
        digest=remote or "",
        repository=repository.name,
        repository_uri=repository.uri,
        repository_arn=repository.arn,
        tag=tag,
        image_id=image_id,
        pushed=False,
    )
    if remote is not None and f"{repository.uri}@{remote}" in engine.repo_digests(image_id):
        return result

    uploaded: set[str] = set()

    def progress(event: LayerProgress) -> None:
        if event.uploaded:
            uploaded.add(event.layer)
        on_progress(event)

    result.digest = engine.push(repository.uri, tag, auth, progress)
    result.pushed = True
    result.layers_pushed = len(uploaded)
    return result
