"""``runctl init`` and ``runctl config show|validate|set`` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runctl.cli.app import app
from runctl.config_file import template_text

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def test_example_file_matches_what_init_writes(workdir: Path) -> None:
    assert (REPO / ".runctl.toml.example").read_text() == template_text()
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert (workdir / ".runctl.toml").read_text() == (REPO / ".runctl.toml.example").read_text()


def test_init_never_overwrites_without_force(workdir: Path) -> None:
    (workdir / ".runctl.toml").write_text('[aws]\ns3_bucket = "mine"\n')
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 2
    assert "already exists" in result.stderr
    assert (workdir / ".runctl.toml").read_text() == '[aws]\ns3_bucket = "mine"\n'
    bad = runner.invoke(app, ["init", "--force", "--bucket", "b1"])
    assert bad.exit_code == 3 and "aws.s3_bucket" in bad.stderr and "3 to 63" in bad.stderr
    assert (workdir / ".runctl.toml").read_text() == '[aws]\ns3_bucket = "mine"\n'
    forced = runner.invoke(app, ["init", "--force", "--bucket", "bkt-1", "--region", "eu-west-1"])
    assert forced.exit_code == 0, forced.output
    text = (workdir / ".runctl.toml").read_text()
    assert 's3_bucket = "bkt-1"' in text
    assert 'region = "eu-west-1"' in text
    assert "# runctl configuration." in text


def test_config_show_json_contract(workdir: Path) -> None:
    (workdir / ".runctl.toml").write_text('[aws]\ns3_bucket = "from-file"\n')
    result = runner.invoke(
        app, ["config", "show", "--output", "json"], env={"RUNCTL_CHECKPOINT__KEEP_LAST_N": "9"}
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"files", "settings"}
    assert doc["files"] == [str(workdir / ".runctl.toml")]
    rows = {row["key"]: row for row in doc["settings"]}
    assert set(next(iter(rows.values()))) == {"key", "value", "source"}
    assert rows["aws.s3_bucket"] == {
        "key": "aws.s3_bucket",
        "value": "from-file",
        "source": f"file {workdir / '.runctl.toml'}",
    }
    assert rows["checkpoint.keep_last_n"]["source"] == "env"
    assert rows["checkpoint.keep_last_n"]["value"] == 9
    assert rows["aws.remote_root"]["source"] == "default"


def test_root_flags_reach_config_show(workdir: Path) -> None:
    result = runner.invoke(app, ["--region", "ap-south-1", "--output", "json", "config", "show"])
    rows = {row["key"]: row for row in json.loads(result.stdout)["settings"]}
    assert rows["aws.region"] == {"key": "aws.region", "value": "ap-south-1", "source": "flag"}


def test_config_show_text_lists_every_key_on_stdout(workdir: Path) -> None:
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0
    for key in ("aws.s3_bucket", "checkpoint.grace_seconds", "s3.max_concurrency"):
        assert key in result.stdout


def test_config_validate_names_file_and_key(workdir: Path) -> None:
    (workdir / ".runctl.toml").write_text("[checkpoint]\nsync_interval_seconds = 0\n")
    result = runner.invoke(app, ["config", "validate"])
    assert result.exit_code == 3
    assert "checkpoint.sync_interval_seconds" in result.stderr
    assert str(workdir / ".runctl.toml") in result.stderr
    (workdir / ".runctl.toml").write_text("[checkpoint]\nsync_interval_seconds = 5\n")
    ok = runner.invoke(app, ["config", "validate", "--output", "json"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout) == {"valid": True, "files": [str(workdir / ".runctl.toml")]}


def test_config_set_keeps_comments_and_writes_where_the_key_came_from(workdir: Path) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    other = workdir / "other.toml"
    other.write_text('# my settings\n[aws]\nkey_name = "old"  # the key pair\n')
    result = runner.invoke(app, ["--config", str(other), "config", "set", "aws.key_name", "new"])
    assert result.exit_code == 0, result.output
    assert other.read_text() == '# my settings\n[aws]\nkey_name = "new"  # the key pair\n'

    result = runner.invoke(app, ["config", "set", "checkpoint.keep_last_n", "5"])
    assert result.exit_code == 0, result.output
    text = (workdir / ".runctl.toml").read_text()
    assert "keep_last_n = 5" in text
    assert "# Committed checkpoints kept in S3" in text
    shown = json.loads(runner.invoke(app, ["config", "show", "-o", "json"]).stdout)
    rows = {row["key"]: row for row in shown["settings"]}
    assert rows["checkpoint.keep_last_n"]["value"] == 5


def test_config_set_refuses_bad_keys_and_values_and_writes_nothing(workdir: Path) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    before = (workdir / ".runctl.toml").read_text()
    bad_key = runner.invoke(app, ["config", "set", "aws.bukcet", "x"])
    assert bad_key.exit_code == 2
    assert "aws.bukcet" in bad_key.stderr
    bad_value = runner.invoke(app, ["config", "set", "checkpoint.keep_last_n", "lots"])
    assert bad_value.exit_code == 3
    assert (workdir / ".runctl.toml").read_text() == before


def test_config_set_creates_a_project_file_when_none_exists(workdir: Path) -> None:
    result = runner.invoke(app, ["config", "set", "aws.s3_bucket", "bkt"])
    assert result.exit_code == 0, result.output
    assert 's3_bucket = "bkt"' in (workdir / ".runctl.toml").read_text()


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("region", "us-east-99x", "is not a region name"),
        ("region", "US_EAST_1", "is not a region name"),
        ("s3_bucket", "My_Bucket!", "lowercase letters, digits, dots and hyphens"),
        ("s3_bucket", "s3://my-bucket/data", "give the bare bucket name ('my-bucket')"),
        ("s3_bucket", "ab", "3 to 63 characters"),
        ("remote_root", "opt/runctl", "absolute path"),
        ("remote_root", "/opt/run ctl", "absolute path of letters"),
    ],
)
def test_impossible_values_are_config_errors_naming_the_key(
    workdir: Path, key: str, value: str, needle: str
) -> None:
    config = workdir / ".runctl.toml"
    config.write_text(f"[aws]\n{key} = {json.dumps(value)}\n")
    validated = runner.invoke(app, ["config", "validate"])
    assert validated.exit_code == 3, validated.output
    assert f"aws.{key}" in validated.stderr and str(config) in validated.stderr
    assert needle in validated.stderr
    config.write_text("[aws]\n")
    refused = runner.invoke(app, ["config", "set", f"aws.{key}", value, "-o", "json"])
    assert refused.exit_code == 3, refused.output
    assert json.loads(refused.stdout)["error"] == "ConfigError"
    assert f"aws.{key}" in refused.stderr and needle in refused.stderr
    assert config.read_text() == "[aws]\n"
    from_env = runner.invoke(app, ["config", "validate"], env={f"RUNCTL_AWS__{key.upper()}": value})
    assert from_env.exit_code == 3
    assert f"RUNCTL_AWS__{key.upper()}" in from_env.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("region", "us-gov-west-1"),
        ("region", "ap-southeast-5"),
        ("s3_bucket", "my.bucket-2"),
        ("remote_root", "/home/ec2-user/runctl_root"),
    ],
)
def test_real_names_are_accepted(workdir: Path, key: str, value: str) -> None:
    result = runner.invoke(app, ["config", "set", f"aws.{key}", value])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["config", "validate"]).exit_code == 0
