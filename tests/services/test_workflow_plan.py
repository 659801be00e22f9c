"""What a workflow runs: sweeps, a grid, one id per job, per-job output and checkpoint prefixes,
and every local check before any AWS call."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from runctl.config import AwsSettings, Settings
from runctl.errors import ConfigError, NotFoundError, UsageError
from runctl.services.instances.launch_request import LaunchRequest
from runctl.services.jobs.request import TrainRequest
from runctl.services.workflow.plan import Sweep, WorkflowRequest, parse_sweep, plan_jobs

SETTINGS = Settings(aws=AwsSettings(s3_bucket="bkt", project_name="demo"))
LAUNCH = LaunchRequest("t3.micro", project="demo", user="alice", iam_instance_profile="p")
TRAIN = TrainRequest(instance_id="", script="train.py", args=["--epochs", "2"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (tmp_path / "train.py").write_text("print('hi')\n")
    return tmp_path


def plan(project: Path, **kw: object):  # type: ignore[no-untyped-def]
    request = replace(WorkflowRequest(LAUNCH, TRAIN), **kw)  # type: ignore[arg-type]
    return plan_jobs(request, SETTINGS, project)


def test_parse_sweep() -> None:
    assert parse_sweep("lr=0.1,0.01") == Sweep("lr", ("0.1", "0.01"))
    assert parse_sweep("--batch-size=32") == Sweep("batch-size", ("32",))
    for bad in ("lr", "lr=", "lr=0.1,,0.2", "=1", "a b=1", "lr=0.1,"):
        with pytest.raises(UsageError, match="--sweep"):
            parse_sweep(bad)


def test_a_sweep_gives_each_job_its_own_argument_label_and_id(project: Path) -> None:
    jobs = plan(project, sweeps=[parse_sweep("lr=0.1,0.01")])
    assert [j.args for j in jobs] == [["--epochs", "2", "--lr=0.1"], ["--epochs", "2", "--lr=0.01"]]
    assert [(j.index, j.total, j.label) for j in jobs] == [
        (1, 2, "#1 lr=0.1"),
        (2, 2, "#2 lr=0.01"),
    ]
    assert len({j.job_id for j in jobs}) == 2 and all(j.job_id.startswith("demo-") for j in jobs)
    assert all(j.train.job_id == j.job_id and j.train.terminate_on_finish for j in jobs)


def test_several_sweeps_make_a_grid(project: Path) -> None:
    jobs = plan(project, sweeps=[parse_sweep("lr=1,2"), parse_sweep("bs=8,16,32")])
    assert len(jobs) == 6
    assert jobs[0].args[-2:] == ["--lr=1", "--bs=8"] and jobs[5].args[-2:] == ["--lr=2", "--bs=32"]
    assert plan(project, count=6, sweeps=[parse_sweep("lr=1,2"), parse_sweep("bs=8,16,32")])


def test_count_without_a_sweep_runs_the_same_arguments(project: Path) -> None:
    jobs = plan(project, count=3)
    assert [j.args for j in jobs] == [["--epochs", "2"]] * 3
    assert [j.label for j in jobs] == ["#1", "#2", "#3"]
    assert len(plan(project)) == 1


def test_explicit_output_and_checkpoint_prefixes_are_split_per_job(project: Path) -> None:
    train = replace(TRAIN, output_s3="s3://bkt/out", checkpoint_s3="s3://bkt/ckpt/")
    jobs = plan(project, train=train, count=2)
    for job in jobs:
        assert job.train.output_s3 == f"s3://bkt/out/{job.job_id}/"
        assert job.train.checkpoint_s3 == f"s3://bkt/ckpt/{job.job_id}/"
    [single] = plan(project, train=train)
    assert single.train.output_s3 == "s3://bkt/out"


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"count": 3, "sweeps": [Sweep("lr", ("1", "2"))]}, UsageError, "does not match"),
        ({"count": 0}, UsageError, "--count"),
        ({"launch": replace(LAUNCH, iam_instance_profile=None)}, ConfigError, "instance profile"),
        ({"launch": replace(LAUNCH, tags={"runctl:protected": "true"})}, UsageError, "protected"),
        ({"launch": replace(LAUNCH, instance_type="big")}, UsageError, "instance type"),
        ({"train": replace(TRAIN, script="missing.py")}, NotFoundError, "missing.py"),
        ({"train": replace(TRAIN, data_s3="data/")}, UsageError, "--data-s3"),
    ],
)
def test_bad_requests_are_refused_before_any_aws_call(
    project: Path, change: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        plan(project, **change)


def test_no_bucket_is_a_config_error(project: Path) -> None:
    with pytest.raises(ConfigError, match="bucket"):
        plan_jobs(WorkflowRequest(LAUNCH, TRAIN), Settings(), project)
