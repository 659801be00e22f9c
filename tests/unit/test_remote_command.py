"""The SSM command builders quote every value: whatever a root, URL, job or region holds, the
programs they start receive it as one exact argument (checked by running the real bash with a
``python3`` that only reports its arguments)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runctl.services.jobs.commands import (
    job_state_command,
    parse_command_json,
    start_job_command,
    stop_job_command,
)

STUB = f"""#!{sys.executable}
import json, sys
if sys.argv[1:2] == ["-"]:
    sys.stdin.read()
print(json.dumps(sys.argv[1:]))
"""
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=30,
)
NAME = TEXT.filter(lambda s: "/" not in s and s not in (".", "..") and len(s.encode()) < 200)


@pytest.fixture
def stub_path(tmp_path: Path) -> str:
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir()
    stub = bin_dir / "python3"
    stub.write_text(STUB)
    stub.chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def _run(command: str, path: str, root: str | None = None) -> list[list[str]]:
    env = {"PATH": path, "LANG": "C.UTF-8"}
    if root is not None:
        env["RUNCTL_REMOTE_ROOT"] = root
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=NAME, url=TEXT, sha=TEXT, job=TEXT, region=TEXT)
@example(name="-rf", url="http://x/?a=1&b='2'", sha="$(id)", job="s3://b/`id`;x", region="\n")
def test_start_command_passes_every_value_exactly(
    stub_path: str, tmp_path: Path, name: str, url: str, sha: str, job: str, region: str
) -> None:
    root = tmp_path / "roots" / name
    root.mkdir(parents=True, exist_ok=True)
    command = start_job_command(url, sha, job, 3, True, str(root), region=region)

    calls = _run(command, stub_path)

    runtime = f"{root}/runtime/{sha}"
    assert calls[1] == ["-", url, sha, runtime]
    assert calls[2] == [
        "-m",
        "runctl.remote.runner",
        "start",
        "--root",
        str(root),
        "--job",
        job,
        "--attempt",
        "3",
        "--force",
        "--region",
        region,
    ]
    assert (root / "runtime" / "current").read_bytes() == (runtime + "\n").encode()


def test_start_command_prefers_the_environment_root(stub_path: str, tmp_path: Path) -> None:
    command = start_job_command("u", "abc", "s3://b/j/", 0, remote_root_default="/nonexistent")

    calls = _run(command, stub_path, root=str(tmp_path / "sandbox"))

    assert calls[-1][calls[-1].index("--root") + 1] == str(tmp_path / "sandbox")
    assert "--force" not in calls[-1]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=NAME, job=TEXT)
def test_control_commands_pass_values_exactly(
    stub_path: str, tmp_path: Path, name: str, job: str
) -> None:
    root = tmp_path / "roots" / name
    runtime = root / "runtime" / "sha"
    (runtime / "runctl").mkdir(parents=True, exist_ok=True)
    (root / "runtime" / "current").write_text(f"{runtime}\n")

    stop = _run(
        stop_job_command(job, timeout_seconds=7, remote_root_default=str(root), reason="cancel"),
        stub_path,
    )
    state = _run(job_state_command(job, lines=4, remote_root_default=str(root)), stub_path)

    assert stop == [
        [
            "-m",
            "runctl.remote.control",
            "stop",
            "--root",
            str(root),
            "--timeout",
            "7.0",
            "--reason",
            "cancel",
            "--job",
            job,
        ]
    ]
    assert state == [
        ["-m", "runctl.remote.control", "state", "--root", str(root), "--lines", "4", "--job", job]
    ]


def test_control_commands_answer_json_without_a_runtime(stub_path: str, tmp_path: Path) -> None:
    env_root = str(tmp_path / "empty")
    for command in (stop_job_command(), job_state_command()):
        done = subprocess.run(
            ["bash", "-c", command],
            env={"PATH": stub_path, "RUNCTL_REMOTE_ROOT": env_root},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0
        assert parse_command_json(done.stdout)["running"] is False


def test_commands_stay_small() -> None:
    command = start_job_command("https://x/" + "a" * 500, "f" * 64, "s3://b/runctl/p/jobs/j/", 0)
    assert len(command) < 2500
    assert len(stop_job_command()) < 1000


def test_parse_command_json_takes_the_last_object() -> None:
    assert parse_command_json('noise\n{"a": 1}\n{"b": 2}\n') == {"b": 2}
    with pytest.raises(ValueError):
        parse_command_json("no json here")
