"""What a job's storage costs: its EBS volumes and the S3 storage of its prefix.

EBS: the volumes attached to the job's instances and those tagged ``runctl:job`` with the job
(copies of its data volume), at EBS list prices per GB-month
(:mod:`runctl.services.volumes.costs`) for the job's time; AWS bills a GB-month as 730 hours,
by the second. Volumes already deleted (a terminated instance's root volume) cannot be sized
any more and are left out, which the source says.

S3: the bytes now under the job's prefix (log, checkpoints, outputs, records) at the S3
Standard list price ($0.023 per GB-month, us-east-1, first 50 TB), held since the job began --
an upper bound, since checkpoints and outputs arrive during the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from runctl.errors import RunctlError
from runctl.services import tags as tagging
from runctl.services.jobs.cost import StorageCost
from runctl.services.volumes.costs import volume_month_usd

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from runctl.aws.ebs import Ebs, Volume
    from runctl.job.spec import JobLocation

S3_STANDARD_GB_MONTH = 0.023
MONTH_SECONDS = 730 * 3600.0
GIB = 1024**3


def job_volumes(ebs: Ebs, job_id: str, instance_ids: Sequence[str]) -> list[Volume]:
    """The volumes attached to ``instance_ids`` and those made for the job, each once."""
    found: dict[str, Volume] = {}
    if instance_ids:
        attached = ebs.describe_volumes(filters={"attachment.instance-id": list(instance_ids)})
        found.update((v.volume_id, v) for v in attached)
    tagged = ebs.describe_volumes(filters={f"tag:{tagging.JOB}": [job_id]})
    found.update((v.volume_id, v) for v in tagged)
    return [found[k] for k in sorted(found)]


def prefix_bytes(s3: S3Client, location: JobLocation) -> int:
    """The bytes stored under the job's prefix now."""
    from runctl.aws.s3 import S3Uri, iter_objects

    return sum(o.size for o in iter_objects(s3, S3Uri(location.bucket, location.prefix)))


def job_storage_cost(
    ebs: Ebs,
    s3: S3Client,
    location: JobLocation,
    instance_ids: Sequence[str],
    window: tuple[datetime, datetime] | None,
) -> StorageCost:
    """The job's EBS and S3 storage cost over ``window`` (see the module docstring); a figure
    AWS would not give is None, with the reason in the source."""
    if window is None:
        return StorageCost(None, None, "unknown: the job has not started")
    seconds = (window[1] - window[0]).total_seconds()
    said: list[str] = []
    try:
        volumes = job_volumes(ebs, location.job_id, instance_ids)
    except RunctlError as exc:
        ebs_usd, volumes = None, []
        said.append(f"EBS unknown ({exc.message})")
    else:
        monthly = [
            volume_month_usd(v.volume_type, v.size_gb, v.iops, v.throughput) for v in volumes
        ]
        ebs_usd = round(sum(m or 0.0 for m in monthly) * seconds / MONTH_SECONDS, 6)
        size = sum(v.size_gb for v in volumes)
        said.append(
            f"EBS list prices: {len(volumes)} volume(s), {size} GiB"
            if volumes
            else "EBS: no volume of the job exists any more"
        )
    try:
        stored = prefix_bytes(s3, location)
    except RunctlError as exc:
        s3_usd = None
        said.append(f"S3 unknown ({exc.message})")
    else:
        s3_usd = round(stored / GIB * S3_STANDARD_GB_MONTH * seconds / MONTH_SECONDS, 6)
        said.append(f"S3 Standard list price: {stored} bytes under the job prefix")
    return StorageCost(ebs_usd, s3_usd, "; ".join(said))
