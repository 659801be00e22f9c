"""``runctl local`` keeps the paths an instance uses and stays out of the user's git."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runctl.cli.app import app

TRAINING = Path(__file__).resolve().parents[2] / "training"


@pytest.fixture
def local_project(workdir: Path) -> Path:
    (workdir / "pyproject.toml").write_text("")
    shutil.copytree(TRAINING, workdir / "training")
    return workdir


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _git(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=False)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_runctl_local_stays_out_of_git_status(local_project: Path) -> None:
    _git(local_project, "init", "-q")
    (local_project / ".gitignore").write_text("checkpoints/\n")
    before = _git(local_project, "status", "--porcelain", "--untracked-files=all").stdout

    code, out, err = invoke(
        "local", "training/train_with_checkpoints.py", "-o", "json",
        "--", "--steps", "2", "--step-seconds", "0",
    )  # fmt: skip

    assert code == 0, err
    job = json.loads(out)["job_dir"]
    assert Path(job).is_relative_to(local_project / ".runctl")
    after = _git(local_project, "status", "--porcelain", "--untracked-files=all").stdout
    assert after == before
    assert (local_project / ".runctl" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert _git(local_project, "check-ignore", "-q", f"{job}/status.json").returncode == 0


def test_checkpoint_dir_is_where_runctl_local_checkpoints_as_on_an_instance(
    local_project: Path,
) -> None:
    (local_project / ".runctl.toml").write_text('[checkpoint]\ndir = "out"\n')
    args = ["training/train_with_checkpoints.py", "-o", "json", "--", "--step-seconds", "0"]

    code, out, err = invoke("local", *args, "--steps", "3")
    again_code, _again_out, again_err = invoke("local", *args, "--steps", "5")

    assert (code, again_code) == (0, 0), err + again_err
    assert json.loads(out)["checkpoint_dir"] == str(local_project / "out")
    assert json.loads((local_project / "out" / "state.json").read_text())["step"] == 5
    assert "resumed=1 from step 3" in again_err
    assert not (local_project / "checkpoints").exists()


def test_local_checkpoint_dir_still_wins_for_runctl_local(local_project: Path) -> None:
    (local_project / ".runctl.toml").write_text(
        '[checkpoint]\ndir = "out"\n[local]\ncheckpoint_dir = "local-ckpt"\n'
    )
    code, out, err = invoke(
        "local", "training/train_with_checkpoints.py", "-o", "json",
        "--", "--steps", "1", "--step-seconds", "0",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["checkpoint_dir"] == str(local_project / "local-ckpt")


def test_a_checkpoint_dir_outside_the_project_is_a_configuration_error(
    local_project: Path,
) -> None:
    (local_project / ".runctl.toml").write_text('[checkpoint]\ndir = "../elsewhere"\n')
    code, _out, err = invoke("local", "training/train_with_checkpoints.py")
    assert code == 3, err
    assert "checkpoint.dir" in err and "inside the project" in err
