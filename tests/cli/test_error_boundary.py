"""The one error boundary, end to end: missing or partial credentials and malformed regions get
their table codes wherever the AWS call happens, and under ``--output json`` the parser's own
usage errors print the same JSON error document as every other error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runctl.cli.app import app, requests_json
from tests.cloud.harness import Cloud

runner = CliRunner()
INSTANCE = "i-0123456789abcdef0"
COMMANDS = [
    ["aws", "create", "t3.micro"],
    ["aws", "status", INSTANCE],
    ["s3", "list", "s3://some-bucket/"],
    ["resources", "list"],
]
ERROR_KEYS = {"error", "message", "hint", "resource", "exit_code"}


@pytest.fixture
def no_credentials(cloud_env: Cloud, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return cloud_env


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_no_credentials_exit_4_with_the_fix(no_credentials: Cloud, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "-o", "json"])
    assert result.exit_code == 4, result.output
    assert "no AWS credentials found" in result.stderr
    assert "aws configure" in result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["error"] == "AuthError"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_partial_credentials_exit_4_naming_what_is_missing(
    no_credentials: Cloud, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    result = runner.invoke(app, command)
    assert result.exit_code == 4, result.output
    assert "incomplete AWS credentials" in result.stderr
    assert "AWS_SECRET_ACCESS_KEY" in result.stderr
    assert "unexpected" not in result.stderr


@pytest.mark.parametrize("region", ["us east 1", "us-east-1;", "../../x", "US-EAST-1"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_malformed_region_flag_is_a_usage_error_before_any_call(
    cloud_env: Cloud, workdir: Path, command: list[str], region: str
) -> None:
    result = runner.invoke(app, ["--region", region, *command, "-o", "json"])
    assert result.exit_code == 2, result.output
    assert "--region" in result.stderr and "is not a region name" in result.stderr
    assert json.loads(result.stdout)["exit_code"] == 2
    assert cloud_env.request_log == []


def test_a_malformed_region_elsewhere_is_a_config_error_naming_where(
    cloud_env: Cloud, workdir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_REGION", "mars")
    from_env = runner.invoke(app, ["s3", "list", "s3://some-bucket/"])
    assert from_env.exit_code == 3, from_env.output
    assert "AWS_REGION: 'mars' is not a region name" in from_env.stderr
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    profile = tmp_path / "aws-config"
    profile.write_text("[default]\nregion = eu west 1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    from_profile = runner.invoke(app, ["aws", "status", INSTANCE])
    assert from_profile.exit_code == 3, from_profile.output
    assert "AWS profile" in from_profile.stderr
    assert cloud_env.request_log == []


USAGE_ERRORS = [
    (["config", "show", "--bogus"], "No such option: --bogus", "runctl config show"),
    (["--bogus", "config", "show"], "No such option: --bogus", "runctl"),
    (["s3", "list"], "Missing argument", "runctl s3 list"),
    (["s3", "cleanup", "s3://b/", "--keep-last-n", "-1"], "--keep-last-n", "runctl s3 cleanup"),
    (["aws", "create", "t3.micro", "--count", "many"], "--count", "runctl aws create"),
    (["no-such-command"], "No such command", "runctl"),
]


@pytest.mark.parametrize(("args", "needle", "where"), USAGE_ERRORS)
@pytest.mark.parametrize("placement", ["leaf", "root"])
def test_usage_errors_under_json_print_the_error_document(
    workdir: Path, args: list[str], needle: str, where: str, placement: str
) -> None:
    argv = ["--output", "json", *args] if placement == "root" else [*args, "-o", "json"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    document = json.loads(result.stdout)
    assert set(document) == ERROR_KEYS
    assert (document["error"], document["exit_code"]) == ("UsageError", 2)
    assert needle in document["message"]
    assert document["hint"] == f"see `{where} --help`"
    assert "Usage:" in result.stderr  # people still get click's usage line
    text = runner.invoke(app, args)
    assert text.exit_code == 2 and text.stdout == ""


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (["-o", "json", "s3", "list"], True),
        (["s3", "list", "--output=JSON"], True),
        (["s3", "list", "-ojson"], True),
        (["-o", "json", "config", "show", "-o", "text"], False),  # the last one wins
        (["local", "train.py", "--", "--output", "json"], False),  # the script's own flag
        (["s3", "list", "--output"], False),
        ([], False),
    ],
)
def test_requests_json_reads_raw_arguments(args: list[str], wanted: bool) -> None:
    assert requests_json(args) is wanted
