"""The ECR wrapper against moto: repositories, lifecycle policies, the login token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from runctl.aws.ecr import Ecr
from runctl.errors import AuthError
from runctl.services.images.push import ensure_repository, keep_last_policy


@pytest.fixture
def ecr() -> Iterator[Ecr]:
    with mock_aws():
        yield Ecr(boto3.client("ecr", region_name="us-east-1"))


def test_a_missing_repository_is_none_and_ensure_creates_it_once(ecr: Ecr) -> None:
    assert ecr.describe_repository("runctl/demo") is None
    repo, created = ensure_repository(
        ecr, "runctl/demo", keep_last_n=5, tags={"runctl:managed": "true"}
    )
    assert created is True
    assert repo.uri == "123456789012.dkr.ecr.us-east-1.amazonaws.com/runctl/demo"
    assert repo.registry == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert repo.arn == "arn:aws:ecr:us-east-1:123456789012:repository/runctl/demo"
    assert ecr.get_lifecycle_policy("runctl/demo") == keep_last_policy(5)
    raw: Any = ecr.client.describe_repositories(repositoryNames=["runctl/demo"])
    described = raw["repositories"][0]
    assert described["imageScanningConfiguration"] == {"scanOnPush": True}
    assert described["imageTagMutability"] == "MUTABLE"
    tags = ecr.client.list_tags_for_resource(resourceArn=repo.arn)["tags"]
    assert tags == [{"Key": "runctl:managed", "Value": "true"}]

    again, created = ensure_repository(ecr, "runctl/demo", keep_last_n=9, tags={})
    assert (again, created) == (repo, False)
    assert ecr.get_lifecycle_policy("runctl/demo") == keep_last_policy(5)  # left as it was


def test_keep_last_policy_expires_all_but_the_newest() -> None:
    (rule,) = keep_last_policy(3)["rules"]
    assert rule["selection"] == {
        "tagStatus": "any",
        "countType": "imageCountMoreThan",
        "countNumber": 3,
    }
    assert rule["action"] == {"type": "expire"}


def test_the_login_is_user_and_password_for_the_registry(ecr: Ecr) -> None:
    login = ecr.get_authorization_token()
    assert login.username == "AWS" and login.password
    assert login.registry == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert login.password not in repr(login)


def test_a_repository_without_a_lifecycle_policy_has_none(ecr: Ecr) -> None:
    ecr.create_repository("runctl/bare", tags={})
    assert ecr.get_lifecycle_policy("runctl/bare") is None


def test_a_denied_login_is_an_auth_error() -> None:
    """moto lets every caller log in; AWS answers AccessDeniedException to a role without
    ecr:GetAuthorizationToken."""
    from botocore.stub import Stubber

    client = boto3.client(
        "ecr", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_authorization_token",
            service_error_code="AccessDeniedException",
            http_status_code=400,
        )
        with pytest.raises(AuthError, match="GetAuthorizationToken"):
            Ecr(client).get_authorization_token()
