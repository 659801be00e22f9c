"""EC2's vCPU quotas: which quota an instance type counts against, and how much of it is used.

EC2 limits running instances by vCPUs per group of families, one quota for on-demand and one for
spot (https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html): "Standard"
(A, C, D, H, I, M, R, T, Z), F, G and VT, Inf, P, Trn, X and DL. Usage is every pending or running
instance of the account in the region in the same group and market, whoever launched it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runctl.aws.ec2 import Ec2
    from runctl.aws.quotas import ServiceQuotas

#: Quota group -> (on-demand quota code, spot quota code), Service Quotas' ``ec2`` codes.
QUOTA_CODES: dict[str, tuple[str, str]] = {
    "Standard (A, C, D, H, I, M, R, T, Z)": ("L-1216C47A", "L-34B43A08"),
    "G and VT": ("L-DB2E81BA", "L-3819A6DF"),
    "P": ("L-417A185B", "L-7212CCBC"),
    "Inf": ("L-1945791B", "L-B5D1601B"),
    "Trn": ("L-2C3B7624", "L-6B0D517C"),
    "F": ("L-74FC7D96", "L-88CF9481"),
    "X": ("L-7295265B", "L-E3A00192"),
    "DL": ("L-6E869C2A", "L-85EED4F7"),
}
_GROUP_OF = (
    (re.compile(r"^dl\d"), "DL"),
    (re.compile(r"^inf\d"), "Inf"),
    (re.compile(r"^trn\d"), "Trn"),
    (re.compile(r"^(g|vt)\d"), "G and VT"),
    (re.compile(r"^p\d"), "P"),
    (re.compile(r"^f\d"), "F"),
    (re.compile(r"^(x|u-)"), "X"),
)


def quota_group(instance_type: str) -> str:
    """The quota group of an instance type (``g5.xlarge`` -> ``G and VT``)."""
    family = instance_type.split(".", 1)[0]
    for pattern, group in _GROUP_OF:
        if pattern.match(family):
            return group
    return "Standard (A, C, D, H, I, M, R, T, Z)"


@dataclass(frozen=True)
class VcpuHeadroom:
    """The quota the type counts against, its value (None: unknown) and the vCPUs in use."""

    group: str
    market: str
    quota_code: str
    quota_vcpus: float | None
    used_vcpus: int
    needed_vcpus: int

    @property
    def fits(self) -> bool | None:
        """Whether one more instance of the type fits (None when the quota is unknown)."""
        if self.quota_vcpus is None:
            return None
        return self.used_vcpus + self.needed_vcpus <= self.quota_vcpus


def vcpu_headroom(
    ec2: Ec2, quotas: ServiceQuotas, instance_type: str, vcpus: int, *, spot: bool
) -> VcpuHeadroom:
    """What one more ``instance_type`` (``vcpus`` each) would take from its vCPU quota."""
    group = quota_group(instance_type)
    market = "spot" if spot else "on-demand"
    code = QUOTA_CODES[group][1 if spot else 0]
    quota = quotas.get_service_quota("ec2", code)
    running = ec2.describe_instances(filters={"instance-state-name": ["pending", "running"]})
    same = [
        i
        for i in running
        if quota_group(i.instance_type) == group and (i.lifecycle == "spot") == spot
    ]
    sizes: dict[str, int] = {instance_type: vcpus}
    for name in {i.instance_type for i in same} - set(sizes):
        info = ec2.describe_instance_type(name)
        sizes[name] = info.vcpus if info else 0
    used = sum(sizes[i.instance_type] for i in same)
    return VcpuHeadroom(group, market, code, quota.value if quota else None, used, vcpus)
