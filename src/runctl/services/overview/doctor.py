"""``doctor``: why a first run would fail, said before it fails.

Each check asks AWS one question and says, when the answer is wrong, what to do about it:
credentials and identity; the region; the job bucket and its region; the instance profile
``aws setup`` creates, its role's SSM core policy, its access to the bucket and its grant to
launch a job's successor for ``--auto-resume --detach`` (IAM SimulatePrincipalPolicy); the vCPU
quota of the instance type's family against what runs (Service Quotas); the AMI a launch would
choose; and, when runctl instances run, whether their SSM agents are online. A check that cannot
run because an earlier one failed is skipped, and a check AWS would not answer (no permission to
simulate or to read quotas) is reported unknown, which does not fail the run. Each failed check
carries the exit code of its kind of failure; the command exits with the first one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runctl.errors import AuthError, ExitCode, RunctlError, UsageError
from runctl.naming import region_problem
from runctl.services import tags as tagging
from runctl.services.account.access import READ_WRITE_ACTIONS, S3Need, role_s3_access

if TYPE_CHECKING:
    from runctl.aws.ec2 import Ec2
    from runctl.aws.iam import Iam
    from runctl.aws.quotas import ServiceQuotas
    from runctl.aws.session import AwsContext
    from runctl.aws.ssm import Ssm
    from runctl.config import Settings

PASSED, FAILED, UNKNOWN, SKIPPED = "passed", "failed", "unknown", "skipped"


@dataclass
class Check:
    """One line of ``doctor``: what was checked, the outcome, and the fix when it failed."""

    name: str
    status: str
    detail: str
    fix: str | None = None
    exit_code: int = 0

    @property
    def failed(self) -> bool:
        return self.status == FAILED


@dataclass
class DoctorReport:
    """Every check in order; ``ok`` only when none failed."""

    region: str
    instance_type: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(c.failed for c in self.checks)

    @property
    def exit_code(self) -> int:
        """The exit code of the first failed check (0 when all passed)."""
        return next((c.exit_code for c in self.checks if c.failed), 0)

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "region": self.region,
            "instance_type": self.instance_type,
            "checks": [
                {"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix}
                for c in self.checks
            ],
        }


def _passed(name: str, detail: str) -> Check:
    return Check(name, PASSED, detail)


def _failed(name: str, detail: str, fix: str, code: ExitCode) -> Check:
    return Check(name, FAILED, detail, fix, int(code))


def _from_error(name: str, err: RunctlError) -> Check:
    """A check whose question AWS refused or could not answer."""
    if isinstance(err, AuthError):
        return Check(name, UNKNOWN, f"could not check: {err.message}", err.hint)
    return _failed(name, err.message, err.hint or "see the message", err.exit_code)


@dataclass
class Doctor:
    """The checks, on the wrappers of one region (built by :func:`run_doctor`)."""

    aws: AwsContext
    settings: Settings
    region: str
    instance_type: str
    ec2: Ec2
    iam: Iam
    ssm: Ssm
    quotas: ServiceQuotas

    def credentials(self) -> Check:
        from runctl.aws.sts import get_caller_identity

        who = get_caller_identity(self.aws.sts())
        return _passed("credentials", f"{who.arn} (account {who.account_id})")

    def region_check(self) -> Check:
        regions = self.ec2.describe_regions()
        if self.region in regions:
            return _passed("region", f"{self.region} is enabled for the account")
        return _failed(
            "region",
            f"{self.region} is not a region enabled for the account",
            f"use one of {', '.join(sorted(regions)[:6])}, ... (--region or aws.region)",
            ExitCode.CONFIG,
        )

    def bucket(self) -> Check:
        from runctl.aws.buckets import Buckets

        name = self.settings.aws.s3_bucket
        if not name:
            return _failed(
                "bucket",
                "no job bucket is configured (aws.s3_bucket)",
                "run `runctl aws setup --bucket NAME`",
                ExitCode.CONFIG,
            )
        buckets = Buckets(self.aws.s3())
        if not buckets.head_bucket(name):
            return _failed(
                "bucket",
                f"bucket {name} does not exist",
                "run `runctl aws setup` to create it",
                ExitCode.NOT_FOUND,
            )
        where = buckets.get_bucket_region(name)
        if where != self.region:
            return _failed(
                "bucket",
                f"bucket {name} is in {where}, instances run in {self.region}",
                f"set aws.region {where} (or --region {where}), or use a bucket in "
                f"{self.region}: every transfer would cross regions",
                ExitCode.CONFIG,
            )
        return _passed("bucket", f"s3://{name}/ exists in {where}")

    def instance_profile(self) -> list[Check]:
        from runctl.services.account.setup import DEFAULT_PROFILE, ssm_core_policy_arn

        name = self.settings.aws.iam_instance_profile or DEFAULT_PROFILE
        profile = self.iam.get_instance_profile(name)
        setup = "run `runctl aws setup`"
        if profile is None:
            return [
                _failed(
                    "instance profile",
                    f"instance profile {name} does not exist",
                    f"{setup} (or set aws.iam_instance_profile)",
                    ExitCode.NOT_FOUND,
                )
            ]
        role = self.iam.get_role(profile.role_names[0]) if profile.role_names else None
        if role is None:
            return [
                _failed(
                    "instance profile",
                    f"instance profile {name} holds no role",
                    setup,
                    ExitCode.NOT_FOUND,
                )
            ]
        checks = [_passed("instance profile", f"{name} with role {role.name}")]
        core = ssm_core_policy_arn(self.region)
        if core in self.iam.list_attached_role_policies(role.name):
            checks.append(_passed("ssm policy", f"{role.name} has AmazonSSMManagedInstanceCore"))
        else:
            checks.append(
                _failed(
                    "ssm policy",
                    f"role {role.name} lacks AmazonSSMManagedInstanceCore: runctl "
                    "cannot reach its instances",
                    setup,
                    ExitCode.AUTH,
                )
            )
        bucket = self.settings.aws.s3_bucket
        if bucket:
            checks.append(self._bucket_access(role.arn, role.name, bucket))
        checks.append(self._recovery_grant(role.arn, role.name))
        return checks

    def _recovery_grant(self, role_arn: str, role: str) -> Check:
        """Whether the role may launch a job's successor (``--auto-resume --detach``)."""
        from runctl.services.account.recovery_grant import RECOVERY_POLICY, check_recovery_grant

        try:
            gaps = check_recovery_grant(self.iam, role_arn, region=self.region)
        except RunctlError as err:
            return _from_error("recovery grant", err)
        if gaps:
            return _failed(
                "recovery grant",
                f"role {role} may not launch a job's successor, which --auto-resume --detach "
                f"needs: {gaps[0].describe()}",
                f"run `runctl aws setup` (it adds the {RECOVERY_POLICY} policy)",
                ExitCode.AUTH,
            )
        return _passed("recovery grant", f"{role} may launch a job's successor (--detach)")

    def _bucket_access(self, role_arn: str, role: str, bucket: str) -> Check:
        uri = f"s3://{bucket}/runctl/"
        need = S3Need("aws.s3_bucket", uri, READ_WRITE_ACTIONS)
        try:
            findings = role_s3_access(self.iam, role_arn, [need], region=self.region)
        except RunctlError as err:
            return _from_error("bucket access", err)
        denied = [f for f in findings if not f.allowed]
        if denied:
            first = denied[0]
            return _failed(
                "bucket access",
                f"role {role} may not {first.action} on {first.resource} ({first.decision})",
                "run `runctl aws setup` to give it the bucket's runctl/ prefix",
                ExitCode.AUTH,
            )
        return _passed("bucket access", f"{role} may read and write {uri} (IAM simulation)")

    def quota(self) -> Check:
        from runctl.services.overview.quotas import vcpu_headroom

        info = self.ec2.describe_instance_type(self.instance_type)
        if info is None:
            return _failed(
                "vcpu quota",
                f"{self.instance_type} is not an instance type in {self.region}",
                "pick another --instance-type",
                ExitCode.USAGE,
            )
        spot = self.settings.aws.use_spot
        room = vcpu_headroom(self.ec2, self.quotas, self.instance_type, info.vcpus, spot=spot)
        said = (
            f"{room.market} {room.group}: {room.used_vcpus} vCPUs in use, "
            f"{self.instance_type} needs {room.needed_vcpus}"
        )
        if room.fits is None:
            return Check(
                "vcpu quota", UNKNOWN, f"{said}; Service Quotas does not know {room.quota_code}"
            )
        limit = f"of {room.quota_vcpus:g}"
        if room.fits:
            return _passed("vcpu quota", f"{said} {limit}")
        wanted = room.used_vcpus + room.needed_vcpus
        return _failed(
            "vcpu quota",
            f"{said} {limit}: the launch would exceed the quota",
            f"stop or terminate instances of the family, or ask for more: `aws service-quotas "
            f"request-service-quota-increase --service-code ec2 --quota-code {room.quota_code} "
            f"--desired-value {max(wanted, 2 * int(room.quota_vcpus or 0))}`",
            ExitCode.CAPACITY,
        )

    def image(self) -> Check:
        from runctl.services.instances.amis import choose_image

        info = self.ec2.describe_instance_type(self.instance_type)
        if info is None:
            return Check("ami", SKIPPED, f"{self.instance_type} is not an instance type")
        choice = choose_image(
            self.ec2, self.ssm, info, ami_id=self.settings.aws.default_ami, source="aws.default_ami"
        )
        return _passed("ami", f"{choice.image.image_id} ({choice.image.name}; {choice.reason})")

    def ssm_online(self) -> Check:
        filters = {
            **tagging.managed_filters(None, tagging.current_user()),
            "instance-state-name": ["running"],
        }
        running = [i.instance_id for i in self.ec2.describe_instances(filters=filters)]
        if not running:
            return Check("ssm", SKIPPED, "no runctl instance of yours runs")
        agents = self.ssm.describe_instance_information(running)
        offline = [i for i in running if i not in agents or not agents[i].online]
        if offline:
            return _failed(
                "ssm",
                f"{len(offline)} of {len(running)} running instance(s) not online in "
                f"SSM: {', '.join(offline)}",
                "give them the instance profile from `runctl aws setup` and outbound HTTPS; "
                "an instance that just booted needs a minute",
                ExitCode.WRONG_STATE,
            )
        return _passed("ssm", f"{len(running)} running instance(s) online in SSM")


