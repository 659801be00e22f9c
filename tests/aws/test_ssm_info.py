"""The SSM wrapper: public parameters and DescribeInstanceInformation (served by the harness)."""

from __future__ import annotations

import pytest

from runctl.aws.ssm import AL2023_PARAMETER, Ssm
from runctl.errors import NotFoundError
from tests.cloud.harness import Cloud


def test_al2023_parameter_names_a_seeded_image(cloud: Cloud) -> None:
    ssm = Ssm(cloud.client("ssm"))
    assert ssm.get_parameter(AL2023_PARAMETER.format(arch="x86_64")) == cloud.amis["al2023"]
    assert ssm.get_parameter(AL2023_PARAMETER.format(arch="arm64")) == cloud.amis["al2023-arm64"]
    with pytest.raises(NotFoundError):
        ssm.get_parameter("/runctl/does-not-exist")


def test_instance_information_online_only_with_a_profile(cloud: Cloud) -> None:
    ssm = Ssm(cloud.client("ssm"))
    managed = cloud.run_instance()
    bare = cloud.run_instance(profile=None)
    info = cloud.wait_for(lambda: ssm.describe_instance_information([managed, bare]).get(managed))
    assert info.online and info.instance_id == managed
    assert bare not in ssm.describe_instance_information([managed, bare])
    assert ssm.describe_instance_information([]) == {}
