"""Typed wrapper around the SSM API: parameters and managed-instance information.

Small and generic on purpose: the job engine adds SendCommand / GetCommandInvocation here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from runctl.aws.errors import aws_errors

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

#: Public parameter holding the newest Amazon Linux 2023 AMI id (``-arm64`` for Graviton).
AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"


@dataclass(frozen=True)
class ManagedInstance:
    """What DescribeInstanceInformation says about one instance's SSM agent."""

    instance_id: str
    ping_status: str
    agent_version: str | None = None
    last_ping: datetime | None = None
    platform: str | None = None

    @property
    def online(self) -> bool:
        return self.ping_status == "Online"


class Ssm:
    """The SSM operations runctl uses, on one regional client."""

    def __init__(self, client: SSMClient):
        self.client = client

    def get_parameter(self, name: str) -> str:
        """A parameter's value; NotFoundError when it does not exist."""
        with aws_errors("GetParameter", name):
            response = self.client.get_parameter(Name=name)
        return str(response["Parameter"]["Value"])

    def describe_instance_information(
        self, instance_ids: Sequence[str]
    ) -> dict[str, ManagedInstance]:
        """SSM agent status by instance id; an instance missing from the map is not registered."""
        if not instance_ids:
            return {}
        found: dict[str, ManagedInstance] = {}
        with aws_errors("DescribeInstanceInformation", ",".join(instance_ids)):
            paginator = self.client.get_paginator("describe_instance_information")
            pages = paginator.paginate(
                Filters=[{"Key": "InstanceIds", "Values": list(instance_ids)}]
            )
            for page in pages:
                for raw in page.get("InstanceInformationList", []):
                    instance_id = raw.get("InstanceId", "")
                    found[instance_id] = ManagedInstance(
                        instance_id=instance_id,
                        ping_status=raw.get("PingStatus", "Unknown"),
                        agent_version=raw.get("AgentVersion"),
                        last_ping=raw.get("LastPingDateTime"),
                        platform=raw.get("PlatformName"),
                    )
        return found
