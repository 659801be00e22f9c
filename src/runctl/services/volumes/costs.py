"""What volumes and snapshots cost a month, as estimates from EBS's us-east-1 list prices
(https://aws.amazon.com/ebs/pricing/); other regions differ by a few percent.

A snapshot is priced at its volume's full size: snapshots are incremental, so that is an upper
bound (the first snapshot of a full volume costs about that).
"""

from __future__ import annotations

from runctl.services.volumes.specs import GP3_BASELINE_IOPS, GP3_BASELINE_THROUGHPUT

#: USD per GiB-month of storage.
GB_MONTH = {"gp3": 0.08, "gp2": 0.10, "io2": 0.125, "io1": 0.125, "st1": 0.045, "sc1": 0.015,
            "standard": 0.05}  # fmt: skip
GP3_IOPS_MONTH = 0.005  # per provisioned IOPS above 3,000
GP3_THROUGHPUT_MONTH = 0.04  # per MiB/s above 125
IO2_IOPS_MONTH = 0.065  # per provisioned IOPS (first tier)
SNAPSHOT_GB_MONTH = 0.05


def volume_month_usd(
    volume_type: str, size_gb: int, iops: int | None = None, throughput: int | None = None
) -> float | None:
    """The monthly cost of a volume, or None for a type without a known price."""
    per_gb = GB_MONTH.get(volume_type)
    if per_gb is None:
        return None
    cost = per_gb * size_gb
    if volume_type == "gp3":
        cost += GP3_IOPS_MONTH * max((iops or GP3_BASELINE_IOPS) - GP3_BASELINE_IOPS, 0)
        cost += GP3_THROUGHPUT_MONTH * max(
            (throughput or GP3_BASELINE_THROUGHPUT) - GP3_BASELINE_THROUGHPUT, 0
        )
    elif volume_type in ("io1", "io2"):
        cost += IO2_IOPS_MONTH * (iops or 0)
    return round(cost, 2)


def snapshot_month_usd(size_gb: int) -> float:
    """At most what a snapshot of a ``size_gb`` volume costs a month."""
    return round(SNAPSHOT_GB_MONTH * size_gb, 2)
