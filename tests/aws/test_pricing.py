"""The Pricing wrapper parses AWS price-list documents (Stubber: moto has no Pricing API)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from runctl.aws.partitions import partition_of
from runctl.aws.pricing import Pricing, pricing_client
from runctl.aws.session import AwsContext
from runctl.errors import ConfigError


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


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("eu-west-1", "https://api.pricing.us-east-1.amazonaws.com"),
        ("cn-north-1", "https://api.pricing.cn-northwest-1.amazonaws.com.cn"),
    ],
)
def test_pricing_client_uses_the_endpoint_of_the_regions_partition(
    region: str, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_PRICING", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    client = pricing_client(AwsContext(region=region))
    assert client.meta.endpoint_url == endpoint


def test_govcloud_has_no_pricing_endpoint_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    with pytest.raises(ConfigError) as info:
        pricing_client(AwsContext(region="us-gov-west-1"))
    assert "aws-us-gov" in info.value.message and info.value.exit_code == 3


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-east-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
    ],
)
def test_partition_of_region(region: str, partition: str) -> None:
    assert partition_of(region) == partition
