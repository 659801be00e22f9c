"""``runctl local``: the job runner on this machine, with the instance's environment contract."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from runctl.cli.app import app
from tests.cloud.harness import Cloud

TRAINING = Path(__file__).resolve().parents[2] / "training"


@pytest.fixture
def project(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (workdir / "pyproject.toml").write_text("")
    shutil.copytree(TRAINING, workdir / "training")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    return workdir


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _only_job(project: Path) -> Path:
    jobs = list((project / ".runctl" / "jobs").iterdir())
    assert len(jobs) == 1
    return jobs[0]


def test_local_trains_and_keeps_the_log(project: Path) -> None:
    code, out, _err = invoke("local", "training/train_mnist.py", "--", "--epochs", "2")

    assert code == 0
    assert "epoch 2/2" in out
    job = _only_job(project)
    assert "epoch 1/2" in (job / "logs" / "attempt-0.log").read_text()
    status = json.loads((job / "status.json").read_text())
    assert status["state"] == "succeeded" and status["exit_code"] == 0
    assert status["instance_ids"] == ["local"]
    metrics = json.loads((job / "outputs" / "metrics.json").read_text())
    assert len(metrics["history"]) == 2
    assert (project / "checkpoints" / "mnist-ckpt.npz").is_file()


def test_exec_alias_and_json_output(project: Path) -> None:
    code, out, err = invoke(
        "exec",
        "training/train_with_checkpoints.py",
        "--output",
        "json",
        "--",
        "--steps",
        "2",
        "--step-seconds",
        "0",
    )

    assert code == 0
    data = json.loads(out)
    assert data["state"] == "succeeded"
    assert data["job_id"].startswith(project.name)
    assert "step 2/2" in err  # the script's output goes to stderr in json mode


def test_environment_contract(project: Path) -> None:
    (project / "show_env.py").write_text(
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'env': {k: v for k, v in os.environ.items()"
        " if k.startswith(('RUNCTL_', 'MY_'))}, 'cwd': os.getcwd()}))\n"
    )

    code, out, _ = invoke(
        "local",
        "show_env.py",
        "--env",
        "MY_A=1=2",
        "--env",
        "MY_B=",
        "--project-name",
        "Demo",
        "--",
        "--flag",
        "two words",
        "$(not run)",
    )

    assert code == 0
    data = json.loads(out.strip().splitlines()[-1])
    assert data["argv"] == ["--flag", "two words", "$(not run)"]
    env = data["env"]
    assert env["MY_A"] == "1=2" and env["MY_B"] == ""
    assert env["RUNCTL_JOB_ID"].startswith("demo-")
    assert env["RUNCTL_ATTEMPT"] == "0"
    assert env["RUNCTL_INSTANCE_ID"] == "local"
    assert env["RUNCTL_RESUMED"] == "0"
    assert env["RUNCTL_CHECKPOINT_DIR"] == str(project / "checkpoints")
    job = project / ".runctl" / "jobs" / env["RUNCTL_JOB_ID"]
    assert env["RUNCTL_OUTPUT_DIR"] == str(job / "outputs")
    assert env["RUNCTL_DATA_DIR"] == str(job / "data")
    assert int(env["RUNCTL_GRACE_SECONDS"]) > 0
    assert data["cwd"] == str(project)


def test_failing_script_exits_7_with_its_code(project: Path) -> None:
    (project / "fail.py").write_text("import sys\nprint('oops', file=sys.stderr)\nsys.exit(3)\n")

    code, out, err = invoke("local", "fail.py", "--output", "json")

    assert code == 7  # runctl's own code is the process's
    error = json.loads(out)
    assert error["exit_code"] == 3 and error["verdict"] == "failed"  # the script's, in JSON
    assert "oops" in err


def test_missing_script_exits_6_with_close_matches(project: Path) -> None:
    code, _out, err = invoke("local", "training/train_mnst.py")

    assert code == 6
    assert "training/train_mnist.py" in err
    assert not (project / ".runctl").exists()


def test_bad_env_is_a_usage_error(project: Path) -> None:
    code, _out, err = invoke("local", "training/train_mnist.py", "--env", "NOEQUALS")

    assert code == 2
    assert "NAME=VALUE" in err


def test_local_checkpoint_store_restores_a_fresh_directory(project: Path) -> None:
    store = project.parent / "store"
    args = ["local", "training/train_with_checkpoints.py", "--checkpoint-s3", str(store)]
    first = invoke(*args, "--", "--steps", "3", "--step-seconds", "0")
    shutil.rmtree(project / "checkpoints")

    second = invoke(*args, "--", "--steps", "5", "--step-seconds", "0")

    assert first[0] == 0 and second[0] == 0
    assert "resumed=1 from step 3" in second[1]
    assert len(list((store / "manifests").iterdir())) == 2


def _run_cli(project: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCTL_")}
    env["OPENBLAS_NUM_THREADS"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "runctl", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _weights(output_dir: Path) -> str:
    return str(json.loads((output_dir / "metrics.json").read_text())["weights_sha256"])


def test_interrupted_and_resumed_equals_uninterrupted(project: Path, tmp_path: Path) -> None:
    train = ["local", "training/train_mnist.py", "--checkpoint-dir"]
    epochs = ["--", "--epochs", "4", "--epoch-delay", "0.3"]
    reference = _run_cli(project, *train, str(tmp_path / "ref-ckpt"), *epochs)
    assert reference.wait(120) == 0
    reference_job = next(iter((project / ".runctl/jobs").iterdir()))

    interrupted = _run_cli(project, *train, str(tmp_path / "ckpt"), *epochs)
    assert interrupted.stdout is not None
    seen = ""
    while "epoch 1/4" not in seen:
        line = interrupted.stdout.readline()
        assert line, f"the run ended before its first epoch: {interrupted.stderr}"
        seen += line
    interrupted.send_signal(signal.SIGINT)  # Ctrl-C: the runner stops the script gracefully
    rest, err = interrupted.communicate(timeout=120)

    assert interrupted.returncode == 130, err
    assert "SIGTERM: checkpoint saved" in seen + rest
    assert "stopped" in err
    resumed = _run_cli(project, *train, str(tmp_path / "ckpt"), *epochs)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "resumed from epoch" in out
    jobs = sorted((project / ".runctl/jobs").iterdir(), key=lambda p: p.stat().st_mtime)
    assert _weights(jobs[-1] / "outputs") == _weights(reference_job / "outputs")


def test_no_boto3_without_s3_options(project: Path) -> None:
    (project / "hello.py").write_text("print('hi')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCTL_")}

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runctl", "local", "hello.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "runctl.remote.supervisor" in imported
    assert not {name for name in imported if name.split(".")[0] in ("boto3", "botocore")}


@pytest.fixture
def moto_s3(cloud_env: Cloud) -> object:
    """The harness's S3 with a bucket ``bkt``; its AWS variables are in this process's env."""
    client = boto3.client("s3", region_name=cloud_env.region)
    client.create_bucket(Bucket="bkt")
    return client


def test_s3_options_stage_data_commit_checkpoints_and_upload_outputs(
    project: Path, moto_s3: object
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket="bkt", Key="data/in.txt", Body=b"payload")
    (project / "job.py").write_text(
        "import os, pathlib\n"
        "data = pathlib.Path(os.environ['RUNCTL_DATA_DIR'], 'in.txt').read_text()\n"
        "pathlib.Path(os.environ['RUNCTL_CHECKPOINT_DIR'], 'c.txt').write_text(data)\n"
        "pathlib.Path(os.environ['RUNCTL_OUTPUT_DIR'], 'o.txt').write_text(data.upper())\n"
    )

    code, _out, err = invoke(
        "local",
        "job.py",
        "--data-s3",
        "s3://bkt/data/",
        "--output-s3",
        "s3://bkt/out/",
        "--checkpoint-s3",
        "s3://bkt/ckpt/",
    )

    assert code == 0, err
    assert s3.get_object(Bucket="bkt", Key="out/o.txt")["Body"].read() == b"PAYLOAD"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bkt", Prefix="ckpt/")["Contents"]]
    assert any(k.startswith("ckpt/manifests/") for k in keys)
    assert any(k.startswith("ckpt/blobs/") for k in keys)
