"""Typed wrapper around Service Quotas: the applied value of one quota (``doctor``).

GetServiceQuota answers the account's applied value; a quota never raised has no applied value
and answers NoSuchResourceException, in which case GetAWSDefaultServiceQuota gives the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from runctl.aws.errors import aws_errors, error_code

NO_SUCH = {"NoSuchResourceException", "NoSuchResource"}


@dataclass(frozen=True)
class Quota:
    """A quota's value (vCPUs for EC2's instance quotas) and whether it is the AWS default."""

    service_code: str
    quota_code: str
    name: str
    value: float
    default: bool = False


class ServiceQuotas:
    """Service Quotas on one regional client (``service-quotas``)."""

    def __init__(self, client: Any):
        self.client = client

    def get_service_quota(self, service_code: str, quota_code: str) -> Quota | None:
        """The applied quota, else the AWS default, else None (unknown to Service Quotas).
        Raises AuthError when the caller may not read quotas."""
        for operation, default in (("GetServiceQuota", False), ("GetAWSDefaultServiceQuota", True)):
            raw = self._quota(operation, service_code, quota_code)
            if raw is not None:
                return Quota(
                    service_code,
                    quota_code,
                    str(raw.get("QuotaName", quota_code)),
                    float(raw["Value"]),
                    default,
                )
        return None

    def _quota(self, operation: str, service_code: str, quota_code: str) -> dict[str, Any] | None:
        call = getattr(self.client, _snake(operation))
        with aws_errors(operation, f"{service_code}/{quota_code}"):
            try:
                raw: dict[str, Any] = call(ServiceCode=service_code, QuotaCode=quota_code)["Quota"]
            except ClientError as exc:
                if error_code(exc) in NO_SUCH:
                    return None
                raise
        return raw


def _snake(operation: str) -> str:
    return {
        "GetServiceQuota": "get_service_quota",
        "GetAWSDefaultServiceQuota": "get_aws_default_service_quota",
    }[operation]
