"""The tags runctl puts on everything it creates (docs/reference.md, "Safety"), and how it reads
them.

Ownership is decided by tags alone: ``runctl:managed=true`` marks a resource as runctl's, and
``runctl:protected=true`` puts it out of reach of every bulk or destructive command.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from runctl.errors import UsageError

PREFIX = "runctl:"
MANAGED = "runctl:managed"
PROJECT = "runctl:project"
USER = "runctl:user"
JOB = "runctl:job"
JOB_URI = "runctl:job-uri"
#: The ``workflow train`` run an instance belongs to: its teardown finds them all by this tag.
WORKFLOW = "runctl:workflow"
CREATED = "runctl:created"
PROTECTED = "runctl:protected"
REQUEST = "runctl:request"
NAME = "Name"

#: Tags a user may set with ``--tag`` although they start with ``runctl:``.
USER_SETTABLE = frozenset({PROTECTED})
MAX_KEY = 128
MAX_VALUE = 256


def resource_tags(
    *,
    project: str,
    user: str,
    name: str,
    created: datetime,
    job: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The full tag set for a new resource; ``extra`` (``--tag``) cannot override runctl's."""
    tags: dict[str, str] = dict(extra or {})
    tags.update(
        {
            MANAGED: "true",
            PROJECT: project,
            USER: user,
            CREATED: created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            NAME: name,
        }
    )
    if job:
        tags[JOB] = job
    return {key: value[:MAX_VALUE] for key, value in tags.items()}


def parse_tag_options(values: Sequence[str]) -> dict[str, str]:
    """Parse repeated ``--tag K=V`` options.

    Raises UsageError for a missing ``=``, an empty or over-long key, an ``aws:`` key, or a
    ``runctl:`` key other than ``runctl:protected`` (runctl sets those itself).
    """
    tags: dict[str, str] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--tag {raw!r} is not KEY=VALUE", hint="e.g. --tag team=vision")
        if key.lower().startswith("aws:"):
            raise UsageError(f"--tag {key}: keys starting with 'aws:' are reserved by AWS")
        if key.startswith(PREFIX) and key not in USER_SETTABLE:
            raise UsageError(
                f"--tag {key}: runctl sets 'runctl:' tags itself",
                hint="only runctl:protected=true may be given with --tag",
            )
        if len(key) > MAX_KEY or len(value) > MAX_VALUE:
            raise UsageError(f"--tag {key}: keys are at most 128 and values 256 characters")
        tags[key] = value
    return tags


def is_managed(tags: Mapping[str, str]) -> bool:
    """True when the resource was created by runctl."""
    return tags.get(MANAGED, "").lower() == "true"


def is_protected(tags: Mapping[str, str]) -> bool:
    """True when no bulk or destructive runctl command may touch the resource."""
    return tags.get(PROTECTED, "").lower() == "true"


def managed_filters(project: str | None = None, user: str | None = None) -> dict[str, list[str]]:
    """EC2 describe filters selecting runctl-managed resources (of one project, of one user)."""
    filters = {f"tag:{MANAGED}": ["true"]}
    if project:
        filters[f"tag:{PROJECT}"] = [project]
    if user:
        filters[f"tag:{USER}"] = [user]
    return filters


def current_user(env: Mapping[str, str] | None = None) -> str:
    """The local user name recorded in ``runctl:user``."""
    env = os.environ if env is None else env
    for var in ("RUNCTL_USER", "USER", "LOGNAME", "USERNAME"):
        if env.get(var):
            return env[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