def run_doctor(aws: AwsContext, settings: Settings, *, instance_type: str | None) -> DoctorReport:
    """Every check, in order; later checks are skipped when credentials or the region fail.
    UsageError (before any AWS call) for a region that cannot be one."""
    from runctl.aws.ec2 import Ec2
    from runctl.aws.iam import Iam
    from runctl.aws.quotas import ServiceQuotas
    from runctl.aws.ssm import Ssm

    region = aws.region_name
    problem = region_problem(region)
    if problem is not None:
        raise UsageError(problem, hint="e.g. --region us-east-1")
    chosen = instance_type or settings.aws.default_instance_type
    report = DoctorReport(region, chosen)
    doctor = Doctor(
        aws,
        settings,
        region,
        chosen,
        Ec2(aws.ec2()),
        Iam(aws.iam()),
        Ssm(aws.ssm()),
        ServiceQuotas(aws.client("service-quotas")),
    )
    for name, check in (("credentials", doctor.credentials), ("region", doctor.region_check)):
        report.checks.extend(_run(name, check))
        if report.checks[-1].failed:
            rest = ("bucket", "instance profile", "vcpu quota", "ami", "ssm")
            report.checks.extend(Check(n, SKIPPED, f"needs {name}") for n in rest)
            return report
    steps: tuple[tuple[str, Callable[[], Check | list[Check]]], ...] = (
        ("bucket", doctor.bucket),
        ("instance profile", doctor.instance_profile),
        ("vcpu quota", doctor.quota),
        ("ami", doctor.image),
        ("ssm", doctor.ssm_online),
    )
    for name, step in steps:
        report.checks.extend(_run(name, step))
    return report


def _run(name: str, check: Callable[[], Check | list[Check]]) -> list[Check]:
    try:
        found = check()
    except RunctlError as err:
        if name == "credentials":
            fix = err.hint or "configure AWS credentials"
            return [_failed(name, err.message, fix, err.exit_code)]
        return [_from_error(name, err)]
    except Exception as exc:  # a diagnosis goes on past an answer it cannot parse
        said = f"unexpected {type(exc).__name__}: {str(exc)[:200]}"
        return [_failed(name, said, "re-run with --debug, or report it", ExitCode.INTERNAL)]
    return found if isinstance(found, list) else [found]
