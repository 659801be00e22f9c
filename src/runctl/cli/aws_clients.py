"""Typed AWS wrappers and the job session for a command, built from the invocation's state
(boto3 loads lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from runctl.cli.output import Output
from runctl.cli.state import get_state

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_ecr import ECRClient

    from runctl.aws.ebs import Ebs
    from runctl.aws.ec2 import Ec2
    from runctl.aws.session import AwsContext
    from runctl.aws.ssm import Ssm
    from runctl.config import Settings
    from runctl.services.instances.prices import PriceBook
    from runctl.services.jobs.session import JobSession


def aws_for(ctx: typer.Context) -> AwsContext:
    """The invocation's AWS context, built once: every client shares its session and models."""
    return get_state(ctx).aws()


def ec2_for(ctx: typer.Context) -> Ec2:
    """EC2 in the resolved region."""
    from runctl.aws.ec2 import Ec2

    return Ec2(aws_for(ctx).ec2())


def ec2_in_regions(ctx: typer.Context, regions: list[str] | None = None) -> list[Ec2]:
    """EC2 in each of ``regions`` (every enabled region when None), from one session.

    Sharing the session shares its parsed service model, which is otherwise loaded again for
    every client (about a third of a second each).
    """
    from runctl.aws.ec2 import Ec2
    from runctl.aws.session import client_config

    aws = aws_for(ctx)
    home = Ec2(aws.ec2())
    wanted = home.describe_regions() if regions is None else regions
    return [
        home
        if region == home.region
        else Ec2(aws.session.client("ec2", region_name=region, config=client_config()))
        for region in wanted
    ]


def ebs_of(ec2: Ec2) -> Ebs:
    """EBS in the region (and on the client) of ``ec2``."""
    from runctl.aws.ebs import Ebs

    return Ebs(ec2.client)


def ecr_of(ctx: typer.Context) -> Callable[[Ec2], ECRClient]:
    """The ECR client of an EC2 wrapper's region (one boto3 session for every region)."""
    from runctl.aws.session import client_config

    aws = aws_for(ctx)
    return lambda ec2: aws.session.client("ecr", region_name=ec2.region, config=client_config())


def ssm_for(ctx: typer.Context) -> Ssm:
    from runctl.aws.ssm import Ssm

    return Ssm(aws_for(ctx).ssm())


def prices_for(ec2: Ec2) -> PriceBook:
    """The price book of ``ec2``'s region (spot prices from that region's history)."""
    from runctl.services.instances.prices import PriceBook

    return PriceBook(ec2.region, spot_source=ec2)


def job_session(ctx: typer.Context, out: Output, settings: Settings | None = None) -> JobSession:
    """The invocation's job session: its AWS context, ``settings`` (default: the resolved
    config) and this directory; it reports on ``out``. Nothing AWS is built until the session
    first needs it."""
    from runctl.services.jobs.session import JobSession

    state = get_state(ctx)
    chosen = settings or state.config().settings
    return JobSession(state.aws(), chosen, cwd=Path.cwd(), report=out)


def aws_in_region(ctx: typer.Context, region: str | None) -> AwsContext:
    """The invocation's AWS context, or one for ``region`` (a command's own ``--region``)."""
    if region is None:
        return aws_for(ctx)
    from runctl.aws.session import AwsContext

    state = get_state(ctx)
    return AwsContext(profile=state.profile, region=region)


def job_sessions_everywhere(ctx: typer.Context, out: Output) -> list[JobSession]:
    """A job session in each enabled region (the invocation's own first), sharing one boto3
    session's credentials and models."""
    from runctl.aws.session import AwsContext
    from runctl.services.jobs.session import JobSession

    home = job_session(ctx, out)
    state = get_state(ctx)
    sessions = [home]
    for region in home.ec2.describe_regions():
        if region == home.region:
            continue
        # One boto3 session: its parsed service models are shared, not loaded per region.
        aws = AwsContext(profile=state.profile, region=region, _session=home.aws.session)
        sessions.append(JobSession(aws, home.settings, cwd=Path.cwd(), report=out))
    return sessions
