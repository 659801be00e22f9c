"""Other people's code, unchanged, on an instance: wrappers that call ``python3`` and console
scripts, a Deep Learning AMI's framework Python, ``--python``, and what the bundle left out.

Each test drives the real CLI against the harness; ``requirements.txt`` installs a local wheel
(``--no-index --find-links wheels``), so pip really runs on the instance, offline.
"""

from __future__ import annotations

from pathlib import Path

from tests.cli.aws_helpers import ok_json, run
from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cloud.harness import Cloud
from tests.python_envs import (
    FRAMEWORK_TORCH,
    REQUIREMENTS,
    make_framework_python,
    write_probe_wheel,
)

WRAPPER = """#!/bin/bash
# What a torchrun / accelerate launch wrapper does: call python3 and console scripts by name.
set -euo pipefail
python3 -c "import runctl_probe_pkg as p; print('imported', p.VALUE)"
runctl-probe
echo "VIRTUAL_ENV=$VIRTUAL_ENV"
"""

FRAMEWORK_SCRIPT = """
import sys
import runctl_probe_pkg, torch
print("executable", sys.executable)
print("torch", torch.__version__, "probe", runctl_probe_pkg.VALUE)
"""


def _project_with_requirements(project: Path, files: dict[str, str]) -> None:
    make_project(project, {"requirements.txt": REQUIREMENTS, **files})
    write_probe_wheel(project / "wheels")


def test_a_shell_wrapper_finds_the_packages_of_requirements_txt(
    cloud_env: Cloud, project: Path
) -> None:
    _project_with_requirements(project, {"run.sh": WRAPPER})
    instance_id = ready_instance(cloud_env)

    result = run("aws", "train", instance_id, "run.sh", "--wait", "-o", "json")

    assert result.exit_code == 0, result.stderr
    log = result.stderr
    assert "imported 42" in log  # the wrapper's python3 is the venv's
    assert "probe 42" in log  # and so is a console script found by name
    venv = log.split("VIRTUAL_ENV=")[1].split()[0]
    assert venv.startswith(str(cloud_env.sandbox(instance_id) / "venvs"))
    status = ok_json("aws", "status", instance_id)
    assert status["job_state"] == "succeeded"
    assert status["job_venv"] == venv
    assert status["job_python_source"] == "system"


def test_a_framework_python_on_the_image_runs_the_script_and_builds_the_venv(
    cloud_env: Cloud, project: Path
) -> None:
    _project_with_requirements(
        project,
        {"train.py": FRAMEWORK_SCRIPT, "launch.sh": "#!/bin/bash\nset -e\ntorchrun\n"},
    )
    instance_id = ready_instance(cloud_env, image="dl-ubuntu")
    # The image's /opt/pytorch: a virtualenv with the framework installed (see the DLAMI notes).
    framework = make_framework_python(
        cloud_env.sandbox(instance_id) / "opt" / "pytorch",
        cloud_env.toolbox.venv / "bin" / "python3",
    )

    result = run("aws", "train", instance_id, "train.py", "--wait", "-o", "json")

    assert result.exit_code == 0, result.stderr
    assert f"torch {FRAMEWORK_TORCH} probe 42" in result.stderr
    status = ok_json("aws", "status", instance_id)
    assert (status["job_python"], status["job_python_source"]) == (str(framework), "framework")
    assert status["job_python_version"]
    text = run("aws", "status", instance_id)
    assert f"{framework} (" in text.stdout and "framework" in text.stdout

    # A wrapper finds the framework environment's console scripts (its torchrun) too.
    wrapped = run("aws", "train", instance_id, "launch.sh", "--wait", "-o", "json")
    assert wrapped.exit_code == 0, wrapped.stderr
    assert "torchrun here" in wrapped.stderr


def test_python_names_the_interpreter_and_a_missing_one_is_refused_before_anything_is_written(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"train.py": "import sys\nprint('executable', sys.executable)\n"})
    instance_id = ready_instance(cloud_env)
    other = make_framework_python(
        cloud_env.sandbox(instance_id) / "envs" / "mine",
        cloud_env.toolbox.venv / "bin" / "python3",
    )

    missing = run("aws", "train", instance_id, "train.py", "--python", "/opt/nope/bin/python")
    assert missing.exit_code == 6, missing.stderr
    assert "--python /opt/nope/bin/python does not exist on instance" in missing.stderr
    jobs = cloud_env.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runctl/demo/jobs/")
    assert jobs.get("KeyCount", 0) == 0

    named = run(
        "aws", "train", instance_id, "train.py", "--python", str(other), "--wait", "-o", "json"
    )
    assert named.exit_code == 0, named.stderr
    assert f"executable {other}" in named.stderr
    assert ok_json("aws", "status", instance_id)["job_python_source"] == "--python"


def test_relative_python_outputs_outside_the_project_and_python_with_docker_are_usage_errors(
    cloud_env: Cloud, project: Path
) -> None:
    make_project(project, {"train.py": "print(1)\n"})
    cloud_env.request_log.clear()
    for options in (
        ("--python", "bin/python"),
        ("--outputs", "../elsewhere"),
        ("--python", "/opt/pytorch/bin/python", "--docker-image", "repo:tag"),  # the image's
    ):
        result = run("aws", "train", "i-0123456789abcdef0", "train.py", *options)
        assert result.exit_code == 2, result.stderr
        assert options[0] in result.stderr
    assert cloud_env.request_log == []


def test_the_user_hears_what_the_bundle_left_out_and_what_the_script_needs_of_it(
    cloud_env: Cloud, project: Path
) -> None:
    script = "import os\nprint(os.path.exists(os.path.join('data', 'train.bin')))\n"
    make_project(project, {".gitignore": "data/*.bin\n", "train.py": script, "data/prepare.py": ""})
    (project / "data" / "train.bin").write_bytes(b"x" * 3_000_000)
    instance_id = ready_instance(cloud_env)

    result = run("aws", "train", instance_id, "train.py", "--wait", "-o", "json")

    assert result.exit_code == 0, result.stderr
    err = result.stderr
    assert "left out by .gitignore/.runctlignore: 1 file, 3.0 MB" in err
    assert "data/train.bin (3.0 MB)" in err
    assert "warning: train.py refers to 'data'" in err and "--data-s3" in err
    assert "False" in err  # indeed not there on the instance
