"""How durations and dollar amounts read in text output."""

from __future__ import annotations


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
