"""``aws setup``: the bucket, the instance role and the instance profile runctl's instances need.

The role may use SSM, read and write the bucket's ``runctl/`` prefix, stop or terminate
runctl-managed instances, and pull container images from ECR repositories ``runctl/*``
(``aws train --docker``).

The bucket also gets a lifecycle rule aborting multipart uploads left unfinished for 7 days (a
killed upload's parts are otherwise stored and billed forever), beside the rules it has; see
https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpu-abort-incomplete-mpu-lifecycle-config.html

Planning and doing are one pipeline: :func:`plan_setup` inspects what exists and returns the steps,
each with the action that would bring it in line; :func:`apply_setup` runs them (a dry run just
shows the plan). A second run finds everything in place and changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runctl.aws.partitions import arn
from runctl.errors import UsageError
from runctl.job.spec import as_prefix, split_s3_uri
from runctl.services import tags as tagging

if TYPE_CHECKING:
    from pathlib import Path

    from runctl.aws.buckets import Buckets
    from runctl.aws.iam import Iam
    from runctl.aws.session import AwsContext
    from runctl.config_cache import ResolvedConfig

DEFAULT_PROFILE = "runctl-instance"
ABORT_RULE_ID = "runctl-abort-incomplete-uploads"
ABORT_AFTER_DAYS = 7
ABORT_RULE: dict[str, Any] = {
    "ID": ABORT_RULE_ID,
    "Status": "Enabled",
    "Filter": {"Prefix": ""},
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_AFTER_DAYS},
}
ROLE_SUFFIX = "-role"
INLINE_POLICY = "runctl-bucket-access"
ECR_POLICY = "runctl-ecr-pull"
#: The ECR repositories runctl's instances may pull from (``[docker] repository`` default).
ECR_REPOSITORIES = "runctl/*"
GRANT_POLICY_PREFIX = "runctl-grant-"
SSM_CORE_POLICY_NAME = "AmazonSSMManagedInstanceCore"
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def ssm_core_policy_arn(region: str) -> str:
    """``AmazonSSMManagedInstanceCore`` in the partition of ``region``."""
    return arn(region, "iam", f"policy/{SSM_CORE_POLICY_NAME}", account="aws")


def bucket_policy(
    bucket: str, prefix: str = "runctl", *, region: str = "us-east-1"
) -> dict[str, Any]:
    """Inline policy: list, read and write objects under ``<prefix>/`` of the bucket only, and
    stop or terminate runctl-managed instances (``--stop-on-finish``/``--terminate-on-finish``
    are applied by the runner on the instance itself). ARNs are in ``region``'s partition."""
    bucket_arn = arn(region, "s3", bucket)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListRunctlPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*", f"{prefix}/"]}},
            },
            {
                "Sid": "LocateBucket",
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
                "Resource": bucket_arn,
            },
            {
                "Sid": "RunctlObjects",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                "Resource": f"{bucket_arn}/{prefix}/*",
            },
            {
                "Sid": "FinishRunctlInstances",
                "Effect": "Allow",
                "Action": ["ec2:StopInstances", "ec2:TerminateInstances"],
                "Resource": arn(region, "ec2", "instance/*", account="*", scope="*"),
                "Condition": {"StringEquals": {"aws:ResourceTag/runctl:managed": "true"}},
            },
        ],
    }


def ecr_pull_policy(*, region: str) -> dict[str, Any]:
    """Inline policy: log in to ECR and pull images from its repositories ``runctl/*`` (in any
    region of ``region``'s partition), for ``aws train --docker``."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EcrLogin",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {
                "Sid": "PullRunctlImages",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                ],
                "Resource": arn(
                    region, "ecr", f"repository/{ECR_REPOSITORIES}", account="*", scope="*"
                ),
            },
        ],
    }


@dataclass(frozen=True)
class Grant:
    """Extra S3 access for the instance role: ``s3://bucket/prefix/``, read-only or read/write."""

    uri: str
    read_only: bool = False

    @property
    def policy_name(self) -> str:
        """A stable inline-policy name per URI (IAM names: 128 characters of ``\\w+=,.@-``)."""
        readable = re.sub(r"[^\w+=,.@-]+", "-", self.uri.removeprefix("s3://")).strip("-")
        digest = hashlib.sha256(self.uri.encode()).hexdigest()[:8]
        return f"{GRANT_POLICY_PREFIX}{readable[:100]}-{digest}"

    def describe(self) -> str:
        return f"{'read-only' if self.read_only else 'read/write'} {self.uri}"


