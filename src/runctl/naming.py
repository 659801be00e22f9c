"""The shapes of names that reach AWS or a shell: regions, bucket names, the instance-side root.

Checked where a value enters (a config file, a ``RUNCTL_*`` variable, ``config set``, the
``--region`` flag) so that a typo is refused with the key's name before any AWS call, instead of
surfacing later as an endpoint error or, for ``aws.remote_root``, as a command run at boot.
Standard library only: the root callback of the CLI uses it, and ``--help`` must stay fast.
"""

from __future__ import annotations

import ipaddress
import re

# Every AWS partition's region names: us-east-1, eu-central-2, us-gov-west-1, cn-north-1,
# us-isob-east-1, eusc-de-east-1 ... (botocore's endpoints.json "regionRegex" values).
_REGION_RE = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-\d{1,2}$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_SAFE_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


def region_problem(region: str) -> str | None:
    """Why ``region`` cannot be an AWS region name (e.g. ``us-east-1``), or None."""
    if _REGION_RE.match(region):
        return None
    return f"{region!r} is not a region name (AWS regions look like us-east-1 or eu-central-2)"


def bucket_problem(name: str) -> str | None:
    """Why ``name`` breaks S3's bucket naming rules, or None when it follows them."""
    if name.startswith("s3://"):
        bare = name[len("s3://") :].partition("/")[0]
        return f"{name!r} is a URI; give the bare bucket name ({bare!r})"
    if not 3 <= len(name) <= 63:
        return f"bucket name {name!r} must be 3 to 63 characters long"
    if not _BUCKET_RE.match(name):
        return (
            f"bucket name {name!r} may hold only lowercase letters, digits, dots and hyphens, "
            "and must start and end with a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        return f"bucket name {name!r} must not have a dot next to a dot or a hyphen"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return f"bucket name {name!r} must not look like an IP address"
    for prefix in _BUCKET_PREFIXES:
        if name.startswith(prefix):
            return f"bucket name {name!r} must not start with {prefix!r} (reserved by S3)"
    for suffix in _BUCKET_SUFFIXES:
        if name.endswith(suffix):
            return f"bucket name {name!r} must not end with {suffix!r} (reserved by S3)"
    return None


def remote_root_problem(path: str) -> str | None:
    """Why ``path`` cannot be runctl's root on an instance, or None.

    It goes into the boot script and every command runctl sends, so it must be an absolute path
    of plain segments (letters, digits, ``.``, ``_``, ``-``), without ``.`` or ``..`` and not
    ``/`` itself.
    """
    segments = path.rstrip("/").split("/")
    if not path.startswith("/") or len(segments) < 2:
        return f"{path!r} must be an absolute path below / (e.g. /opt/runctl)"
    for segment in segments[1:]:
        if segment in ("", ".", "..") or not _SAFE_PATH_SEGMENT.match(segment):
            return (
                f"{path!r} must be an absolute path of letters, digits, '.', '_' and '-' "
                "segments (no spaces, quotes, '$', '..' or '//')"
            )
    return None
