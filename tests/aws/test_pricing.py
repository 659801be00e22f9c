"""The Pricing wrapper parses AWS price-list documents (Stubber: moto has no Pricing API)."""

from __future__ import annotations

import json

import boto3
from botocore.stub import ANY, Stubber

from runctl.aws.pricing import Pricing


def product(instance_type: str, usd: str) -> str:
    return json.dumps(
        {
            "product": {"attributes": {"instanceType": instance_type, "regionCode": "us-east-1"}},
            "terms": {
                "OnDemand": {
                    "SKU.T": {"priceDimensions": {"SKU.T.D": {"pricePerUnit": {"USD": usd}}}}
                }
            },
        }
    )


def test_on_demand_prices_are_read_from_every_page() -> None:
    client = boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with Stubber(client) as stub:
        expected = {"ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1", "Filters": ANY}
        stub.add_response(
            "get_products",
            {"PriceList": [product("t3.micro", "0.0104000000")], "NextToken": "n"},
            expected,
        )
        stub.add_response(
            "get_products",
            {"PriceList": [product("g5.xlarge", "1.0060000000"), product("free.thing", "0.0")]},
            {**expected, "NextToken": "n"},
        )
        prices = Pricing(client).get_products_ec2_on_demand("us-east-1")
    assert prices == {"t3.micro": 0.0104, "g5.xlarge": 1.006}
