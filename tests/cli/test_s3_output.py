"""The transfer progress bar of ``Output`` and the byte formatting the s3 commands share."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading

from rich.console import Console

from runctl.cli.output import Output, format_bytes
from tests.cloud.harness import Cloud


def test_progress_bar_draws_on_a_terminal() -> None:
    sink = io.StringIO()
    out = Output(_err=Console(file=sink, force_terminal=True, width=100))
    with out.transfer_progress("upload", 4 * 1024 * 1024) as advance:
        workers = [threading.Thread(target=advance, args=(1024 * 1024,)) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert "upload" in sink.getvalue()


def test_progress_bar_is_silent_when_stderr_is_not_a_terminal() -> None:
    sink = io.StringIO()
    out = Output(_err=Console(file=sink, force_terminal=False))
    with out.transfer_progress("download", None) as advance:
        advance(123)
    assert sink.getvalue() == ""


def test_format_bytes() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(20 * 1024**2) == "20.0 MiB"
    assert format_bytes(3 * 1024**3) == "3.0 GiB"
    assert format_bytes(5 * 1024**4) == "5.0 TiB"


def test_the_installed_entry_point_lists_a_bucket(cloud: Cloud) -> None:
    cloud.client("s3", internal=True).create_bucket(Bucket="entry")
    cloud.client("s3", internal=True).put_object(Bucket="entry", Key="k", Body=b"v")
    proc = subprocess.run(
        [sys.executable, "-m", "runctl", "s3", "list", "s3://entry", "--output", "json"],
        env=cloud.subprocess_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert [o["key"] for o in json.loads(proc.stdout)["objects"]] == ["k"]
