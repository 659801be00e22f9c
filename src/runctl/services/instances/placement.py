"""Where a launch may go: the ordered list of (market, zone, subnet) placements to try.

Only zones that offer the instance type are tried. Spot placements are ordered by the zone's
current spot price (a given subnet's zone always first, as the user asked for it), and with a
subnet, the other zones are reached through subnets of the same VPC.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from runctl.errors import CapacityError, UsageError

if TYPE_CHECKING:
    from runctl.aws.ec2 import Ec2, InstanceTypeInfo, Subnet


class PlacementRequest(Protocol):
    @property
    def spot(self) -> bool: ...
    @property
    def fallback(self) -> bool: ...
    @property
    def subnet_id(self) -> str | None: ...
    @property
    def availability_zone(self) -> str | None: ...
    @property
    def preferred_zone(self) -> str | None: ...


@dataclass(frozen=True)
class Placement:
    """One place to try a launch."""

    market: str
    availability_zone: str | None
    subnet_id: str | None = None
    spot_price: float | None = None

    def describe(self) -> str:
        where = self.availability_zone or "any zone"
        via = f" via {self.subnet_id}" if self.subnet_id else ""
        return f"{self.market} in {where}{via}"

    def too_expensive(self, max_price: float | None) -> bool:
        """True when the zone's current spot price is above the user's maximum."""
        return (
            self.market == "spot"
            and max_price is not None
            and self.spot_price is not None
            and self.spot_price > max_price
        )


def suggest_instance_types(name: str, known: list[str], limit: int = 3) -> list[str]:
    """The valid type names nearest to a typo."""
    return difflib.get_close_matches(name, known, n=limit, cutoff=0.6)


def plan_placements(ec2: Ec2, request: PlacementRequest, info: InstanceTypeInfo) -> list[Placement]:
    """Every placement to try, in order: spot ones (when asked), then on-demand ones.

    Raises CapacityError when no zone of the region offers the type, UsageError when the given
    subnet does not exist.
    """
    zones = _offered_zones(ec2, info.name)
    if not zones:
        raise CapacityError(
            f"{info.name} is not offered in any availability zone of {ec2.region}",
            hint="try another instance type or region",
            resource=info.name,
        )
    only = request.availability_zone
    if only is not None and only not in zones:
        raise CapacityError(
            f"{info.name} is not offered in {only}, where the launch must go",
            hint=f"use a type offered there; it is offered in {', '.join(zones)}",
            resource=info.name,
        )
    sites = _sites(ec2, zones, request.subnet_id)
    if only is not None:
        sites = [site for site in sites if site[0] == only]
        if not sites:
            raise UsageError(
                f"subnet {request.subnet_id} has no sibling subnet in {only}",
                hint=f"pass --subnet-id of a subnet in {only}",
                resource=only,
            )
    placements: list[Placement] = []
    if request.spot:
        prices = ec2.describe_spot_price_history(info.name, [zone for zone, _ in sites])
        spot = [
            Placement("spot", zone, subnet, prices[zone].usd_per_hour if zone in prices else None)
            for zone, subnet in sites
        ]
        first, rest = (spot[:1], spot[1:]) if request.subnet_id else ([], spot)
        rest.sort(key=lambda p: (p.spot_price is None, p.spot_price or 0.0))
        placements.extend(first + rest)
    if not request.spot or request.fallback:
        placements.extend(Placement("on-demand", zone, subnet) for zone, subnet in sites)
    preferred = request.preferred_zone
    if preferred is not None:  # stable: within each market, the preferred zone goes first
        market_rank = {"spot": 0, "on-demand": 1}
        placements.sort(key=lambda p: (market_rank[p.market], p.availability_zone != preferred))
    return placements


def _offered_zones(ec2: Ec2, instance_type: str) -> list[str]:
    available = [zone.name for zone in ec2.describe_availability_zones()]
    offered = {
        location
        for _, location in ec2.describe_instance_type_offerings(
            location_type="availability-zone", instance_type=instance_type
        )
    }
    return [zone for zone in available if zone in offered]


def _sites(ec2: Ec2, zones: list[str], subnet_id: str | None) -> list[tuple[str, str | None]]:
    """(zone, subnet) pairs: the given subnet first, then one subnet per other zone of its VPC."""
    if not subnet_id:
        return [(zone, None) for zone in zones]
    found = ec2.describe_subnets(subnet_ids=[subnet_id])
    if not found:
        raise UsageError(f"subnet {subnet_id} does not exist in {ec2.region}", resource=subnet_id)
    given = found[0]
    sites: list[tuple[str, str | None]] = [(given.availability_zone, given.subnet_id)]
    best: dict[str, Subnet] = {}
    for subnet in ec2.describe_subnets(vpc_id=given.vpc_id):
        zone = subnet.availability_zone
        if zone == given.availability_zone or zone not in zones:
            continue
        if zone not in best or subnet.available_ips > best[zone].available_ips:
            best[zone] = subnet
    sites.extend((zone, best[zone].subnet_id) for zone in zones if zone in best)
    return sites
