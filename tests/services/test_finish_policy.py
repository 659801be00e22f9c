"""--stop-on-finish is refused up front on one-time spot instances, which AWS cannot stop."""

from __future__ import annotations

import pytest

from runctl.aws.ec2 import Ec2
from runctl.errors import UsageError
from runctl.services.instances.lifecycle import is_one_time_spot
from runctl.services.jobs.finish_policy import check_finish_action
from tests.cloud.harness import Cloud


def test_stop_on_finish_on_one_time_spot_is_a_usage_error_naming_the_alternatives(
    cloud: Cloud,
) -> None:
    ec2 = Ec2(cloud.client("ec2"))
    spot = ec2.describe_instance(cloud.run_instance(spot=True))
    assert is_one_time_spot(ec2, spot)
    with pytest.raises(UsageError) as info:
        check_finish_action(ec2, spot, stop_on_finish=True)
    assert info.value.exit_code == 2 and info.value.resource == spot.instance_id
    assert "AWS cannot stop" in info.value.message
    assert "--terminate-on-finish" in (info.value.hint or "")
    assert "on-demand" in (info.value.hint or "")
    check_finish_action(ec2, spot, stop_on_finish=False)


def test_stop_on_finish_on_on_demand_is_fine(cloud: Cloud) -> None:
    ec2 = Ec2(cloud.client("ec2"))
    on_demand = ec2.describe_instance(cloud.run_instance())
    assert not is_one_time_spot(ec2, on_demand)
    check_finish_action(ec2, on_demand, stop_on_finish=True)
