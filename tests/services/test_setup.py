"""aws setup: plan, apply, idempotence and dry run, with fake IAM and S3."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from runctl.aws.iam import InstanceProfile, Role
from runctl.errors import UsageError
from runctl.services.account.setup import (
    EC2_TRUST,
    ECR_POLICY,
    INLINE_POLICY,
    Grant,
    apply_setup,
    bucket_policy,
    default_bucket_name,
    ecr_pull_policy,
    grant_policy,
    parse_grant,
    plan_setup,
    ssm_core_policy_arn,
)


@dataclass
class FakeIam:
    roles: dict[str, Role] = field(default_factory=dict)
    attached: dict[str, list[str]] = field(default_factory=dict)
    inline: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, InstanceProfile] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)

    def get_role(self, name: str) -> Role | None:
        return self.roles.get(name)

    def create_role(self, name: str, trust: Any, *, description: str, tags: Any) -> Role:
        self.writes.append(f"create_role {name}")
        self.roles[name] = Role(name, f"arn:role/{name}", dict(trust))
        return self.roles[name]

    def update_assume_role_policy(self, name: str, trust: Any) -> None:
        self.writes.append(f"update_trust {name}")
        self.roles[name] = Role(name, self.roles[name].arn, dict(trust))

    def list_attached_role_policies(self, name: str) -> list[str]:
        return self.attached.get(name, [])

    def attach_role_policy(self, name: str, arn: str) -> None:
        self.writes.append(f"attach {arn}")
        self.attached.setdefault(name, []).append(arn)

    def get_role_policy(self, role: str, name: str) -> dict[str, Any] | None:
        return self.inline.get((role, name))

    def put_role_policy(self, role: str, name: str, document: Any) -> None:
        self.writes.append(f"put_policy {name}")
        self.inline[(role, name)] = dict(document)

    def get_instance_profile(self, name: str) -> InstanceProfile | None:
        return self.profiles.get(name)

    def create_instance_profile(self, name: str, *, tags: Any) -> InstanceProfile:
        self.writes.append(f"create_profile {name}")
        self.profiles[name] = InstanceProfile(name, f"arn:profile/{name}", ())
        return self.profiles[name]

    def add_role_to_instance_profile(self, profile: str, role: str) -> None:
        self.writes.append(f"add_role {role}")
        current = self.profiles[profile]
        self.profiles[profile] = InstanceProfile(profile, current.arn, (*current.role_names, role))


@dataclass
class FakeBuckets:
    buckets: dict[str, str] = field(default_factory=dict)
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def get_lifecycle_rules(self, bucket: str) -> list[dict[str, Any]]:
        return list(self.rules.get(bucket, []))

    def put_lifecycle_rules(self, bucket: str, rules: list[dict[str, Any]]) -> None:
        self.rules[bucket] = list(rules)

    def head_bucket(self, bucket: str) -> bool:
        return bucket in self.buckets

    def get_bucket_region(self, bucket: str) -> str:
        return self.buckets[bucket]

    def create_bucket(self, bucket: str, region: str, *, tags: Any) -> None:
        self.buckets[bucket] = region


def run(  # type: ignore[no-untyped-def]
    iam: FakeIam,
    buckets: FakeBuckets,
    dry_run: bool = False,
    writes: Any = None,
    region: str = "eu-west-1",
    grants: Any = (),
):
    plan = plan_setup(
        iam,  # type: ignore[arg-type]
        buckets,  # type: ignore[arg-type]
        bucket="b1",
        region=region,
        grants=grants,
        config_writes=writes,
    )
    return apply_setup(plan, dry_run=dry_run)


def test_first_run_creates_everything_and_second_changes_nothing() -> None:
    iam, buckets = FakeIam(), FakeBuckets()
    written: list[str] = []
    first = run(iam, buckets, writes=[("aws.s3_bucket", "b1", lambda: written.append("bucket"))])
    assert first.changed
    assert {s.action for s in first.steps} == {"create", "update"}
    assert buckets.buckets == {"b1": "eu-west-1"}
    assert iam.roles["runctl-instance-role"].trust_policy == EC2_TRUST
    assert (
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
        in iam.attached["runctl-instance-role"]
    )
    assert iam.inline[("runctl-instance-role", INLINE_POLICY)] == bucket_policy("b1")
    assert iam.profiles["runctl-instance"].role_names == ("runctl-instance-role",)
    assert written == ["bucket"]
    iam.writes.clear()
    second = run(iam, buckets, writes=[("aws.s3_bucket", "b1", None)])
    assert not second.changed
    assert {s.action for s in second.steps} == {"ok"}
    assert iam.writes == []


def test_dry_run_changes_nothing() -> None:
    iam, buckets = FakeIam(), FakeBuckets()
    result = run(iam, buckets, dry_run=True)
    assert result.dry_run and not result.changed
    assert iam.writes == [] and buckets.buckets == {}
    assert any(s.action == "create" for s in result.steps)


def test_a_changed_inline_policy_is_updated() -> None:
    iam, buckets = FakeIam(), FakeBuckets()
    run(iam, buckets)
    iam.inline[("runctl-instance-role", INLINE_POLICY)] = {"old": True}
    result = run(iam, buckets)
    assert [s.name for s in result.steps if s.action == "update"] == [INLINE_POLICY]


def test_policy_grants_only_the_runctl_prefix() -> None:
    policy = bucket_policy("b1")
    s3 = [s for s in policy["Statement"] if str(s["Resource"]).startswith("arn:aws:s3")]
    resources = [s["Resource"] for s in s3]
    assert "arn:aws:s3:::b1/runctl/*" in resources
    assert all(r in ("arn:aws:s3:::b1", "arn:aws:s3:::b1/runctl/*") for r in resources)


def test_policy_lets_the_runner_stop_only_runctl_instances() -> None:
    (ec2,) = [s for s in bucket_policy("b1")["Statement"] if s["Sid"] == "FinishRunctlInstances"]
    assert sorted(ec2["Action"]) == ["ec2:StopInstances", "ec2:TerminateInstances"]
    assert ec2["Condition"] == {"StringEquals": {"aws:ResourceTag/runctl:managed": "true"}}
    assert default_bucket_name("123456789012", "us-east-1") == "runctl-123456789012-us-east-1"


def test_the_role_may_log_in_to_ecr_and_pull_only_runctl_repositories() -> None:
    iam, buckets = FakeIam(), FakeBuckets()
    first = run(iam, buckets)
    assert [s.action for s in first.steps if s.name == ECR_POLICY] == ["create"]
    document = iam.inline[("runctl-instance-role", ECR_POLICY)]
    assert document == ecr_pull_policy(region="eu-west-1")
    login, pull = document["Statement"]
    assert (login["Action"], login["Resource"]) == ("ecr:GetAuthorizationToken", "*")
    assert "ecr:BatchGetImage" in pull["Action"] and "ecr:PutImage" not in pull["Action"]
    assert pull["Resource"] == "arn:aws:ecr:*:*:repository/runctl/*"
    iam.inline[("runctl-instance-role", ECR_POLICY)] = {"old": True}
    again = run(iam, buckets)
    assert [s.name for s in again.steps if s.action == "update"] == [ECR_POLICY]


@pytest.mark.parametrize(
    ("region", "partition"),
    [("cn-northwest-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov"), ("eu-west-1", "aws")],
)
def test_every_arn_setup_writes_is_in_the_regions_partition(region: str, partition: str) -> None:
    iam, buckets = FakeIam(), FakeBuckets()
    run(iam, buckets, region=region, grants=[parse_grant("s3://data/x/", read_only=True)])
    assert iam.attached["runctl-instance-role"] == [
        f"arn:{partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
    ]
    assert ssm_core_policy_arn(region) == iam.attached["runctl-instance-role"][0]
    documents = json.dumps(list(iam.inline.values()))
    arns = re.findall(r'"(arn:[^"]+)"', documents)
    assert arns and all(a.startswith(f"arn:{partition}:") for a in arns)


def test_grants_add_one_policy_per_prefix_and_are_idempotent() -> None:
    iam, buckets = FakeIam(), FakeBuckets()
    data = parse_grant("s3://my-data/datasets", read_only=True)
    out = parse_grant("s3://my-out/results/", read_only=False)
    assert data == Grant("s3://my-data/datasets/", True)
    first = run(iam, buckets, grants=[data, out])
    created = [s for s in first.steps if s.name.startswith("runctl-grant-")]
    assert [(s.action, s.detail) for s in created] == [
        ("create", "read-only s3://my-data/datasets/"),
        ("create", "read/write s3://my-out/results/"),
    ]
    read_only = iam.inline[("runctl-instance-role", data.policy_name)]
    assert read_only == grant_policy(data, region="eu-west-1")
    objects = next(s for s in read_only["Statement"] if s["Sid"] == "GrantedObjects")
    assert objects["Action"] == ["s3:GetObject"]
    assert objects["Resource"] == "arn:aws:s3:::my-data/datasets/*"
    listing = next(s for s in read_only["Statement"] if s["Sid"] == "ListGrantedPrefix")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["datasets/*"]}}
    writable = iam.inline[("runctl-instance-role", out.policy_name)]
    assert (
        "s3:PutObject"
        in next(s for s in writable["Statement"] if s["Sid"] == "GrantedObjects")["Action"]
    )
    iam.writes.clear()
    again = run(iam, buckets, grants=[data, out])
    assert not again.changed and iam.writes == []
    # Turning a read-only grant into read/write is an update of the same policy.
    widened = run(iam, buckets, grants=[parse_grant("s3://my-data/datasets/", read_only=False)])
    assert [s.action for s in widened.steps if s.name == data.policy_name] == ["update"]


@pytest.mark.parametrize("bad", ["my-data/x/", "s3://", "s3://Bad_Bucket/x/", "https://b/x"])
def test_a_bad_grant_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_grant(bad, read_only=False)
    assert info.value.exit_code == 2 and "--grant" in info.value.message


def _lifecycle_step(result: Any) -> Any:
    (step,) = [s for s in result.steps if s.resource == "bucket-lifecycle"]
    return step


def test_an_existing_abort_rule_for_the_whole_bucket_is_enough() -> None:
    iam, buckets = FakeIam(), FakeBuckets(buckets={"b1": "eu-west-1"})
    theirs = {
        "ID": "their-abort",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3},
    }
    buckets.rules["b1"] = [theirs]

    step = _lifecycle_step(run(iam, buckets))

    assert step.action == "ok"
    assert step.detail == "rule their-abort aborts unfinished uploads after 3d"
    assert buckets.rules["b1"] == [theirs]


def test_a_narrower_or_disabled_abort_rule_gets_ours_beside_it() -> None:
    iam, buckets = FakeIam(), FakeBuckets(buckets={"b1": "eu-west-1"})
    narrow = {
        "ID": "tmp-only",
        "Status": "Enabled",
        "Filter": {"Prefix": "tmp/"},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    }
    ours_changed = {
        "ID": "runctl-abort-incomplete-uploads",
        "Status": "Disabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }
    buckets.rules["b1"] = [narrow, ours_changed]

    step = _lifecycle_step(run(iam, buckets))

    assert step.action == "update"
    assert buckets.rules["b1"] == [narrow, {**ours_changed, "Status": "Enabled"}]
