"""The laptop-closed recovery's pieces: the attempt claim (a conditional S3 write, on the
harness's moto server), the successor's placements, launch parameters and user data, and its
wait for the last attempt.
"""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

import pytest

from runctl.job.attempts import AttemptClaimed, AttemptEntry, AttemptLog
from runctl.job.spec import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    RUNNING,
    SUCCEEDED,
    JobLocation,
    JobStatus,
)
from runctl.remote.succession import (
    ATTEMPT_SLOT,
    URL_SLOT,
    WAIT_UNTIL_SLOT,
    placements,
    run_params,
    user_data,
    wait_for_previous,
)

LOCATION = JobLocation("bucket", "demo", "demo-20250101-000000-abcd")
SPOT_PARAMS = {
    "ImageId": "ami-12345678",
    "InstanceType": "t3.micro",
    "MinCount": 1,
    "MaxCount": 1,
    "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {}},
    "TagSpecifications": [
        {
            "ResourceType": rt,
            "Tags": [{"Key": "runctl:managed", "Value": "true"}, {"Key": "Name", "Value": "old"}],
        }
        for rt in ("instance", "volume", "spot-instances-request")
    ],
}


def test_only_one_writer_claims_an_attempt(s3: Any, bucket: str) -> None:
    location = JobLocation(bucket, "demo", LOCATION.job_id)
    first, second = AttemptLog(location, s3), AttemptLog(location, s3)
    first.claim(AttemptEntry(attempt=1, launched_by="i-0aaa"))
    with pytest.raises(AttemptClaimed):
        second.claim(AttemptEntry(attempt=1, launched_by="i-0bbb"))
    assert first.read(1) == AttemptEntry(
        attempt=1, launched_by="i-0aaa", claimed=first.read(1).claimed
    )  # type: ignore[union-attr]
    second.claim(AttemptEntry(attempt=2, launched_by="i-0bbb"))  # the next one is free


def test_attempt_log_lists_every_attempt_in_order(s3: Any, bucket: str) -> None:
    location = JobLocation(bucket, "demo", LOCATION.job_id)
    log = AttemptLog(location, s3)
    for attempt in (2, 0, 10, 1):
        log.update(attempt, instance_id=f"i-{attempt}", state=INTERRUPTED)
    log.update(1, state=SUCCEEDED)
    s3.put_object(Bucket=bucket, Key=f"{location.prefix}attempts/notes.txt", Body=b"x")
    entries = log.entries()
    assert [e.attempt for e in entries] == [0, 1, 2, 10]
    assert entries[1].instance_id == "i-1" and entries[1].state == SUCCEEDED
    assert log.read(3) is None


def test_spot_is_tried_in_the_other_zones_first_then_here_then_on_demand() -> None:
    recovery = {"run_instances": SPOT_PARAMS, "zones": ["us-east-1a", "us-east-1b", "us-east-1c"]}
    assert placements(recovery, "us-east-1b") == [
        ("spot", "us-east-1a"), ("spot", "us-east-1c"), ("spot", "us-east-1b"), ("on-demand", None),
    ]  # fmt: skip
    assert placements({**recovery, "fallback": False}, "us-east-1b")[-1] == ("spot", "us-east-1b")
    pinned = {"run_instances": {**SPOT_PARAMS, "SubnetId": "subnet-1"}, "zones": ["us-east-1a"]}
    assert placements(pinned, "us-east-1a") == [("spot", None), ("on-demand", None)]
    on_demand = {"run_instances": {"ImageId": "ami-12345678"}, "zones": ["us-east-1a"]}
    assert placements(on_demand, "us-east-1a") == [("on-demand", None)]


def test_run_params_keep_runctls_tags_and_drop_spot_for_on_demand() -> None:
    recovery = {"run_instances": SPOT_PARAMS}
    spot = run_params(recovery, "spot", "us-east-1c", token="t", name="job-a1",
                      predecessor="i-0old", data="#!/bin/bash")  # fmt: skip
    assert spot["Placement"] == {"AvailabilityZone": "us-east-1c"}
    assert spot["ClientToken"] == "t" and spot["UserData"] == "#!/bin/bash"
    tags = {t["Key"]: t["Value"] for t in spot["TagSpecifications"][0]["Tags"]}
    assert tags["runctl:managed"] == "true" and tags["Name"] == "job-a1"
    assert tags["runctl:successor-of"] == "i-0old" and tags["runctl:created"].endswith("Z")
    on_demand = run_params(recovery, "on-demand", None, token="t", name="n", predecessor="i",
                           data="")  # fmt: skip
    assert "InstanceMarketOptions" not in on_demand and "Placement" not in on_demand
    kinds = [spec["ResourceType"] for spec in on_demand["TagSpecifications"]]
    assert kinds == ["instance", "volume"]
    assert SPOT_PARAMS["TagSpecifications"][0]["Tags"][1]["Value"] == "old"  # not mutated


def test_user_data_slots_are_quoted_for_bash() -> None:
    template = f"printf '%s|%s|%s' {URL_SLOT} {ATTEMPT_SLOT} {WAIT_UNTIL_SLOT}"
    url = "https://h/k?X-Amz-Signature=a&b=$(reboot);'"
    text = user_data(template, url, 2, "2025-01-01T00:00:00.000Z")
    out = subprocess.run(["bash", "-c", text], capture_output=True, text=True, check=True).stdout
    assert out == f"{url}|2|2025-01-01T00:00:00.000Z"
    assert shlex.quote(url) in text


class FakeRecord:
    """status.json as a sequence of reads."""

    def __init__(self, *statuses: JobStatus | None) -> None:
        self.statuses = list(statuses)

    def read_status(self) -> JobStatus | None:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


def _status(state: str, attempt: int = 0) -> JobStatus:
    return JobStatus(job_id=LOCATION.job_id, state=state, attempt=attempt)


@pytest.mark.parametrize(
    ("final", "go"),
    [(INTERRUPTED, True), (SUCCEEDED, False), (FAILED, False), (CANCELLED, False)],
)
def test_a_successor_starts_only_after_an_interruption(final: str, go: bool) -> None:
    record = FakeRecord(_status(RUNNING), _status(RUNNING), _status(final))
    sleeps: list[float] = []
    result, why = wait_for_previous(
        record,
        1,
        "2999-01-01T00:00:00Z",
        sleep=sleeps.append,  # type: ignore[arg-type]
    )
    assert result is go, why
    assert len(sleeps) == 2  # it waited for the final status


def test_a_successor_gives_way_to_a_later_attempt_and_goes_after_the_deadline() -> None:
    later = FakeRecord(_status(RUNNING, attempt=2))
    assert wait_for_previous(later, 1, "2999-01-01T00:00:00Z")[0] is False  # type: ignore[arg-type]
    silent = FakeRecord(_status(RUNNING))
    go, why = wait_for_previous(
        silent,
        1,
        "2025-01-01T00:00:00Z",
        sleep=lambda _s: None,  # type: ignore[arg-type]
    )
    assert go and "did not report an end" in why
