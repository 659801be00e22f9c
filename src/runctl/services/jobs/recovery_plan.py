"""What a job's runner needs to launch its own successor (``aws train --auto-resume --detach``),
recorded in job.json's ``recovery`` when the job starts.

The instance side (:mod:`runctl.remote.succession`) has boto3 but none of runctl's launch
logic, so everything is decided here, where the job's first instance is known: the RunInstances
parameters of that instance's spec (:func:`runctl.aws.ec2.run_instances_params`: image, type,
profile, key, security group, subnet, spot options, IMDSv2, runctl's tags -- which the instance
role's grant requires), the zones that offer the type (spot is tried in the others first), the
user-data template (bootstrap + the successor's start command, whose runtime URL and attempt
the launching instance fills in), the runtime bundle's sha256 and the bucket's region (the
successor's URL is presigned for it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runctl.services import tags

if TYPE_CHECKING:
    from runctl.aws.ec2 import Instance
    from runctl.job.spec import JobSpec
    from runctl.services.bundles.runtime import RuntimeRef
    from runctl.services.jobs.session import JobSession


def recovery_plan(
    session: JobSession, instance: Instance, spec: JobSpec, runtime: RuntimeRef
) -> dict[str, Any]:
    """job.json's ``recovery`` for ``spec`` started on ``instance``."""
    from runctl.aws.buckets import get_bucket_region
    from runctl.aws.ec2 import RunSpec, run_instances_params
    from runctl.services.instances.launch import bootstrap_script
    from runctl.services.jobs.commands import start_job_command

    location = spec.location
    assert location is not None
    aws = session.settings.aws
    spot = instance.lifecycle == "spot"
    extra = {
        key: value
        for key, value in instance.tags.items()
        if (key == tags.WORKFLOW or not key.startswith(("runctl:", "aws:"))) and key != "Name"
    }
    extra[tags.JOB_URI] = location.uri
    run_spec = RunSpec(
        instance_type=instance.instance_type,
        image_id=instance.image_id or "",
        client_token="",
        tags=tags.resource_tags(
            project=instance.tags.get(tags.PROJECT) or spec.project,
            user=spec.user or tags.current_user(),
            name=f"{spec.job_id}-a1"[:128],
            created=datetime.now(UTC),
            job=spec.job_id,
            extra=extra,
        ),
        spot=spot,
        spot_max_price=aws.spot_max_price if spot else None,
        subnet_id=aws.subnet_id,
        security_group_ids=(aws.security_group,) if aws.security_group else (),
        key_name=instance.key_name,
        iam_instance_profile=instance.iam_instance_profile_arn,
    )
    params = run_instances_params(run_spec)
    params.pop("ClientToken", None)
    zones = sorted(
        {
            zone
            for _type, zone in session.ec2.describe_instance_type_offerings(
                location_type="availability-zone", instance_type=instance.instance_type
            )
        }
    )
    start = start_job_command(
        "", runtime.sha256, location.uri, 0, remote_root_default=session.remote_root,
        region=session.region, successor=True,
    )  # fmt: skip
    return {
        "run_instances": params,
        "zones": zones,
        "fallback": True,
        "user_data": bootstrap_script(session.remote_root) + "\n" + start,
        "runtime_sha256": runtime.sha256,
        "bucket_region": get_bucket_region(session.s3, location.bucket),
    }
