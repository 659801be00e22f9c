"""Typed wrapper around STS: who the caller is (account id for default resource names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runctl.aws.errors import aws_errors

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient


@dataclass(frozen=True)
class Identity:
    account_id: str
    arn: str


def get_caller_identity(client: STSClient) -> Identity:
    """The account and ARN of the credentials in use (AuthError when there are none)."""
    with aws_errors("GetCallerIdentity"):
        raw = client.get_caller_identity()
    return Identity(account_id=raw["Account"], arn=raw["Arn"])
