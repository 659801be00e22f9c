"""Service Quotas' EC2 quotas, which moto does not know.

moto's Service Quotas answers only the ``vpc`` service code (every ``ec2`` quota is
NoSuchResourceException). AWS answers GetServiceQuota with the account's applied value and
GetAWSDefaultServiceQuota with the default. ``Cloud.set_service_quota(service, code, value)``
sets a quota's value; the gateway then answers both operations for it (per region, as AWS's
quotas are regional) and leaves the rest to moto.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tests.cloud.protocol import JSON, Request, Response, error_response, json_response

HANDLED = ("GetServiceQuota", "GetAWSDefaultServiceQuota")


@dataclass
class ServiceQuotaValues:
    """Quota values by (region, service code, quota code)."""

    values: dict[tuple[str, str, str], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.values.clear()

    def set(self, region: str, service_code: str, quota_code: str, value: float) -> None:
        with self.lock:
            self.values[(region, service_code, quota_code)] = value

    def answers(self, req: Request) -> bool:
        return req.service == "servicequotas" and req.operation in HANDLED

    def describe(self, req: Request) -> Response:
        body = req.json_body or {}
        service, code = str(body.get("ServiceCode", "")), str(body.get("QuotaCode", ""))
        with self.lock:
            value = self.values.get((req.region or "", service, code))
        if value is None:
            return error_response(
                JSON, "NoSuchResourceException", f"quota {service}/{code} does not exist", 400
            )
        quota = {
            "ServiceCode": service,
            "QuotaCode": code,
            "QuotaName": f"{service} quota {code}",
            "Value": value,
            "Unit": "None",
            "Adjustable": True,
        }
        return json_response({"Quota": quota})
