"""DescribeSpotPriceHistory as AWS answers it, for price histories a test sets.

moto answers every DescribeSpotPriceHistory with one made-up price per zone and ignores
``StartTime``, ``EndTime``, ``MaxResults`` and ``NextToken``. AWS keeps a history (a new entry
whenever the price changes, up to 90 days back) and returns, newest first and in pages of
``MaxResults`` (default 1,000), every change within ``[StartTime, EndTime]`` plus, per zone and
product, the last change before ``StartTime`` (the price in effect then); without ``StartTime``
the whole history. So a caller that reads one page without ``StartTime`` sees the busiest zones
and may miss a zone whose price has not changed for days.

``Cloud.set_spot_price_history(instance_type, zone, [(when, usd), ...])`` seeds one series
(product ``Linux/UNIX``); once any series is set for a type, the gateway answers that type's
requests here, honouring ``InstanceType.N``, ``ProductDescription.N``, ``AvailabilityZone``,
the ``availability-zone``/``instance-type``/``product-description`` filters, ``StartTime``,
``EndTime``, ``MaxResults`` and ``NextToken``.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from tests.cloud.protocol import EC2, Request, Response, error_response, request_id

PRODUCT = "Linux/UNIX"
DEFAULT_PAGE = 1000


@dataclass
class SpotPriceHistory:
    """Price series by (instance type, zone, product): (time, USD) pairs."""

    series: dict[tuple[str, str, str], list[tuple[dt.datetime, float]]] = field(
        default_factory=dict
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.series.clear()

    def set(self, instance_type: str, zone: str, points: list[tuple[dt.datetime, float]]) -> None:
        with self.lock:
            self.series[(instance_type, zone, PRODUCT)] = sorted(points)

    def answers(self, req: Request) -> bool:
        types = _list(req.params, "InstanceType") + _filter(req.params, "instance-type")
        with self.lock:
            known = {key[0] for key in self.series}
        return bool(types) and all(t in known for t in types)

    def describe(self, req: Request) -> Response:
        params = req.params
        types = set(_list(params, "InstanceType") + _filter(params, "instance-type"))
        products = set(_list(params, "ProductDescription") + _filter(params, "product-description"))
        zones = set(_filter(params, "availability-zone"))
        if params.get("AvailabilityZone"):
            zones.add(params["AvailabilityZone"])
        start = _time(params.get("StartTime"))
        end = _time(params.get("EndTime")) or dt.datetime.now(dt.UTC)
        try:
            size = int(params.get("MaxResults") or DEFAULT_PAGE)
            offset = int(params.get("NextToken") or 0)
        except ValueError:
            return error_response(EC2, "InvalidParameterValue", "bad MaxResults/NextToken", 400)
        if not 5 <= size <= 1000:
            return error_response(
                EC2, "InvalidParameterValue", "MaxResults must be between 5 and 1000", 400
            )
        entries: list[tuple[dt.datetime, str, str, str, float]] = []
        with self.lock:
            for (itype, zone, product), points in self.series.items():
                if itype not in types or (zones and zone not in zones):
                    continue
                if products and product not in products:
                    continue
                entries.extend(_window(itype, zone, product, points, start, end))
        entries.sort(key=lambda e: (e[0], e[2]), reverse=True)
        page = entries[offset : offset + size]
        items = "".join(
            f"<item><instanceType>{escape(t)}</instanceType>"
            f"<productDescription>{escape(p)}</productDescription>"
            f"<spotPrice>{usd:.6f}</spotPrice>"
            f"<timestamp>{when.strftime('%Y-%m-%dT%H:%M:%S.000Z')}</timestamp>"
            f"<availabilityZone>{escape(z)}</availabilityZone></item>"
            for when, t, z, p, usd in page
        )
        token = str(offset + size) if offset + size < len(entries) else ""
        body = (
            '<DescribeSpotPriceHistoryResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            f"<requestId>{request_id()}</requestId>"
            f"<spotPriceHistorySet>{items}</spotPriceHistorySet>"
            f"<nextToken>{token}</nextToken>"
            "</DescribeSpotPriceHistoryResponse>"
        )
        return Response(200, [("Content-Type", "text/xml")], body.encode())


def _window(
    itype: str,
    zone: str,
    product: str,
    points: list[tuple[dt.datetime, float]],
    start: dt.datetime | None,
    end: dt.datetime,
) -> list[tuple[dt.datetime, str, str, str, float]]:
    inside = [p for p in points if (start is None or p[0] >= start) and p[0] <= end]
    if start is not None:
        before = [p for p in points if p[0] < start]
        if before:
            inside.append(before[-1])
    return [(when, itype, zone, product, usd) for when, usd in inside]


def _list(params: dict[str, str], name: str) -> list[str]:
    return [v for k, v in sorted(params.items()) if k.startswith(f"{name}.")]


def _filter(params: dict[str, str], name: str) -> list[str]:
    values: list[str] = []
    for key, value in params.items():
        if key.startswith("Filter.") and key.endswith(".Name") and value == name:
            prefix = key[: -len("Name")]
            values.extend(v for k, v in sorted(params.items()) if k.startswith(prefix + "Value."))
    return values


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
