"""``runctl aws create`` end to end against the harness: placement, fallback, idempotency."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.aws_helpers import describe, live_instances, ok_json, run, tags_of
from tests.cloud.harness import Cloud

CREATE_KEYS = [
    "instance_id",
    "instance_type",
    "lifecycle",
    "availability_zone",
    "ami_id",
    "ami_name",
    "state",
    "private_ip",
    "public_ip",
    "hourly_price_usd",
    "price_source",
    "tags",
    "ssm_online",
    "reused",
    "dry_run",
    "request_key",
    "attempts",
    "warnings",
    "count",
    "instances",
]


def test_spot_create_json_is_tagged_at_launch_with_imdsv2(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    data = ok_json(
        "aws", "create", "t3.micro", "--spot", "--tag", "team=vision", "--project-name", "demo"
    )
    assert list(data) == CREATE_KEYS
    assert data["lifecycle"] == "spot" and data["ami_id"] == cloud.amis["al2023"]
    assert data["hourly_price_usd"] is not None and "spot price history" in data["price_source"]
    assert [a["outcome"] for a in data["attempts"]] == ["launched"]
    instance = describe(cloud, data["instance_id"])
    tags = tags_of(instance)
    assert tags["runctl:managed"] == "true" and tags["runctl:project"] == "demo"
    assert tags["team"] == "vision" and tags["Name"] == "runctl-demo"
    assert {"runctl:user", "runctl:created"} <= set(tags)
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
    [mapping] = instance["BlockDeviceMappings"]
    assert mapping["DeviceName"] == "/dev/xvda"
    volume = cloud.client("ec2").describe_volumes(VolumeIds=[mapping["Ebs"]["VolumeId"]])[
        "Volumes"
    ][0]
    assert volume["Size"] == 30 and volume["VolumeType"] == "gp3"
    assert tags_of(volume)["runctl:managed"] == "true"


def test_output_instance_id_is_exactly_one_line(cloud_env: Cloud, workdir: Path) -> None:
    result = run("aws", "create", "t3.micro", "--spot", "--output", "instance-id")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("i-")
    assert "launched" in result.stderr and "no instance profile" in result.stderr


def test_capacity_in_one_zone_moves_to_another_zone(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    first_zone = sorted(z for z in cloud.availability_zones() if z != "us-east-1e")[0]
    cloud.insufficient_capacity(azs=[first_zone])
    result = run("aws", "create", "t3.micro", "--spot", "--output", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(a["market"], a["outcome"]) for a in data["attempts"]] == [
        ("spot", "no-capacity"),
        ("spot", "launched"),
    ]
    assert data["attempts"][0]["code"] == "InsufficientInstanceCapacity"
    assert data["lifecycle"] == "spot" and data["availability_zone"] != first_zone
    assert f"tried spot in {first_zone}" in result.stderr
    assert len(live_instances(cloud)) == 1


def test_no_spot_capacity_anywhere_falls_back_to_on_demand(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    cloud.insufficient_capacity()
    data = ok_json("aws", "create", "t3.micro", "--spot")
    assert data["lifecycle"] == "on-demand"
    markets = [a["market"] for a in data["attempts"]]
    assert markets[-1] == "on-demand" and markets.count("spot") >= 2
    assert "price table" in data["price_source"]
    assert [i["InstanceId"] for i in live_instances(cloud)] == [data["instance_id"]]
    assert "InstanceLifecycle" not in describe(cloud, data["instance_id"])


def test_no_fallback_without_capacity_exits_5_and_leaves_nothing(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    cloud.insufficient_capacity()
    result = run("aws", "create", "t3.micro", "--spot", "--no-fallback", "--output", "json")
    assert result.exit_code == 5
    error = json.loads(result.stdout)
    assert error["exit_code"] == 5 and len(error["attempts"]) >= 2
    assert all(a["market"] == "spot" for a in error["attempts"])
    assert "nothing was left running" in result.stderr and "--no-fallback" in result.stderr
    assert live_instances(cloud) == []


def test_capacity_everywhere_for_on_demand_too_exits_5(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    cloud.insufficient_capacity(spot_only=False)
    result = run("aws", "create", "t3.micro", "--spot")
    assert result.exit_code == 5
    assert "on-demand in" in result.stderr
    assert live_instances(cloud) == []


def test_two_identical_creates_give_two_instances(cloud_env: Cloud, workdir: Path) -> None:
    first = run("aws", "create", "t3.micro", "--output", "instance-id")
    second = run("aws", "create", "t3.micro", "--output", "instance-id")
    assert first.exit_code == 0 and second.exit_code == 0, first.stderr + second.stderr
    a, b = first.stdout.strip(), second.stdout.strip()
    assert a.startswith("i-") and b.startswith("i-") and a != b
    assert sorted(i["InstanceId"] for i in live_instances(cloud_env)) == sorted([a, b])
    tokens = {describe(cloud_env, i)["ClientToken"] for i in (a, b)}
    assert len(tokens) == 2 and all(tokens)


def test_a_retry_with_the_client_token_returns_the_instance_it_launched(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    profile = cloud.create_instance_profile()
    cloud.ssm_registration_delay = 3600.0
    args = ["aws", "create", "t3.micro", "--spot", "--iam-instance-profile", profile.name, "--wait",
            "--client-token", "ci-run-7"]  # fmt: skip
    failed = run(*args, "--timeout", "0")
    assert failed.exit_code == 9
    assert "SSM agent is not online" in failed.stderr
    cloud.ssm_registration_delay = 0.0
    again = run(*args, "--timeout", "60", "--output", "json")
    assert again.exit_code == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["reused"] is True and data["ssm_online"] is True
    assert "client token ci-run-7 already launched" in again.stderr
    assert len(cloud.calls("RunInstances")) == 1
    assert [i["InstanceId"] for i in live_instances(cloud)] == [data["instance_id"]]


def test_explicit_client_token_and_a_different_request(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    first = ok_json("aws", "create", "t3.micro", "--client-token", "nightly-1")
    second = ok_json("aws", "create", "t3.micro", "--client-token", "nightly-1")
    assert second["instance_id"] == first["instance_id"] and second["reused"]
    third = ok_json("aws", "create", "t3.micro", "--client-token", "nightly-2")
    assert third["instance_id"] != first["instance_id"]
    assert len(live_instances(cloud)) == 2


def test_count_prints_one_id_a_line_all_tagged(cloud_env: Cloud, workdir: Path) -> None:
    result = run("aws", "create", "t3.micro", "--count", "3", "--project-name", "demo",
                 "--output", "instance-id")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    ids = result.stdout.split()
    assert len(ids) == 3 and len(set(ids)) == 3 and all(i.startswith("i-") for i in ids)
    assert sorted(i["InstanceId"] for i in live_instances(cloud_env)) == sorted(ids)
    for instance_id in ids:
        tags = tags_of(describe(cloud_env, instance_id))
        assert tags["runctl:managed"] == "true" and tags["runctl:project"] == "demo"
    assert "launched 3 instances" in result.stderr


def test_count_under_partial_spot_capacity_places_spot_where_possible(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    cloud.insufficient_capacity(after=1)  # room for one spot instance in the whole region
    data = ok_json("aws", "create", "t3.micro", "--spot", "--count", "3")
    assert sorted(i["lifecycle"] for i in data["instances"]) == ["on-demand", "on-demand", "spot"]
    assert len(live_instances(cloud)) == 3
    assert {a["outcome"] for a in data["attempts"]} == {"launched", "no-capacity"}


def test_count_that_cannot_be_placed_exits_5_and_leaves_nothing(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    cloud.insufficient_capacity(after=1)
    result = run("aws", "create", "t3.micro", "--spot", "--no-fallback", "--count", "3")
    assert result.exit_code == 5, result.stderr
    assert "placed 1" in result.stderr and "nothing was left running" in result.stderr
    assert "--allow-partial" in result.stderr
    assert live_instances(cloud) == []
    assert len(cloud.calls("TerminateInstances")) >= 1


def test_allow_partial_keeps_what_fits(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    cloud.insufficient_capacity(after=1)
    result = run("aws", "create", "t3.micro", "--spot", "--no-fallback", "--count", "3",
                 "--allow-partial", "--output", "instance-id")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.split()) == 1 and "placed 1 of 3" in result.stderr
    assert [i["InstanceId"] for i in live_instances(cloud)] == result.stdout.split()


def test_client_token_reruns_of_a_count_return_the_same_ids(
    cloud_env: Cloud, workdir: Path
) -> None:
    args = ["aws", "create", "t3.micro", "--count", "3", "--client-token", "sweep-42",
            "--output", "instance-id"]  # fmt: skip
    first = run(*args)
    again = run(*args)
    assert first.exit_code == 0 and again.exit_code == 0, first.stderr + again.stderr
    assert again.stdout.split() == first.stdout.split() and len(first.stdout.split()) == 3
    assert len(cloud_env.calls("RunInstances")) == 3
    assert len(live_instances(cloud_env)) == 3


def test_terminated_then_recreated_launches_a_new_instance(cloud_env: Cloud, workdir: Path) -> None:
    first = ok_json("aws", "create", "t3.micro")
    assert run("aws", "terminate", first["instance_id"], "--yes").exit_code == 0
    second = ok_json("aws", "create", "t3.micro")
    assert second["instance_id"] != first["instance_id"] and not second["reused"]


def test_wait_reaches_ssm_online_with_a_profile(cloud_env: Cloud, workdir: Path) -> None:
    profile = cloud_env.create_instance_profile()
    data = ok_json("aws", "create", "t3.micro", "--iam-instance-profile", profile.name, "--wait")
    assert data["state"] == "running" and data["ssm_online"] is True
    assert data["warnings"] == []


def test_wait_timeout_without_profile_says_what_is_missing(cloud_env: Cloud, workdir: Path) -> None:
    result = run("aws", "create", "t3.micro", "--wait", "--timeout", "0")
    assert result.exit_code == 9
    assert "no instance profile" in result.stderr and "aws setup" in result.stderr


def test_typo_in_the_type_suggests_names_and_calls_no_launch(
    cloud_env: Cloud, workdir: Path
) -> None:
    result = run("aws", "create", "t3.mciro")
    assert result.exit_code == 2
    assert "t3.micro" in result.stderr
    assert cloud_env.calls("RunInstances") == []


def test_dry_run_launches_nothing(cloud_env: Cloud, workdir: Path) -> None:
    data = ok_json("aws", "create", "t3.micro", "--spot", "--dry-run")
    assert data["dry_run"] is True and data["instance_id"] is None
    assert data["attempts"][0]["outcome"] == "allowed"
    assert live_instances(cloud_env) == []


def test_gpu_type_gets_the_dlami_and_a_data_volume(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    data = ok_json("aws", "create", "g5.xlarge", "--data-volume-size", "200")
    assert data["ami_id"] in (cloud.amis["dl-ubuntu"], cloud.amis["dl-al2023"])
    assert "Deep Learning" in data["ami_name"]
    mappings = describe(cloud, data["instance_id"])["BlockDeviceMappings"]
    ids = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in mappings}
    volumes = cloud.client("ec2").describe_volumes(VolumeIds=list(ids.values()))["Volumes"]
    sizes = {v["VolumeId"]: v["Size"] for v in volumes}
    root = "/dev/sda1" if data["ami_id"] == cloud.amis["dl-ubuntu"] else "/dev/xvda"
    assert sizes[ids[root]] == 100 and sizes[ids["/dev/sdf"]] == 200


def test_graviton_gets_arm64_al2023(cloud_env: Cloud, workdir: Path) -> None:
    data = ok_json("aws", "create", "t4g.small")
    assert data["ami_id"] == cloud_env.amis["al2023-arm64"]


def test_unknown_ami_exits_6(cloud_env: Cloud, workdir: Path) -> None:
    result = run("aws", "create", "t3.micro", "--ami-id", "ami-0123456789abcdef0")
    assert result.exit_code == 6
    assert "ami-0123456789abcdef0" in result.stderr


def test_instance_limit_refuses_without_force(cloud_env: Cloud, workdir: Path) -> None:
    (workdir / ".runctl.toml").write_text("[aws]\nmax_instances = 1\n")
    ok_json("aws", "create", "t3.micro", "--tag", "n=1")
    refused = run("aws", "create", "t3.micro", "--tag", "n=2")
    assert refused.exit_code == 5 and "max_instances" in refused.stderr
    assert len(live_instances(cloud_env)) == 1
    assert run("aws", "create", "t3.micro", "--tag", "n=2", "--force").exit_code == 0


def test_bad_flags_are_usage_errors_before_any_call(cloud_env: Cloud, workdir: Path) -> None:
    for args in (
        ["--spot-max-price", "0.5"],
        ["--spot", "--spot-max-price", "0"],
        ["--tag", "novalue"],
        ["--output", "yaml"],
    ):
        assert run("aws", "create", "t3.micro", *args).exit_code == 2, args
    assert cloud_env.request_log == []


def test_unknown_instance_profile_exits_6(cloud_env: Cloud, workdir: Path) -> None:
    result = run("aws", "create", "t3.micro", "--iam-instance-profile", "no-such-profile")
    assert result.exit_code == 6 and "no-such-profile" in result.stderr
    assert live_instances(cloud_env) == []


def test_a_hostile_remote_root_from_a_cloned_repo_is_refused_before_any_call(
    cloud_env: Cloud, workdir: Path
) -> None:
    marker = workdir / "pwned"
    hostile = f'/opt/x"; touch {marker}; : "'
    (workdir / ".runctl.toml").write_text(f"[aws]\nremote_root = {json.dumps(hostile)}\n")
    result = run("aws", "create", "t3.micro")
    assert result.exit_code == 3, result.output
    assert "aws.remote_root" in result.stderr
    assert str(workdir / ".runctl.toml") in result.stderr
    assert cloud_env.request_log == []
    assert live_instances(cloud_env) == []
    assert not marker.exists()