def parse_grant(uri: str, *, read_only: bool) -> Grant:
    """A Grant for ``s3://bucket/prefix/`` (a prefix always ends with ``/``); UsageError else."""
    try:
        bucket, key = split_s3_uri(uri)
    except ValueError as exc:
        raise UsageError(
            f"--grant {uri!r}: {exc}", hint="e.g. --grant s3://my-data/datasets/"
        ) from None
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise UsageError(f"--grant {uri!r}: {bucket!r} is not a bucket name", resource=uri)
    return Grant(f"s3://{bucket}/{as_prefix(key)}", read_only)


def grant_policy(grant: Grant, *, region: str) -> dict[str, Any]:
    """Inline policy for a Grant: list the prefix, read its objects and (unless read-only)
    write and delete them."""
    bucket, prefix = split_s3_uri(grant.uri)
    bucket_arn = arn(region, "s3", bucket)
    actions = ["s3:GetObject"]
    if not grant.read_only:
        actions += [
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        ]
    listing: dict[str, Any] = {
        "Sid": "ListGrantedPrefix",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": bucket_arn,
    }
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            listing,
            {
                "Sid": "LocateGrantedBucket",
                "Effect": "Allow",
                "Action": "s3:GetBucketLocation",
                "Resource": bucket_arn,
            },
            {
                "Sid": "GrantedObjects",
                "Effect": "Allow",
                "Action": actions,
                "Resource": f"{bucket_arn}/{prefix}*",
            },
        ],
    }


@dataclass
class SetupStep:
    """One resource and what setup does about it: ``create``, ``update`` or ``ok``."""

    resource: str
    name: str
    action: str
    detail: str


@dataclass
class SetupPlan:
    bucket: str
    role: str
    instance_profile: str
    region: str
    steps: list[SetupStep] = field(default_factory=list)
    actions: list[Callable[[], object]] = field(default_factory=list, repr=False)

    @property
    def changes(self) -> list[SetupStep]:
        return [step for step in self.steps if step.action != "ok"]

    def add(self, step: SetupStep, action: Callable[[], object] | None = None) -> None:
        self.steps.append(step)
        if action is not None and step.action != "ok":
            self.actions.append(action)


@dataclass
class SetupResult:
    """What setup found and did; ``changed`` is False on a run that found everything in place."""

    bucket: str
    role: str
    instance_profile: str
    region: str
    dry_run: bool
    changed: bool
    steps: list[SetupStep]

    @property
    def changes(self) -> list[SetupStep]:
        return [step for step in self.steps if step.action != "ok"]


