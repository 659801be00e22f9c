"""The container run's pieces: the docker run command line, mounts, the container's environment,
/dev/shm and GPUs. (Running, stopping and committing through a real dockerd:
tests/cli/test_aws_train_docker.py.)"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from runctl.remote.container import (
    bind_mount,
    container_environment,
    has_nvidia_gpus,
    mount_points,
    run_argv,
    shm_size_bytes,
)


def test_run_argv_keeps_values_off_the_command_line_and_replaces_the_entrypoint() -> None:
    argv = run_argv(
        "reg/runctl/demo@sha256:" + "0" * 64,
        ["python3", "/jobs/j/code/train.py", "--lr", "0.1"],
        name="runctl-j-0-abc",
        workdir="/jobs/j/code",
        mounts=["/jobs/j/code", "/jobs/j/data"],
        env_names=["RUNCTL_JOB_ID", "WANDB_API_KEY"],
        labels={"runctl.job": "j", "runctl.instance": "i-1"},
        gpus=True,
        shm_bytes=8 * 1024**3,
    )
    assert argv[:4] == ["docker", "run", "--rm", "--init"]
    assert argv[argv.index("--network") + 1] == "host"
    assert argv[argv.index("--shm-size") + 1] == "8192m"
    assert argv[argv.index("--gpus") + 1] == "all"
    assert argv[argv.index("--workdir") + 1] == "/jobs/j/code"
    envs = [argv[i + 1] for i, a in enumerate(argv) if a == "--env"]
    assert envs == ["RUNCTL_JOB_ID", "WANDB_API_KEY"]  # names only: values stay off `ps`
    labels = [argv[i + 1] for i, a in enumerate(argv) if a == "--label"]
    assert labels == ["runctl.instance=i-1", "runctl.job=j"]
    entry = argv.index("--entrypoint")
    assert argv[entry + 1 :] == [
        "python3",
        "reg/runctl/demo@sha256:" + "0" * 64,
        "/jobs/j/code/train.py",
        "--lr",
        "0.1",
    ]
    no_gpu = run_argv("img", ["x"], name="n", workdir="/", mounts=[], env_names=[], labels={},
                      gpus=False, shm_bytes=1)  # fmt: skip
    assert "--gpus" not in no_gpu
    assert no_gpu[no_gpu.index("--shm-size") + 1] == "64m"  # never below Docker's default


def test_bind_mounts_are_csv_quoted_as_docker_reads_them() -> None:
    assert bind_mount("/opt/runctl/jobs/j/code") == (
        "type=bind,source=/opt/runctl/jobs/j/code,target=/opt/runctl/jobs/j/code"
    )
    odd = '/data/a,b "c"'
    fields = next(csv.reader([bind_mount(odd)]))
    assert fields == ["type=bind", f"source={odd}", f"target={odd}"]


def test_mount_points_are_real_and_not_nested(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "code" / "checkpoints").mkdir(parents=True)
    (job / "data").mkdir()
    link = tmp_path / "link"
    link.symlink_to(job)
    found = mount_points([link / "code", job / "data", job / "code" / "checkpoints"])
    assert found == [str(job.resolve() / "code"), str(job.resolve() / "data")]


def test_the_container_gets_the_contract_and_the_sdk_settings_never_credentials(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real)
    runner_env = {
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:1338/",
        "AWS_ACCESS_KEY_ID": "AKIA...",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
        "AWS_PROFILE": "laptop",
        "PATH": "/usr/local/bin:/usr/bin",
        "HOME": "/root",
        "PYTHONPATH": "/opt/runctl/runtime/x",
    }
    contract = {
        "RUNCTL_JOB_ID": "j",
        "RUNCTL_CHECKPOINT_DIR": str(tmp_path / "via"),
        "LR": "0.1",
    }
    env = container_environment(contract, runner_env)
    assert env == {
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:1338/",
        "RUNCTL_JOB_ID": "j",
        "RUNCTL_CHECKPOINT_DIR": str(real),
        "LR": "0.1",
    }


def test_shm_is_half_the_memory(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\nMemFree:         1000 kB\n")
    assert shm_size_bytes(str(meminfo)) == 16384000 * 1024 // 2
    assert shm_size_bytes(str(tmp_path / "missing")) == 2 * 1024**3


def test_gpus_when_nvidia_smi_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert has_nvidia_gpus() is False
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert has_nvidia_gpus() is True
    assert os.access(tool, os.X_OK)
