"""How durations and dollar amounts read in text output."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from runctl.errors import UsageError


def duration(seconds: float | None) -> str | None:
    """``3d 4h 5m`` / ``4h 5m`` / ``5m 12s`` / ``12s`` (a short job's seconds matter); None stays
    None (shown as ``-``)."""
    if seconds is None:
        return None
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def money(value: float | None, suffix: str = "") -> str:
    """``$0.0104/h``; ``-`` when unknown."""
    return "-" if value is None else f"${value:.4f}{suffix}"


def monthly(value: float | None) -> str:
    """``$28.00/month``; ``-`` when unknown."""
    return "-" if value is None else f"${value:.2f}/month"


def cost_fields(cost: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A job's cost breakdown (``CostEstimate.to_dict()``) as ``name: value`` lines: the total
    with its parts, and where each figure came from."""
    parts = [("compute", cost["compute_usd"]), ("EBS", cost["ebs_usd"]), ("S3", cost["s3_usd"])]
    said = " + ".join(f"{name} {money(value)}" for name, value in parts if value is not None)
    return [
        ("cost so far", f"{money(cost['usd'])} ({said})" if said else money(cost["usd"])),
        ("price source", str(cost["price_source"])),
        ("storage source", str(cost["storage_source"])),
    ]


def parse_age(text: str, option: str = "--older-than") -> timedelta:
    """``30d``, ``12h``, ``45m`` or ``90s`` as a timedelta; UsageError (exit 2) otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhms])\s*", text)
    if match is None:
        raise UsageError(f"{option} {text!r} is not an age", hint="e.g. 30d, 12h, 45m or 90s")
    unit = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[match[2]]
    return timedelta(**{unit: int(match[1])})
