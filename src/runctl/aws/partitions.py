"""AWS partitions: which one a region is in, and what differs between them for runctl.

ARNs carry the partition (``arn:aws:``, ``arn:aws-cn:``, ``arn:aws-us-gov:``), and some services
live only in some partitions: the Price List (Pricing) API has endpoints in the ``aws``
partition (us-east-1 among others) and in China (cn-northwest-1), none in GovCloud. See
https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/partitions.html
and https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-price-list-query-api.html
"""

from __future__ import annotations

#: Region name prefixes of the partitions other than ``aws``, most specific first.
_PREFIXES = (
    ("us-isob-", "aws-iso-b"),
    ("us-iso-", "aws-iso"),
    ("us-gov-", "aws-us-gov"),
    ("cn-", "aws-cn"),
)
#: The region whose Pricing endpoint serves each partition (absent: none exists).
PRICING_REGIONS = {"aws": "us-east-1", "aws-cn": "cn-northwest-1"}


def partition_of(region: str) -> str:
    """``aws``, ``aws-cn``, ``aws-us-gov``, ... for a region name."""
    for prefix, partition in _PREFIXES:
        if region.startswith(prefix):
            return partition
    return "aws"


def arn(region: str, service: str, resource: str, *, account: str = "", scope: str = "") -> str:
    """``arn:<partition of region>:<service>:<scope>:<account>:<resource>``."""
    return f"arn:{partition_of(region)}:{service}:{scope}:{account}:{resource}"


def pricing_region(region: str) -> str | None:
    """The region of the Pricing API endpoint for ``region``'s partition, or None."""
    return PRICING_REGIONS.get(partition_of(region))
