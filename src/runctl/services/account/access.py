"""Can the instance role reach the job's S3 URIs? Asked of IAM before a job starts.

``aws setup`` gives the instance role ``s3://<bucket>/runctl/*`` only, but ``--data-s3``,
``--output-s3`` and ``--checkpoint-s3`` take any URI; on AWS the instance then meets AccessDenied
in the middle of the job. :func:`check_instance_s3_access` asks IAM's SimulatePrincipalPolicy,
for the role of the instance's profile, about every action the runner will need on every URI,
and refuses (exit 4) naming the URI and the ``aws setup --grant`` that fixes it.
:func:`role_s3_access` is the same question without the verdict, for ``doctor``.

:func:`check_instance_ecr_access` asks the same of a container job's image in ECR: may the role
log in (``ecr:GetAuthorizationToken``) and pull from the image's repository.

Only the role's identity policies are simulated: a bucket policy, SCP or permission boundary can
still refuse. When the caller may not simulate (no ``iam:SimulatePrincipalPolicy``), the check
says it could not tell and lets the job start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runctl.aws.partitions import arn
from runctl.errors import AuthError, RunctlError
from runctl.job.spec import as_prefix, split_s3_uri

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance
    from runctl.aws.iam import Iam

READ_ACTIONS = ("s3:ListBucket", "s3:GetObject")
WRITE_ACTIONS = ("s3:ListBucket", "s3:PutObject")
READ_WRITE_ACTIONS = ("s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject")
ECR_LOGIN_ACTION = "ecr:GetAuthorizationToken"
ECR_PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")


@dataclass(frozen=True)
class S3Need:
    """What the runner will do with one URI: ``actions`` on it, for ``option``."""

    option: str
    uri: str
    actions: tuple[str, ...]

    @property
    def writes(self) -> bool:
        return "s3:PutObject" in self.actions


@dataclass(frozen=True)
class AccessFinding:
    """IAM's verdict on one action on one URI (``decision``: allowed, implicitDeny, ...)."""

    need: S3Need
    action: str
    resource: str
    decision: str

    @property
    def allowed(self) -> bool:
        return self.decision == "allowed"


def s3_needs(
    *,
    data_s3: str | None = None,
    output_s3: str | None = None,
    checkpoint_s3: str | None = None,
) -> list[S3Need]:
    """The S3 access a job's options ask of the instance role."""
    needs = []
    if data_s3:
        needs.append(S3Need("--data-s3", data_s3, READ_ACTIONS))
    if output_s3:
        needs.append(S3Need("--output-s3", output_s3, WRITE_ACTIONS))
    if checkpoint_s3:
        needs.append(S3Need("--checkpoint-s3", checkpoint_s3, READ_WRITE_ACTIONS))
    return needs


def role_s3_access(
    iam: Iam, role_arn: str, needs: Sequence[S3Need], *, region: str
) -> list[AccessFinding]:
    """IAM's verdict for every action of every need (raises what SimulatePrincipalPolicy does)."""
    findings = []
    for need in needs:
        bucket, key = split_s3_uri(need.uri)
        prefix = as_prefix(key) if key and need.uri.endswith("/") else key
        for action in need.actions:
            if action == "s3:ListBucket":
                resource = arn(region, "s3", bucket)
                context = {"s3:prefix": prefix}
            else:
                resource = arn(region, "s3", f"{bucket}/{prefix}*")
                context = {}
            decision = iam.simulate_principal_policy(role_arn, action, resource, context)
            findings.append(AccessFinding(need, action, resource, decision))
    return findings


def instance_role_arn(iam: Iam, instance: Instance) -> str | None:
    """The ARN of the role in the instance's profile, or None (no profile, or no role)."""
    if not instance.iam_instance_profile_arn:
        return None
    return profile_role_arn(iam, instance.iam_instance_profile_arn)


def profile_role_arn(iam: Iam, profile: str) -> str | None:
    """The ARN of the role in an instance profile (name or ARN), or None."""
    found = iam.get_instance_profile(profile.rsplit("/", 1)[-1])
    if found is None or not found.role_names:
        return None
    role = iam.get_role(found.role_names[0])
    return role.arn if role is not None else None


def check_instance_s3_access(
    iam: Iam, instance: Instance, needs: Sequence[S3Need], *, region: str
) -> list[str]:
    """AuthError (exit 4) when the instance's role may not do what ``needs`` ask; returns
    warnings when it could not be checked (no permission to simulate, no role)."""
    profile = instance.iam_instance_profile_arn
    return check_profile_s3_access(iam, profile, needs, region=region, holder=instance.instance_id)


def check_profile_s3_access(
    iam: Iam, profile: str | None, needs: Sequence[S3Need], *, region: str, holder: str
) -> list[str]:
    """:func:`check_instance_s3_access` for the role of an instance profile (name or ARN) that
    ``holder`` (an instance, or what will launch one) uses."""
    if not needs or not profile:
        return []
    try:
        role_arn = profile_role_arn(iam, profile)
        if role_arn is None:
            return []
        findings = role_s3_access(iam, role_arn, needs, region=region)
    except AuthError as exc:
        return [
            "could not check the instance role's S3 access "
            f"({exc.message}); the job may meet AccessDenied on the instance"
        ]
    except RunctlError as exc:
        return [f"could not check the instance role's S3 access: {exc.message}"]
    denied = [f for f in findings if not f.allowed]
    if not denied:
        return []
    first = denied[0]
    role = role_arn.rsplit("/", 1)[-1]
    verb = "write" if first.action in ("s3:PutObject", "s3:DeleteObject") else "read"
    grant = f"runctl aws setup --grant {as_prefix(first.need.uri)}" + (
        "" if first.need.writes else " --read-only"
    )
    raise AuthError(
        f"the instance role {role} of {holder} may not {verb} "
        f"{first.need.uri} ({first.need.option}): {first.action} is {first.decision} "
        f"on {first.resource}",
        hint=f"give the role that access with `{grant}`, or use a URI under the job "
        "bucket's runctl/ prefix (which `runctl aws setup` always grants)",
        resource=first.need.uri,
    )


def check_instance_ecr_access(
    iam: Iam, instance: Instance, repository_arn: str, *, image: str
) -> list[str]:
    """AuthError (exit 4) when the instance's role may not log in to ECR or pull from
    ``repository_arn``; returns warnings when it could not be checked."""
    checks = [(ECR_LOGIN_ACTION, "*")] + [(action, repository_arn) for action in ECR_PULL_ACTIONS]
    try:
        role_arn = instance_role_arn(iam, instance)
        if role_arn is None:
            return []
        decisions = [
            (action, resource, iam.simulate_principal_policy(role_arn, action, resource, {}))
            for action, resource in checks
        ]
    except RunctlError as exc:
        return [
            f"could not check the instance role's ECR access ({exc.message}); the job may "
            "meet AccessDenied when the instance pulls its image"
        ]
    denied = [(a, r, d) for a, r, d in decisions if d != "allowed"]
    if not denied:
        return []
    action, resource, decision = denied[0]
    role = role_arn.rsplit("/", 1)[-1]
    raise AuthError(
        f"the instance role {role} of {instance.instance_id} may not pull {image}: {action} is "
        f"{decision} on {resource}",
        hint="run `runctl aws setup` (it lets runctl's instances pull from ECR repositories "
        "runctl/*), and keep the image in such a repository ([docker] repository)",
        resource=image,
    )
