"""``runctl resources list|cleanup|stop-all`` end to end against the harness."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.aws_helpers import ok_json, run
from tests.cloud.harness import Cloud

ROW_KEYS = [
    "platform",
    "region",
    "instance_id",
    "name",
    "project",
    "state",
    "instance_type",
    "lifecycle",
    "availability_zone",
    "launch_time",
    "age_seconds",
    "hourly_usd",
    "accumulated_usd",
    "price_source",
    "managed",
    "protected",
    "job",
]


def test_list_shows_runctl_instances_with_costs(
    cloud_env: Cloud, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = cloud_env
    created = ok_json("aws", "create", "t3.micro", "--project-name", "alpha")
    foreign = cloud.run_instance()
    data = ok_json("resources", "list")
    assert [r["instance_id"] for r in data["rows"]] == [created["instance_id"]]
    row = data["rows"][0]
    assert list(row) == ROW_KEYS
    assert row["project"] == "alpha" and row["hourly_usd"] == 0.0104
    assert row["accumulated_usd"] is not None and row["age_seconds"] is not None
    everything = ok_json("resources", "list", "--all", "--platform", "aws")
    assert {r["instance_id"] for r in everything["rows"]} == {created["instance_id"], foreign}
    assert ok_json("resources", "list", "--project", "beta")["rows"] == []
    monkeypatch.setenv("COLUMNS", "200")
    text = run("resources", "list")
    assert text.exit_code == 0 and created["instance_id"] in text.stdout
    assert run("resources", "list", "--platform", "gcp").exit_code == 2


def test_list_all_regions(cloud_env: Cloud, workdir: Path) -> None:
    ok_json("aws", "create", "t3.micro")
    data = ok_json("resources", "list", "--all-regions")
    assert "us-east-1" in data["regions"] and len(data["regions"]) > 1
    assert len(data["rows"]) == 1


def test_cleanup_and_stop_all_spare_protected_and_foreign(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    ours = ok_json("aws", "create", "t3.micro", "--tag", "k=1")["instance_id"]
    protected = ok_json("aws", "create", "t3.micro", "--tag", "runctl:protected=true")[
        "instance_id"
    ]
    foreign = cloud.run_instance()
    dry = ok_json("resources", "stop-all", "--dry-run")
    assert dry["acted_on"] == [ours] and protected in dry["skipped"]
    assert cloud.state(ours) == "running"
    refused = run("resources", "cleanup")
    assert refused.exit_code == 2 and cloud.state(ours) == "running"
    done = ok_json("resources", "cleanup", "--yes")
    assert done["acted_on"] == [ours]
    assert cloud.state(ours) in ("shutting-down", "terminated")
    assert cloud.state(protected) == "running" and cloud.state(foreign) == "running"


def test_cleanup_aborts_runctl_uploads_left_unfinished(cloud_env: Cloud, workdir: Path) -> None:
    cloud = cloud_env
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="jobs-bucket")
    (workdir / ".runctl.toml").write_text('[aws]\ns3_bucket = "jobs-bucket"\n')
    ours = s3.create_multipart_upload(Bucket="jobs-bucket", Key="runctl/demo/code/x.tar.gz")
    other = s3.create_multipart_upload(Bucket="jobs-bucket", Key="datasets/big.bin")
    planned = ok_json("resources", "cleanup", "--dry-run")
    assert [u["key"] for u in planned["leftovers"]["aborted"]] == ["runctl/demo/code/x.tar.gz"]
    assert len(s3.list_multipart_uploads(Bucket="jobs-bucket")["Uploads"]) == 2
    done = ok_json("resources", "cleanup", "--yes")
    assert [u["upload_id"] for u in done["leftovers"]["aborted"]] == [ours["UploadId"]]
    left = s3.list_multipart_uploads(Bucket="jobs-bucket")["Uploads"]
    assert [u["UploadId"] for u in left] == [other["UploadId"]]  # not runctl's: untouched
