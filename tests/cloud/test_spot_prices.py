"""The harness's DescribeSpotPriceHistory answers as AWS does for a seeded history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.cloud.harness import Cloud


def test_history_window_pages_and_the_price_in_effect(cloud: Cloud) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    cloud.set_spot_price_history(
        "g5.xlarge", "us-east-1a", [(now - timedelta(hours=h), 0.5 + h / 1000) for h in range(1, 9)]
    )
    cloud.set_spot_price_history("g5.xlarge", "us-east-1b", [(now - timedelta(days=5), 0.3)])
    ec2 = cloud.client("ec2")

    whole = ec2.describe_spot_price_history(InstanceTypes=["g5.xlarge"], MaxResults=5)
    assert len(whole["SpotPriceHistory"]) == 5 and whole["NextToken"]
    assert all(p["AvailabilityZone"] == "us-east-1a" for p in whole["SpotPriceHistory"])
    paged = ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=["g5.xlarge"], PaginationConfig={"PageSize": 5}
    )
    assert sum(len(page["SpotPriceHistory"]) for page in paged) == 9

    current = ec2.describe_spot_price_history(
        InstanceTypes=["g5.xlarge"], StartTime=now, EndTime=now
    )["SpotPriceHistory"]
    assert {p["AvailabilityZone"]: p["SpotPrice"] for p in current} == {
        "us-east-1a": "0.501000",
        "us-east-1b": "0.300000",
    }
    zone_b = ec2.describe_spot_price_history(
        InstanceTypes=["g5.xlarge"],
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1b"]}],
    )["SpotPriceHistory"]
    assert [p["AvailabilityZone"] for p in zone_b] == ["us-east-1b"]
    # Types without a seeded history are moto's.
    assert ec2.describe_spot_price_history(InstanceTypes=["t3.micro"])["SpotPriceHistory"]
