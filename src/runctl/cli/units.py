"""How durations and dollar amounts read in text output."""

from __future__ import annotations


def duration(seconds: float | None) -> str | None:
    """``3d 4h 5m`` / ``4h 5m``; None stays None (shown as ``-``)."""
    if seconds is None:
        return None
    minutes = int(seconds) // 60
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


def money(value: float | None, suffix: str = "") -> str:
    """``$0.0104/h``; ``-`` when unknown."""
    return "-" if value is None else f"${value:.4f}{suffix}"


def monthly(value: float | None) -> str:
    """``$28.00/month``; ``-`` when unknown."""
    return "-" if value is None else f"${value:.2f}/month"
