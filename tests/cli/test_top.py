"""``runctl top``: the live dashboard rendered to a recording console with a fake clock, once
under a real terminal (tmux), and its fallback to ``status`` when stdout is not a terminal."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from runctl.aws.session import AwsContext
from runctl.cli.dashboard import render_status
from runctl.cli.live import run_live
from runctl.config import resolve
from runctl.services.account.resources import Scope
from runctl.services.jobs.session import JobSession, Quiet
from runctl.services.overview.top import TopFrame, TopPoller
from tests.cli.aws_helpers import run
from tests.cli.jobs_helpers import make_project, ready_instance
from tests.cli.spot_helpers import log_text, wait_until
from tests.cloud.harness import Cloud

SLOW = "import time\nfor i in range(6000):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n"
CLOCK = datetime(2025, 3, 1, 12, 34, 56, tzinfo=UTC)


class ScriptedKeys:
    """Between frames, runs the next action and returns its key (None: refresh)."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.waited: list[float] = []

    def wait(self, timeout: float) -> str | None:
        self.waited.append(timeout)
        step = self.steps.pop(0)
        return step() if callable(step) else step


def test_top_redraws_usage_and_last_log_lines_and_stops_polling_gone_instances(
    cloud_env: Cloud, project: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"slow.py": SLOW})
    busy, doomed = ready_instance(cloud), ready_instance(cloud)
    started = json.loads(run("aws", "train", busy, "slow.py", "-o", "json").stdout)
    wait_until(lambda: "tick 3" in log_text(cloud, busy), what="the job running")
    session = JobSession(AwsContext(), resolve().settings, cwd=project, report=Quiet())
    asked: list[str] = []

    def snapshot(instance_id: str) -> Mapping[str, Any]:
        asked.append(instance_id)
        return session.processes(instance_id)

    poller = TopPoller(session, Scope.of(None, all_users=False), snapshot=snapshot)
    frames: list[TopFrame] = []

    def frame() -> TopFrame:
        frames.append(poller.poll())
        return frames[-1]

    def terminate() -> None:
        cloud.client("ec2").terminate_instances(InstanceIds=[doomed])
        cloud.wait_state(doomed, "terminated")

    def render(taken: TopFrame, footer: str) -> Any:
        return render_status(taken.report, usage=taken.usage, last_lines=taken.last_lines,
                             footer=footer, problems=taken.errors)  # fmt: skip

    console = Console(file=io.StringIO(), record=True, width=260, force_terminal=True)
    keys = ScriptedKeys(terminate, None, "q")
    shown = run_live(console, frame, render, interval=7, keys=keys, clock=lambda: CLOCK,
                     screen=False)  # fmt: skip
    assert shown == 3 and keys.waited == [7, 7, 7]
    assert sorted(asked[:2]) == sorted([busy, doomed])
    assert asked[2:] == [busy, busy]  # the terminated instance is never asked again
    assert frames[-1].gone == [doomed]
    assert frames[0].last_lines[started["job_id"]].startswith("tick ")
    usage = frames[0].usage[busy]
    assert usage is not None and usage["cpu"]["count"] >= 1
    text = console.export_text()
    assert "updated 12:34:56, every 7s; q or Ctrl-C to leave" in text
    assert started["job_id"] in text and "tick " in text
    assert "cpu" in text and "last log line" in text


def test_top_prints_status_when_stdout_is_not_a_terminal(cloud_env: Cloud, workdir: Path) -> None:
    result = run("top", "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert list(json.loads(result.stdout))[:3] == ["region", "scope", "instances"]
    assert run("top", "--interval", "0").exit_code == 2


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/services.sh)")
def test_top_under_a_real_terminal(cloud_env: Cloud, workdir: Path, tmp_path: Path) -> None:
    cloud = cloud_env
    instance_id = ready_instance(cloud)
    name = f"runctl-top-{uuid.uuid4().hex[:8]}"
    socket = str(tmp_path / "tmux.sock")
    env = cloud.subprocess_env()
    command = ["tmux", "-S", socket, "new-session", "-d", "-s", name, "-x", "250", "-y", "40",
               "-c", str(workdir), "runctl", "top", "--interval", "1"]  # fmt: skip
    subprocess.run(command, env=env, check=True)

    def screen() -> str:
        shown = subprocess.run(["tmux", "-S", socket, "capture-pane", "-p", "-t", name],
                               capture_output=True, text=True, env=env)  # fmt: skip
        return shown.stdout

    try:
        text = wait_until(lambda: (s := screen()) and "q or Ctrl-C" in s and s, timeout=60,
                          what="the dashboard")  # fmt: skip
        assert instance_id in text and "instances (us-east-1)" in text
        subprocess.run(["tmux", "-S", socket, "send-keys", "-t", name, "q"], env=env, check=True)
        wait_until(
            lambda: subprocess.run(["tmux", "-S", socket, "has-session", "-t", name],
                                   capture_output=True, env=env).returncode != 0,
            timeout=30, what="top to leave on q",
        )  # fmt: skip
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, env=env)
