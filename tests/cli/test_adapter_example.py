"""The adapter of docs/script-authors.md, run end to end: ``training/third_party/train.py`` knows
nothing of runctl; ``runctl_adapter.sh`` maps the job contract onto its flags, here and on an
instance, and a second run continues where the first one stopped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from runctl.cli.app import app
from tests.cli.aws_helpers import run
from tests.cli.jobs_helpers import make_project, ready_instance
from tests.cloud.harness import Cloud

EXAMPLE = Path(__file__).resolve().parents[2] / "training" / "third_party"
ADAPTER = "training/third_party/runctl_adapter.sh"


def _copy_example(project: Path) -> None:
    shutil.copytree(EXAMPLE, project / "training" / "third_party")


def test_the_adapter_runs_the_third_party_trainer_and_resumes_it_here(workdir: Path) -> None:
    (workdir / "pyproject.toml").write_text("")
    _copy_example(workdir)
    runner = CliRunner()

    first = runner.invoke(app, ["local", ADAPTER, "-o", "json", "--", "--max_iters", "5"])
    again = runner.invoke(app, ["local", ADAPTER, "-o", "json", "--", "--max_iters", "8"])

    assert first.exit_code == 0, first.stderr
    assert again.exit_code == 0, again.stderr
    assert "iter 5: loss" in first.stderr and "resuming" not in first.stderr
    assert "resuming from iter 5" in again.stderr
    assert "iter 6: loss" in again.stderr and "iter 1: loss" not in again.stderr
    checkpoint = json.loads((workdir / "checkpoints" / "ckpt.json").read_text())
    assert checkpoint["iter_num"] == 8
    assert json.loads(again.stdout)["restored_checkpoint"] is None  # no store: the dir itself


def test_the_adapter_runs_unchanged_on_an_instance_and_a_new_job_resumes_it(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {})
    _copy_example(project)
    instance_id = ready_instance(cloud_env)

    first = run("aws", "train", instance_id, ADAPTER, "--wait", "-o", "json",
                "--", "--max_iters", "5")  # fmt: skip
    again = run("aws", "train", instance_id, ADAPTER, "--resume-from", "latest", "--wait",
                "-o", "json", "--", "--max_iters", "8")  # fmt: skip

    assert first.exit_code == 0, first.stderr
    assert again.exit_code == 0, again.stderr
    assert "iter 5: loss" in first.stderr
    assert "resuming from iter 5" in again.stderr
    assert "done: iter 8" in again.stderr
    assert json.loads(again.stdout)["restored_checkpoint"]


def test_the_guide_shows_the_adapter_that_is_tested() -> None:
    guide = (EXAMPLE.parents[1] / "docs" / "script-authors.md").read_text()
    shown = guide.split("`training/third_party/runctl_adapter.sh` is its adapter:")[1]
    shown_lines = shown.split("```bash\n")[1].split("```")[0].splitlines()
    tested = (EXAMPLE / "runctl_adapter.sh").read_text().splitlines()
    code = [line for line in tested if not line.startswith("# ")]
    assert shown_lines == code
