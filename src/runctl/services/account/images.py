"""The container images runctl pushed: ``resources list|summary`` count and price them.

``runctl docker push`` creates one ECR repository per project, tagged like everything runctl
creates (``runctl:managed``, ``runctl:project``, ``runctl:user``), with a lifecycle policy that
keeps the newest ``docker.keep_last_n`` images. The images of the scope's repositories are
listed with their size and what storing them costs (ECR: $0.10 per GB-month, us-east-1). Cleanup
leaves images to that lifecycle policy: a job may be about to pull one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from runctl.services import tags as tagging

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

    from runctl.services.account.resources import Scope

ECR_GB_MONTH = 0.10
GIB = 1024**3


@dataclass
class ImageRow:
    """One image of a runctl repository."""

    region: str
    repository: str
    project: str | None
    user: str | None
    digest: str
    tags: list[str]
    size_bytes: int
    pushed_at: datetime | None

    @property
    def month_usd(self) -> float:
        return round(self.size_bytes / GIB * ECR_GB_MONTH, 4)


def list_images(client: ECRClient, scope: Scope) -> list[ImageRow]:
    """The images of the runctl repositories of ``scope`` in the client's region."""
    from runctl.aws.ecr import describe_images, describe_repositories, list_tags_for_resource

    region = client.meta.region_name
    rows: list[ImageRow] = []
    for repository in describe_repositories(client):
        labels = list_tags_for_resource(client, repository.arn)
        if not tagging.is_managed(labels):
            continue
        project, user = labels.get(tagging.PROJECT), labels.get(tagging.USER)
        if (scope.project and project != scope.project) or (scope.user and user != scope.user):
            continue
        for image in describe_images(client, repository.name):
            rows.append(ImageRow(region, repository.name, project, user, image.digest,
                                 list(image.tags), image.size_bytes, image.pushed_at))  # fmt: skip
    return rows
