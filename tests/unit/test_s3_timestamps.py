"""The fast S3 timestamp parser gives exactly what botocore's own parser gives."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.utils import parse_timestamp

from runctl.aws.s3 import parse_wire_timestamp, use_fast_timestamps


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-28T23:21:10.650Z",
        "2026-11-28T23:21:10.000Z",
        "2026-11-28T23:21:10.123456Z",
        "2026-11-28T23:21:10.12Z",
        "2026-11-28T23:21:10Z",
        "Sat, 28 Nov 2026 23:21:10 GMT",
        "2026-11-28T23:21:10+02:00",
    ],
)
def test_same_instant_as_botocore(value: str) -> None:
    ours = parse_wire_timestamp(value)
    assert ours.tzinfo is not None
    assert ours == parse_timestamp(value)


def test_use_fast_timestamps_reaches_botocores_parser_factory() -> None:
    # A real client: this is what breaks if botocore ever moves its parser factory.
    client: Any = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    use_fast_timestamps(client)
    parser = client._endpoint._response_parser_factory.create_parser("rest-xml")
    assert parser._timestamp_parser is parse_wire_timestamp
    use_fast_timestamps(object())  # type: ignore[arg-type]  # anything else is left alone
