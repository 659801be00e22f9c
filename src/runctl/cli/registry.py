"""The command groups loaded only when used, with the one-line help the root listing shows.

Building a group's click commands means importing its module and inspecting every command's
signature; doing that for every group on each start cost ``runctl --help`` about 60 ms. The
root group (``runctl.cli.app.RunctlGroup``) imports a group from this table on first use.
"""

from __future__ import annotations

from typing import NamedTuple


class LazyGroup(NamedTuple):
    module: str
    attribute: str
    help: str


LAZY_GROUPS: dict[str, LazyGroup] = {
    "aws": LazyGroup(
        "runctl.cli.aws",
        "aws_app",
        "EC2 instances and the jobs on them: setup, create, train, monitor, stop, terminate.",
    ),
    "jobs": LazyGroup(
        "runctl.cli.jobs",
        "jobs_app",
        "Jobs wherever they ran: list, show, logs, cancel (read from their records in S3).",
    ),
    "workflow": LazyGroup(
        "runctl.cli.workflow",
        "workflow_app",
        "Create, train, fetch outputs, terminate: N instances, one job each (sweeps).",
    ),
    "s3": LazyGroup(
        "runctl.cli.s3",
        "s3_app",
        "Move data between this machine and S3: parallel multipart transfers with progress.",
    ),
    "checkpoint": LazyGroup(
        "runctl.cli.checkpoint",
        "checkpoint_app",
        "Committed checkpoints in a local directory or S3: list, inspect, resume, download, prune.",
    ),
    "docker": LazyGroup(
        "runctl.cli.docker",
        "docker_app",
        "Container images for aws train --docker: build, push to ECR, or both.",
    ),
    "resources": LazyGroup(
        "runctl.cli.resources",
        "resources_app",
        "Resources runctl created: list, cost, stop or clean up.",
    ),
}


def group_help(name: str) -> str:
    """The help text of the lazily loaded group ``name``."""
    return LAZY_GROUPS[name].help
