"""Typed wrapper around ECR: the repositories runctl pushes to and the registry login token.

:class:`Ecr` is used on both sides: ``runctl docker push`` creates the repository and logs in on
the laptop, and the runner logs in on the instance with the instance role (this module is in the
runtime bundle, so it stays Python 3.9 and boto3 only). The login token is what
``GetAuthorizationToken`` returns: base64 of ``AWS:<password>``, valid for 12 hours, for every
registry the caller may access
(https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetAuthorizationToken.html).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from runctl.aws.errors import aws_errors, error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient


@dataclass(frozen=True)
class Repository:
    """An ECR repository: its name, ARN and URI (``<registry host>/<name>``)."""

    name: str
    arn: str
    uri: str

    @property
    def registry(self) -> str:
        """The registry host of the repository's URI."""
        return self.uri.split("/", 1)[0]


@dataclass(frozen=True)
class RegistryLogin:
    """Credentials for ``docker login``: user ``AWS``, the token's password, the endpoint."""

    username: str
    password: str
    endpoint: str

    @property
    def registry(self) -> str:
        """The endpoint without its scheme (``<account>.dkr.ecr.<region>.amazonaws.com``)."""
        return self.endpoint.split("://", 1)[-1].rstrip("/")

    def __repr__(self) -> str:  # never print the password
        return f"RegistryLogin(username={self.username!r}, endpoint={self.endpoint!r})"


def _repository(raw: Mapping[str, Any]) -> Repository:
    return Repository(raw["repositoryName"], raw["repositoryArn"], raw["repositoryUri"])


class Ecr:
    """The ECR operations runctl uses."""

    def __init__(self, client: ECRClient) -> None:
        self.client = client

    def describe_repository(self, name: str) -> Repository | None:
        """The repository ``name``, or None when it does not exist."""
        try:
            found = self.client.describe_repositories(repositoryNames=[name])["repositories"]
        except ClientError as exc:
            if error_code(exc) == "RepositoryNotFoundException":
                return None
            raise translate(exc, "DescribeRepositories", name) from exc
        return _repository(found[0]) if found else None

    def create_repository(
        self, name: str, *, tags: Mapping[str, str], scan_on_push: bool = True
    ) -> Repository:
        """Create the repository, tagged, scanning images on push, tags mutable (a code tag is
        pushed again when the image under it changed)."""
        with aws_errors("CreateRepository", name):
            raw = self.client.create_repository(
                repositoryName=name,
                tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                imageTagMutability="MUTABLE",
                imageScanningConfiguration={"scanOnPush": scan_on_push},
            )["repository"]
        return _repository(raw)

    def put_lifecycle_policy(self, name: str, policy: Mapping[str, Any]) -> None:
        with aws_errors("PutLifecyclePolicy", name):
            self.client.put_lifecycle_policy(
                repositoryName=name, lifecyclePolicyText=json.dumps(policy)
            )

    def get_lifecycle_policy(self, name: str) -> dict[str, Any] | None:
        """The repository's lifecycle policy, or None when it has none."""
        try:
            raw = self.client.get_lifecycle_policy(repositoryName=name)
        except ClientError as exc:
            if error_code(exc) == "LifecyclePolicyNotFoundException":
                return None
            raise translate(exc, "GetLifecyclePolicy", name) from exc
        loaded: dict[str, Any] = json.loads(raw["lifecyclePolicyText"])
        return loaded

    def get_authorization_token(self) -> RegistryLogin:
        """A ``docker login`` for the caller's registry (AuthError when it may not log in)."""
        with aws_errors("GetAuthorizationToken", "ECR"):
            data = self.client.get_authorization_token()["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return RegistryLogin(user, password, data["proxyEndpoint"])


@dataclass(frozen=True)
class ImageDetail:
    """One image in a repository: its digest, tags, size and when it was pushed."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    size_bytes: int
    pushed_at: Any


def describe_repositories(client: ECRClient) -> list[Repository]:
    """Every repository of the registry in the client's region (all pages)."""
    found: list[Repository] = []
    with aws_errors("DescribeRepositories"):
        for page in client.get_paginator("describe_repositories").paginate():
            found.extend(_repository(raw) for raw in page.get("repositories", []))
    return found


def list_tags_for_resource(client: ECRClient, arn: str) -> dict[str, str]:
    """A repository's tags."""
    with aws_errors("ListTagsForResource", arn):
        raw = client.list_tags_for_resource(resourceArn=arn).get("tags", [])
    return {tag["Key"]: tag["Value"] for tag in raw}


def describe_images(client: ECRClient, repository: str) -> list[ImageDetail]:
    """Every image in ``repository`` (all pages)."""
    found: list[ImageDetail] = []
    with aws_errors("DescribeImages", repository):
        pages = client.get_paginator("describe_images").paginate(repositoryName=repository)
        for page in pages:
            for raw in page.get("imageDetails", []):
                found.append(
                    ImageDetail(
                        repository,
                        raw.get("imageDigest", ""),
                        tuple(raw.get("imageTags", [])),
                        int(raw.get("imageSizeInBytes", 0)),
                        raw.get("imagePushedAt"),
                    )
                )
    return found
