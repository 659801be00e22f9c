"""Typed wrapper around the IAM API: the instance role and instance profile ``aws setup`` makes.

Getters return None for a missing entity instead of raising, so callers can plan idempotently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from runctl.aws.errors import aws_errors, error_code, translate

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


@dataclass(frozen=True)
class Role:
    name: str
    arn: str
    trust_policy: dict[str, Any]


@dataclass(frozen=True)
class InstanceProfile:
    name: str
    arn: str
    role_names: tuple[str, ...]


def _document(raw: Any) -> dict[str, Any]:
    """IAM policy documents arrive as dicts (boto3 decodes them) or URL-encoded JSON."""
    if isinstance(raw, str):
        loaded: dict[str, Any] = json.loads(unquote(raw))
        return loaded
    return dict(raw or {})


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


class Iam:
    """The IAM operations runctl uses."""

    def __init__(self, client: IAMClient):
        self.client = client

    def _missing_is_none(self, exc: ClientError, action: str, resource: str) -> None:
        if error_code(exc) not in ("NoSuchEntity", "NoSuchEntityException"):
            raise translate(exc, action, resource) from exc

    def get_role(self, name: str) -> Role | None:
        try:
            raw = self.client.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            self._missing_is_none(exc, "GetRole", name)
            return None
        return Role(raw["RoleName"], raw["Arn"], _document(raw.get("AssumeRolePolicyDocument")))

    def create_role(
        self,
        name: str,
        trust_policy: Mapping[str, Any],
        *,
        description: str,
        tags: Mapping[str, str],
    ) -> Role:
        with aws_errors("CreateRole", name):
            raw = self.client.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust_policy),
                Description=description,
                Tags=_tag_list(tags),  # type: ignore[arg-type]
            )["Role"]
        return Role(raw["RoleName"], raw["Arn"], dict(trust_policy))

    def update_assume_role_policy(self, name: str, trust_policy: Mapping[str, Any]) -> None:
        with aws_errors("UpdateAssumeRolePolicy", name):
            self.client.update_assume_role_policy(
                RoleName=name, PolicyDocument=json.dumps(trust_policy)
            )

    def list_attached_role_policies(self, name: str) -> list[str]:
        """ARNs of the managed policies attached to a role."""
        arns: list[str] = []
        with aws_errors("ListAttachedRolePolicies", name):
            paginator = self.client.get_paginator("list_attached_role_policies")
            for page in paginator.paginate(RoleName=name):
                arns.extend(p["PolicyArn"] for p in page.get("AttachedPolicies", []))
        return arns

    def attach_role_policy(self, name: str, policy_arn: str) -> None:
        with aws_errors("AttachRolePolicy", name):
            self.client.attach_role_policy(RoleName=name, PolicyArn=policy_arn)

    def get_role_policy(self, role: str, policy_name: str) -> dict[str, Any] | None:
        """An inline policy's document, or None when the role has no such policy."""
        try:
            raw = self.client.get_role_policy(RoleName=role, PolicyName=policy_name)
        except ClientError as exc:
            self._missing_is_none(exc, "GetRolePolicy", f"{role}/{policy_name}")
            return None
        return _document(raw.get("PolicyDocument"))

    def put_role_policy(self, role: str, policy_name: str, document: Mapping[str, Any]) -> None:
        with aws_errors("PutRolePolicy", f"{role}/{policy_name}"):
            self.client.put_role_policy(
                RoleName=role, PolicyName=policy_name, PolicyDocument=json.dumps(document)
            )

    def get_instance_profile(self, name: str) -> InstanceProfile | None:
        try:
            raw = self.client.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        except ClientError as exc:
            self._missing_is_none(exc, "GetInstanceProfile", name)
            return None
        roles = tuple(r["RoleName"] for r in raw.get("Roles", []))
        return InstanceProfile(raw["InstanceProfileName"], raw["Arn"], roles)

    def create_instance_profile(self, name: str, *, tags: Mapping[str, str]) -> InstanceProfile:
        with aws_errors("CreateInstanceProfile", name):
            raw = self.client.create_instance_profile(
                InstanceProfileName=name,
                Tags=_tag_list(tags),  # type: ignore[arg-type]
            )["InstanceProfile"]
        return InstanceProfile(raw["InstanceProfileName"], raw["Arn"], ())

    def add_role_to_instance_profile(self, profile: str, role: str) -> None:
        with aws_errors("AddRoleToInstanceProfile", profile):
            self.client.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)

    def simulate_principal_policy(
        self,
        principal_arn: str,
        action: str,
        resource: str,
        context: Mapping[str, str] | None = None,
    ) -> str:
        """IAM's verdict on ``principal_arn`` doing ``action`` on ``resource``: ``allowed``,
        ``implicitDeny`` or ``explicitDeny`` (its identity policies only)."""
        entries = [
            {"ContextKeyName": key, "ContextKeyValues": [value], "ContextKeyType": "string"}
            for key, value in (context or {}).items()
        ]
        with aws_errors("SimulatePrincipalPolicy", principal_arn):
            raw = self.client.simulate_principal_policy(
                PolicySourceArn=principal_arn,
                ActionNames=[action],
                ResourceArns=[resource],
                ContextEntries=entries,  # type: ignore[arg-type]
            )
        results = raw.get("EvaluationResults", [])
        return str(results[0]["EvalDecision"]) if results else "implicitDeny"
