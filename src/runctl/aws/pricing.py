"""Typed wrapper around the AWS Price List (Pricing) API: EC2 on-demand Linux prices.

The Pricing API is served from a few regions only, whatever region the instances are in: in the
``aws`` partition from us-east-1, in China from cn-northwest-1, and not at all in GovCloud. Its
client is built here in the endpoint region of the instances' partition
(:func:`runctl.aws.partitions.pricing_region`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from runctl.aws.errors import aws_errors
from runctl.aws.partitions import partition_of, pricing_region
from runctl.aws.session import AwsContext, client_config
from runctl.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_pricing import PricingClient


def pricing_client(context: AwsContext) -> PricingClient:
    """A Pricing API client in the endpoint region of the context's partition
    (AWS_ENDPOINT_URL is still honoured); ConfigError where the partition has none."""
    region = context.region_name
    endpoint_region = pricing_region(region)
    if endpoint_region is None:
        raise ConfigError(
            f"the AWS Pricing API has no endpoint in the {partition_of(region)} partition "
            f"({region})",
            hint="runctl uses its shipped price table there; drop --refresh",
            resource=region,
        )
    return context.session.client("pricing", region_name=endpoint_region, config=client_config())


class Pricing:
    """The Pricing operations runctl uses."""

    def __init__(self, client: PricingClient):
        self.client = client

    def get_products_ec2_on_demand(self, region: str) -> dict[str, float]:
        """Hourly on-demand USD price of every Linux, shared-tenancy instance type in ``region``."""
        prices: dict[str, float] = {}
        for item in self._iter_products(region):
            attributes = item.get("product", {}).get("attributes", {})
            instance_type = attributes.get("instanceType")
            price = _on_demand_usd(item.get("terms", {}))
            if instance_type and price is not None and price > 0:
                prices[instance_type] = price
        return prices

    def _iter_products(self, region: str) -> Iterator[Mapping[str, Any]]:
        filters = {
            "regionCode": region,
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "licenseModel": "No License required",
        }
        with aws_errors("GetProducts", f"AmazonEC2 {region}"):
            paginator = self.client.get_paginator("get_products")
            pages = paginator.paginate(
                ServiceCode="AmazonEC2",
                FormatVersion="aws_v1",
                Filters=[
                    {"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()
                ],
            )
            for page in pages:
                for raw in page.get("PriceList", []):
                    yield json.loads(raw) if isinstance(raw, str) else raw


def _on_demand_usd(terms: Mapping[str, Any]) -> float | None:
    for term in terms.get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if usd is not None:
                return float(usd)
    return None
