"""Recovery with the laptop closed: ``aws train --auto-resume --detach``, then no runctl process.

The job's runner launches its own successor on each spot notice with the instance role's
credentials (the harness authorizes RunInstances, PassRole and tagging at launch as EC2 does,
against exactly the policy ``runctl aws setup`` puts on the role), the successor boots, runs its
user data and resumes the job from the committed checkpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runctl.services.account.recovery_grant import RECOVERY_POLICY, recovery_policy
from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cli.spot_helpers import (
    TRAINER,
    finish,
    live_instance_ids,
    log_text,
    read_json,
    spawn,
    wait_for_step,
    wait_until,
)
from tests.cli.test_spot_resume import STEPS, expected, result_of, train_args
from tests.cloud.harness import DEFAULT_PROFILE, Cloud

NOTICE_SECONDS = 6


def detached_job(cloud: Cloud, project: Path, cache: Path, *extra: str) -> tuple[str, dict]:
    """Start the job detached with laptop-closed recovery; the runctl process has ended."""
    make_project(project, {"train.py": TRAINER})
    first = ready_instance(cloud, spot=True)
    cloud.put_role_policy(RECOVERY_POLICY, recovery_policy(DEFAULT_PROFILE, region=cloud.region))
    args = train_args(first, "--auto-resume", "--detach", *extra)
    code, out, err = finish(spawn(cloud, project, cache, *args))
    assert code == 0, err
    return first, json.loads(out)


def successor_of(cloud: Cloud, instance_id: str) -> str:
    """Interrupt ``instance_id``; once its notice has expired, the one live instance, which
    runs the next attempt."""
    cloud.interrupt(instance_id, notice_seconds=NOTICE_SECONDS)
    cloud.wait_state(instance_id, "terminated")
    live = wait_until(lambda: live_instance_ids(cloud), what="the successor")
    assert len(live) == 1 and live[0] != instance_id, live
    wait_until(lambda: "resumed=1" in log_text(cloud, live[0]), what="the next attempt", timeout=90)
    return str(live[0])


def test_two_interruptions_with_the_laptop_closed_end_like_an_uninterrupted_run(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    first, doc = detached_job(cloud, project, shared_cache, "--terminate-on-finish")
    prefix = str(doc["job_uri"]).removeprefix(f"s3://{BUCKET}/")
    assert read_json(cloud, f"{prefix}job.json")["recovery"]["run_instances"]
    wait_for_step(cloud, first, 8, STEPS)
    second = successor_of(cloud, first)
    third = successor_of(cloud, second)

    def ended() -> dict | None:
        assert len(live_instance_ids(cloud)) <= 1  # never two after a notice expired
        status = read_json(cloud, f"{prefix}status.json")
        return status if status["state"] in ("succeeded", "failed") else None

    status = wait_until(ended, timeout=120, what="the job's end")
    assert status["state"] == "succeeded"
    assert status["attempt"] == 2
    assert status["instance_ids"] == [first, second, third]
    assert result_of(cloud, doc) == expected()
    wait_until(lambda: not live_instance_ids(cloud), what="--terminate-on-finish")
    launched_by = {i: cloud.ec2_backend().get_instance(i).get_tags() for i in (second, third)}
    for instance_id, tags in launched_by.items():
        owned = {t["key"]: t["value"] for t in tags}
        assert owned["runctl:managed"] == "true" and owned["runctl:job"] == doc["job_id"]
        assert owned["runctl:successor-of"] in (first, second), instance_id

    shown = subprocess.run(
        [sys.executable, "-m", "runctl", "jobs", "show", doc["job_id"], "--output", "json"],
        cwd=project, env={**cloud.subprocess_env(), "XDG_CACHE_HOME": str(shared_cache)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    attempts = json.loads(shown.stdout)["attempt_log"]
    assert [a["attempt"] for a in attempts] == [0, 1, 2]
    assert [a["instance_id"] for a in attempts] == [first, second, third]
    assert [a["state"] for a in attempts] == ["interrupted", "interrupted", "succeeded"]
    assert [a["launched_by"] for a in attempts] == ["user", first, second]
    for entry in attempts:
        assert entry["market"] == "spot" and entry["availability_zone"]
        assert entry["started"] and entry["ended"] and entry["reason"]
    assert attempts[0]["restored_checkpoint"] is None
    assert attempts[1]["restored_checkpoint"] and attempts[2]["restored_checkpoint"]
    assert attempts[0]["successor"] == f"attempt 1 on {second}"


def test_max_restarts_holds_across_instances(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    first, doc = detached_job(cloud, project, shared_cache, "--max-restarts", "1")
    prefix = str(doc["job_uri"]).removeprefix(f"s3://{BUCKET}/")
    wait_for_step(cloud, first, 5, STEPS)
    second = successor_of(cloud, first)
    cloud.interrupt(second, notice_seconds=NOTICE_SECONDS)
    cloud.wait_state(second, "terminated")
    status = read_json(cloud, f"{prefix}status.json")
    assert (status["state"], status["attempt"]) == ("interrupted", 1)
    assert live_instance_ids(cloud) == []  # no third instance
    last = read_json(cloud, f"{prefix}attempts/1.json")
    assert last["successor"] == "no successor: --max-restarts 1 reached"
    missing = cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}attempts/2")
    assert missing.get("KeyCount") == 0  # attempt 2 was never claimed


def test_terminating_the_jobs_instance_stops_recovery(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    first, doc = detached_job(cloud, project, shared_cache)
    prefix = str(doc["job_uri"]).removeprefix(f"s3://{BUCKET}/")
    wait_for_step(cloud, first, 5, STEPS)
    code, _out, err = finish(
        spawn(cloud, project, shared_cache, "aws", "terminate", first, "--yes")
    )
    assert code == 0, err
    cloud.wait_state(first, "terminated")
    status = read_json(cloud, f"{prefix}status.json")
    assert status["state"] == "stopped" and status["checkpoint_id"]
    assert live_instance_ids(cloud) == []
    assert cloud.calls("RunInstances", "ec2") == []  # nothing launched a successor


def test_without_the_grant_detach_is_refused_and_a_runner_says_why_it_launched_nothing(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    first = ready_instance(cloud, spot=True)
    args = train_args(first, "--auto-resume", "--detach")
    code, _out, err = finish(spawn(cloud, project, shared_cache, *args))
    assert code == 4, err
    assert "may not launch the job's successor" in err and "runctl aws setup" in err
    jobs = cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runctl/demo/jobs/")
    assert jobs["KeyCount"] == 0  # refused before anything about the job was written
    # Granted at the start, taken away before the interruption: the runner says what failed.
    cloud.put_role_policy(RECOVERY_POLICY, recovery_policy(DEFAULT_PROFILE, region=cloud.region))
    code, out, err = finish(spawn(cloud, project, shared_cache, *args))
    assert code == 0, err
    prefix = str(json.loads(out)["job_uri"]).removeprefix(f"s3://{BUCKET}/")
    cloud.client("iam").delete_role_policy(RoleName=DEFAULT_PROFILE, PolicyName=RECOVERY_POLICY)
    wait_for_step(cloud, first, 5, STEPS)
    cloud.interrupt(first, notice_seconds=NOTICE_SECONDS)
    cloud.wait_state(first, "terminated")
    assert live_instance_ids(cloud) == []
    note = read_json(cloud, f"{prefix}attempts/0.json")["successor"]
    assert note.startswith("no successor:") and "UnauthorizedOperation" in note


def test_the_grant_check_names_what_a_role_lacks(cloud: Cloud) -> None:
    from runctl.aws.iam import Iam
    from runctl.services.account.recovery_grant import check_recovery_grant

    profile = cloud.create_instance_profile()
    iam = Iam(cloud.client("iam"))
    gaps = check_recovery_grant(iam, profile.role_arn, region=cloud.region)
    assert {g.action for g in gaps} == {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole"}
    cloud.put_role_policy(RECOVERY_POLICY, recovery_policy(profile.role_name, region=cloud.region))
    assert check_recovery_grant(iam, profile.role_arn, region=cloud.region) == []


def test_a_detached_workflow_recovers_its_jobs_on_their_own(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    cloud.client("s3").create_bucket(Bucket=BUCKET)
    profile = cloud.create_instance_profile()
    cloud.put_role_policy(RECOVERY_POLICY, recovery_policy(profile.role_name, region=cloud.region))
    steps = 100
    code, out, err = finish(spawn(
        cloud, project, shared_cache, "workflow", "train", "train.py", "--instance-type",
        "t3.micro", "--iam-instance-profile", profile.name, "--spot", "--count", "2",
        "--auto-resume", "--detach", "-o", "json",
        "--", "--steps", str(steps), "--step-seconds", "0.1",
    ))  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert [j["state"] for j in doc["jobs"]] == ["running", "running"]
    assert doc["terminated"] == [] and doc["left_running"] == []
    victim = doc["jobs"][0]["instance_id"]
    wait_for_step(cloud, victim, 5, steps)
    cloud.interrupt(victim, notice_seconds=NOTICE_SECONDS)
    wait_until(
        lambda: [i for i in live_instance_ids(cloud) if i not in doc["launched"]],
        what="the victim's successor",
    )
    for job in doc["jobs"]:
        prefix = str(job["job_uri"]).removeprefix(f"s3://{BUCKET}/")
        status = wait_until(
            lambda p=prefix: (
                (s := read_json(cloud, f"{p}status.json"))["state"] == "succeeded" and s
            ),
            timeout=120,
            what=f"job {job['job_id']}",
        )
        assert read_json(cloud, f"{prefix}outputs/result.json") == expected(steps)
        assert status["attempt"] == (1 if job["instance_id"] == victim else 0)
    wait_until(lambda: not live_instance_ids(cloud), what="every instance ended itself")


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--wait"], "--detach and --wait"),
        (["--data-volume", "vol-0123456789abcdef0"], "--data-volume cannot be recovered"),
    ],
)
def test_what_detach_cannot_do_is_refused_before_any_aws_call(
    cloud_env: Cloud, project: Path, shared_cache: Path, extra: list[str], said: str
) -> None:
    make_project(project, {"train.py": TRAINER})
    args = train_args("i-0123456789abcdef0", "--auto-resume", "--detach", *extra)
    code, _out, err = finish(spawn(cloud_env, project, shared_cache, *args))
    assert code == 2, err
    assert said in err
    assert cloud_env.request_log == []


def test_jobs_cancel_between_attempts_records_it_for_the_waiting_successor(
    cloud_env: Cloud, project: Path, shared_cache: Path
) -> None:
    from runctl.job.attempts import AttemptEntry, AttemptLog
    from runctl.job.record import JobRecord
    from runctl.job.spec import JobSpec, JobStatus, new_job_id
    from runctl.remote.succession import wait_for_previous

    cloud = cloud_env
    make_project(project, {"train.py": TRAINER})
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    spec = JobSpec(new_job_id("demo"), "demo", "train.py", bucket=BUCKET, region=cloud.region,
                   recovery={"run_instances": {"ImageId": "ami-12345678"}})  # fmt: skip
    assert spec.location is not None
    record = JobRecord(spec.location, s3=s3)
    record.write_spec(spec)
    record.write_status(JobStatus(spec.job_id, "interrupted", 0, ["i-0aaaaaaaaaaaaaaaa"],
                                  checkpoint_id="00000001-x"))  # fmt: skip
    AttemptLog(spec.location, s3).claim(
        AttemptEntry(attempt=1, instance_id="i-0bbbbbbbbbbbbbbbb", launched_by="i-0aaa")
    )
    cancel = spawn(
        cloud, project, shared_cache, "jobs", "cancel", spec.job_id, "--yes", "-o", "json"
    )
    code, out, err = finish(cancel)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["state"] == "cancelled" and doc["instance_left_running"] is False
    assert "i-0bbbbbbbbbbbbbbbb will not start attempt 1" in doc["message"]
    status = record.read_status()
    assert status is not None and (status.state, status.attempt) == ("cancelled", 0)
    go, why = wait_for_previous(record, 1, "2999-01-01T00:00:00Z")
    assert (go, why) == (False, "the job was cancelled")
