"""The volume scripts sent over SSM (runctl.services.jobs.volume_commands): quoting, and the
lines they answer with."""

from __future__ import annotations

import subprocess

import pytest

from runctl.services.jobs.volume_commands import (
    fill_command,
    mount_command,
    parse_error_line,
    parse_volume_line,
    unmount_command,
)


def test_every_value_is_quoted() -> None:
    script = mount_command("vol-0abc", "/dev/sdf", "/mnt/it's here")
    assert "mnt='/mnt/it'\"'\"'s here'" in script
    fill = fill_command("https://x/y?sig=1&b=2", "ab" * 32, "s3://b/$(reboot)/", "/mnt/data")
    assert "'s3://b/$(reboot)/'" in fill and "'https://x/y?sig=1&b=2'" in fill


@pytest.mark.parametrize(
    "script",
    [
        mount_command("vol-0abc", "/dev/sdf", "/mnt/data"),
        unmount_command("vol-0abc", "/dev/sdf"),
        unmount_command("vol-0abc", "/dev/sdf", force=True),
        fill_command("https://x/y", "ab" * 32, "s3://b/p/", "/mnt/data", region="eu-west-1"),
    ],
)
def test_scripts_are_valid_bash(script: str) -> None:
    checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr


def test_the_result_lines_parse() -> None:
    out = (
        "noise\nRUNCTL-VOLUME device=/dev/nvme1n1 mount=/mnt/data fstype=ext4 uuid=u formatted=1\n"
    )
    assert parse_volume_line(out)["device"] == "/dev/nvme1n1"
    assert parse_volume_line(out)["formatted"] == "1"
    with pytest.raises(ValueError):
        parse_volume_line("nothing")
    assert parse_error_line("RUNCTL-ERROR busy /mnt/data is in use by 12:sleep") == (
        "busy",
        "/mnt/data is in use by 12:sleep",
    )
    assert parse_error_line("all fine") is None


def test_a_missing_device_is_reported_not_guessed(tmp_path: object) -> None:
    """With nothing attached the mount script gives up with a clear line, never formats."""
    script = mount_command("vol-0abc", "/dev/sdf", "/mnt/data", wait_seconds=1)
    env = {"RUNCTL_SYSTEM_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", script], env=env, text=True, capture_output=True)
    assert done.returncode == 3
    code, message = parse_error_line(done.stdout) or ("", "")
    assert code == "no-device" and "vol-0abc" in message
