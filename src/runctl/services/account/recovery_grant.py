"""The instance role's grant for recovery with the laptop closed, and the check of it.

A job started with ``aws train --auto-resume --detach`` is recovered by its own runner, which
launches the successor instance on a spot notice (runctl.remote.succession) with the instance
role's credentials. ``aws setup`` puts :func:`recovery_policy` on the role -- exactly what that
launch needs, each part scoped:

- ``ec2:RunInstances`` of an *instance* only when the request tags it ``runctl:managed=true``
  (``aws:RequestTag``), so the role cannot launch anything runctl would not own, list and clean
  up; the other resources a launch touches (image, subnet, security group, network interface,
  volume, key pair, spot request) are named by type;
- ``ec2:CreateTags`` only as part of that launch (``ec2:CreateAction = RunInstances``), so the
  role cannot retag existing instances into ``runctl:managed``;
- ``iam:PassRole`` of this role only, only to EC2: the successor gets the same profile, never a
  more powerful one.

:func:`check_recovery_grant` asks IAM (SimulatePrincipalPolicy) whether a role has all of it (what
``doctor`` is to report); :func:`require_recovery_grant` refuses ``aws train --auto-resume
--detach`` (exit 4) on an instance whose role lacks it, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runctl.aws.partitions import arn

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance
    from runctl.aws.iam import Iam

RECOVERY_POLICY = "runctl-recovery"
#: The resource types a RunInstances request names besides the instance itself.
LAUNCH_RESOURCES = (
    "image/*",
    "subnet/*",
    "security-group/*",
    "network-interface/*",
    "volume/*",
    "key-pair/*",
    "spot-instances-request/*",
)


def _ec2(region: str, resource: str) -> str:
    return arn(region, "ec2", resource, account="*", scope="*")


def recovery_policy(role_name: str, *, region: str) -> dict[str, Any]:
    """The inline policy that lets an instance with role ``role_name`` launch its successor."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "LaunchRunctlInstances",
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": _ec2(region, "instance/*"),
                "Condition": {"StringEquals": {"aws:RequestTag/runctl:managed": "true"}},
            },
            {
                "Sid": "LaunchResources",
                "Effect": "Allow",
                "Action": "ec2:RunInstances",
                "Resource": [_ec2(region, resource) for resource in LAUNCH_RESOURCES],
            },
            {
                "Sid": "TagAtLaunch",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": [
                    _ec2(region, "instance/*"),
                    _ec2(region, "volume/*"),
                    _ec2(region, "spot-instances-request/*"),
                ],
                "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
            },
            {
                "Sid": "PassOwnRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": arn(region, "iam", f"role/{role_name}", account="*"),
                "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            },
        ],
    }


@dataclass(frozen=True)
class GrantGap:
    """One thing the recovery launch needs that the role may not do."""

    action: str
    resource: str
    decision: str

    def describe(self) -> str:
        return f"{self.action} on {self.resource}: {self.decision}"


def check_recovery_grant(iam: Iam, role_arn: str, *, region: str) -> list[GrantGap]:
    """What the role lacks for launching a successor (empty: the grant is complete). Raises what
    SimulatePrincipalPolicy raises (AuthError when the caller may not simulate)."""
    role_name = role_arn.rsplit("/", 1)[-1]
    checks = [
        ("ec2:RunInstances", _ec2(region, "instance/*"), {"aws:RequestTag/runctl:managed": "true"}),
        ("ec2:RunInstances", _ec2(region, "image/*"), {}),
        ("ec2:CreateTags", _ec2(region, "instance/*"), {"ec2:CreateAction": "RunInstances"}),
        (
            "iam:PassRole",
            arn(region, "iam", f"role/{role_name}", account="*"),
            {"iam:PassedToService": "ec2.amazonaws.com"},
        ),
    ]
    gaps = []
    for action, resource, context in checks:
        decision = iam.simulate_principal_policy(role_arn, action, resource, context)
        if decision != "allowed":
            gaps.append(GrantGap(action, resource, decision))
    return gaps


def require_recovery_grant(iam: Iam, instance: Instance, *, region: str) -> list[str]:
    """AuthError (exit 4) when the instance's role lacks the recovery grant, naming what and the
    fix; returns warnings when it could not be checked (no permission to simulate, no role)."""
    from runctl.errors import AuthError, RunctlError
    from runctl.services.account.access import instance_role_arn

    try:
        role_arn = instance_role_arn(iam, instance)
        if role_arn is None:
            return [f"{instance.instance_id} has no instance role: its runner cannot recover it"]
        gaps = check_recovery_grant(iam, role_arn, region=region)
    except RunctlError as exc:
        return [
            f"could not check that the instance role may launch a successor ({exc.message}); "
            "recovery with the laptop closed may fail"
        ]
    if not gaps:
        return []
    role = role_arn.rsplit("/", 1)[-1]
    raise AuthError(
        f"the instance role {role} of {instance.instance_id} may not launch the job's "
        f"successor: {'; '.join(gap.describe() for gap in gaps)}",
        hint="run `runctl aws setup` (it adds the runctl-recovery policy), or drop --detach to "
        "recover from this terminal",
        resource=role,
    )