def plan_setup(
    iam: Iam,
    buckets: Buckets,
    *,
    bucket: str,
    region: str,
    profile_name: str = DEFAULT_PROFILE,
    grants: Sequence[Grant] = (),
    config_writes: list[tuple[str, str, Callable[[], object] | None]] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SetupPlan:
    """Inspect the bucket, role, policies and profile; return the steps to bring them in line.

    ``grants`` extend the role to other S3 prefixes (one inline policy each). ``config_writes``
    are (key, value, writer) triples; a None writer means the key is already set.
    """
    tags = tagging.resource_tags(
        project="runctl", user=tagging.current_user(), name=profile_name, created=now()
    )
    existing_profile = iam.get_instance_profile(profile_name)
    role_name = (
        existing_profile.role_names[0]
        if existing_profile and existing_profile.role_names
        else profile_name + ROLE_SUFFIX
    )
    plan = SetupPlan(bucket, role_name, profile_name, region)
    _plan_bucket(plan, buckets, tags)
    _plan_role(plan, iam, tags)
    for grant in grants:
        _plan_grant(plan, iam, grant)
    if existing_profile is None:
        plan.add(
            SetupStep("instance-profile", profile_name, "create", "instance profile"),
            lambda: iam.create_instance_profile(profile_name, tags=tags),
        )
    else:
        plan.add(SetupStep("instance-profile", profile_name, "ok", "exists"))
    holds_role = existing_profile is not None and role_name in existing_profile.role_names
    plan.add(
        SetupStep(
            "instance-profile",
            profile_name,
            "ok" if holds_role else "update",
            f"holds role {role_name}",
        ),
        lambda: iam.add_role_to_instance_profile(profile_name, role_name),
    )
    for key, value, writer in config_writes or []:
        action = "ok" if writer is None else "update"
        plan.add(SetupStep("config", key, action, f"{key} = {value!r}"), writer)
    return plan


def _plan_bucket(plan: SetupPlan, buckets: Buckets, tags: dict[str, str]) -> None:
    bucket, region = plan.bucket, plan.region
    if not buckets.head_bucket(bucket):
        detail = f"bucket in {region}"
        plan.add(
            SetupStep("bucket", bucket, "create", detail),
            lambda: buckets.create_bucket(bucket, region, tags=tags),
        )
        _plan_abort_rule(plan, buckets, [])
        return
    actual = buckets.get_bucket_region(bucket)
    note = "exists" if actual == region else f"exists in {actual} (instances run in {region})"
    plan.add(SetupStep("bucket", bucket, "ok", note))
    _plan_abort_rule(plan, buckets, buckets.get_lifecycle_rules(bucket))


def _covers_bucket(rule: dict[str, Any]) -> bool:
    """True for an enabled rule, for every key, aborting unfinished uploads within 7 days."""
    days = (rule.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation")
    scope = rule.get("Filter", {"Prefix": rule.get("Prefix", "")})
    whole = scope in ({}, {"Prefix": ""})
    return rule.get("Status") == "Enabled" and whole and days is not None and days <= 7


def _plan_abort_rule(plan: SetupPlan, buckets: Buckets, rules: list[dict[str, Any]]) -> None:
    """The lifecycle rule aborting unfinished multipart uploads, added beside existing rules."""
    name, bucket = "abort-incomplete-uploads", plan.bucket
    covering = next((r for r in rules if _covers_bucket(r)), None)
    if covering is not None:
        days = covering["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        detail = f"rule {covering.get('ID', '(unnamed)')} aborts unfinished uploads after {days}d"
        plan.add(SetupStep("bucket-lifecycle", name, "ok", detail))
        return
    others = [r for r in rules if r.get("ID") != ABORT_RULE_ID]
    action = "update" if len(others) < len(rules) else "create"
    plan.add(
        SetupStep(
            "bucket-lifecycle",
            name,
            action,
            f"abort multipart uploads unfinished after {ABORT_AFTER_DAYS} days",
        ),
        lambda: buckets.put_lifecycle_rules(bucket, [*others, ABORT_RULE]),
    )


def _plan_role(plan: SetupPlan, iam: Iam, tags: dict[str, str]) -> None:
    role_name, bucket = plan.role, plan.bucket
    role = iam.get_role(role_name)
    if role is None:
        plan.add(
            SetupStep("role", role_name, "create", "trusted by ec2.amazonaws.com"),
            lambda: iam.create_role(
                role_name,
                EC2_TRUST,
                description="runctl instances: SSM and bucket access",
                tags=tags,
            ),
        )
    else:
        trusted = "ec2.amazonaws.com" in str(role.trust_policy)
        plan.add(
            SetupStep(
                "role", role_name, "ok" if trusted else "update", "trusted by ec2.amazonaws.com"
            ),
            lambda: iam.update_assume_role_policy(role_name, EC2_TRUST),
        )
    ssm_core = ssm_core_policy_arn(plan.region)
    attached = role is not None and ssm_core in iam.list_attached_role_policies(role_name)
    plan.add(
        SetupStep(
            "role-policy",
            SSM_CORE_POLICY_NAME,
            "ok" if attached else "create",
            f"attached to {role_name}",
        ),
        lambda: iam.attach_role_policy(role_name, ssm_core),
    )
    wanted = bucket_policy(bucket, region=plan.region)
    current = iam.get_role_policy(role_name, INLINE_POLICY) if role is not None else None
    action = "ok" if current == wanted else ("create" if current is None else "update")
    plan.add(
        SetupStep("role-policy", INLINE_POLICY, action, f"read/write s3://{bucket}/runctl/*"),
        lambda: iam.put_role_policy(role_name, INLINE_POLICY, wanted),
    )
    pull = ecr_pull_policy(region=plan.region)
    current = iam.get_role_policy(role_name, ECR_POLICY) if role is not None else None
    action = "ok" if current == pull else ("create" if current is None else "update")
    plan.add(
        SetupStep("role-policy", ECR_POLICY, action, f"pull ECR images {ECR_REPOSITORIES}"),
        lambda: iam.put_role_policy(role_name, ECR_POLICY, pull),
    )
    _plan_recovery_policy(plan, iam, exists=role is not None)


def _plan_recovery_policy(plan: SetupPlan, iam: Iam, *, exists: bool) -> None:
    """The grant that lets a job's instance launch its successor (``--auto-resume --detach``)."""
    from runctl.services.account.recovery_grant import RECOVERY_POLICY, recovery_policy

    role_name = plan.role
    wanted = recovery_policy(role_name, region=plan.region)
    current = iam.get_role_policy(role_name, RECOVERY_POLICY) if exists else None
    action = "ok" if current == wanted else ("create" if current is None else "update")
    plan.add(
        SetupStep(
            "role-policy", RECOVERY_POLICY, action, "launch runctl-tagged successors of its jobs"
        ),
        lambda: iam.put_role_policy(role_name, RECOVERY_POLICY, wanted),
    )


def _plan_grant(plan: SetupPlan, iam: Iam, grant: Grant) -> None:
    role_name, name = plan.role, grant.policy_name
    wanted = grant_policy(grant, region=plan.region)
    current = iam.get_role_policy(role_name, name) if iam.get_role(role_name) else None
    action = "ok" if current == wanted else ("create" if current is None else "update")
    plan.add(
        SetupStep("role-policy", name, action, grant.describe()),
        lambda: iam.put_role_policy(role_name, name, wanted),
    )


def apply_setup(plan: SetupPlan, *, dry_run: bool) -> SetupResult:
    """Run the plan's actions in order (none when ``dry_run``)."""
    if not dry_run:
        for action in plan.actions:
            action()
    return SetupResult(
        bucket=plan.bucket,
        role=plan.role,
        instance_profile=plan.instance_profile,
        region=plan.region,
        dry_run=dry_run,
        changed=bool(plan.changes) and not dry_run,
        steps=plan.steps,
    )


def default_bucket_name(account_id: str, region: str) -> str:
    """``runctl-<account>-<region>``: unique per account and region, valid as a bucket name."""
    return f"runctl-{account_id}-{region}"


def set_up_account(
    aws: AwsContext,
    resolved: ResolvedConfig,
    *,
    config_path: Path | None,
    cwd: Path,
    grants: Sequence[Grant] = (),
    dry_run: bool = False,
) -> SetupResult:
    """``aws setup``: the bucket (``aws.s3_bucket``, else one named after the account and
    region), the instance role and profile, the ``grants``, and the two names written to the
    config file that does not have them yet (``--config``, else the project's ``.runctl.toml``).
    """
    from runctl.aws.buckets import Buckets
    from runctl.aws.iam import Iam
    from runctl.aws.sts import get_caller_identity
    from runctl.config_file import set_value
    from runctl.paths import PROJECT_FILE, find_project_file

    region = aws.region_name
    settings = resolved.settings.aws
    name = settings.s3_bucket or default_bucket_name(
        get_caller_identity(aws.sts()).account_id, region
    )
    profile = settings.iam_instance_profile or DEFAULT_PROFILE
    target = config_path or find_project_file(cwd) or cwd / PROJECT_FILE

    def writer(key: str, value: str) -> Callable[[], object] | None:
        if resolved.file_for(key) is not None:
            return None  # a config file already says it
        return lambda: set_value(target, key, value)

    writes = [
        (key, value, writer(key, value))
        for key, value in (("aws.s3_bucket", name), ("aws.iam_instance_profile", profile))
    ]
    plan = plan_setup(
        Iam(aws.iam()),
        Buckets(aws.s3()),
        bucket=name,
        region=region,
        profile_name=profile,
        grants=grants,
        config_writes=writes,
    )
    return apply_setup(plan, dry_run=dry_run)
