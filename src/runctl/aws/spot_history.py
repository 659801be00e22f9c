"""EC2's spot price history over a time window: the prices a spot instance actually paid.

``Ec2.describe_spot_price_history`` answers the price in effect at one moment; a job's cost
needs every change while it ran. With ``StartTime``/``EndTime`` AWS returns every change in the
window plus, per zone and product, the last change before ``StartTime`` (the price in effect
then): https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSpotPriceHistory.html
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from runctl.aws.ec2 import SpotPrice
from runctl.aws.errors import aws_errors

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

LINUX = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]


class SpotHistory:
    """DescribeSpotPriceHistory over a window, on one regional EC2 client."""

    def __init__(self, client: EC2Client):
        self.client = client

    def spot_price_changes(
        self, instance_type: str, availability_zone: str, start: datetime, end: datetime
    ) -> list[SpotPrice]:
        """The Linux prices of ``instance_type`` in ``availability_zone`` in effect from
        ``start`` to ``end``, oldest first (every page read)."""
        kwargs: dict[str, Any] = {
            "InstanceTypes": [instance_type],
            "ProductDescriptions": LINUX,
            "StartTime": start,
            "EndTime": end,
            "Filters": [{"Name": "availability-zone", "Values": [availability_zone]}],
        }
        changes: dict[datetime, SpotPrice] = {}
        with aws_errors("DescribeSpotPriceHistory", f"{instance_type} in {availability_zone}"):
            paginator = self.client.get_paginator("describe_spot_price_history")
            for page in paginator.paginate(**kwargs):
                for raw in page.get("SpotPriceHistory", []):
                    if raw.get("AvailabilityZone") != availability_zone:
                        continue
                    changes[raw["Timestamp"]] = SpotPrice(
                        instance_type=raw.get("InstanceType", instance_type),
                        availability_zone=availability_zone,
                        usd_per_hour=float(raw.get("SpotPrice", "0")),
                        timestamp=raw["Timestamp"],
                    )
        return [changes[when] for when in sorted(changes)]
