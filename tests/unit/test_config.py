"""Configuration models, layers and precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from runctl.config import parse_value, resolve
from runctl.errors import ConfigError, UsageError
from runctl.paths import find_project_file


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home")}


def test_defaults_for_every_key(tmp_path: Path, home: dict[str, str]) -> None:
    resolved = resolve(cwd=tmp_path, env=home)
    assert resolved.settings.aws.remote_root == "/opt/runctl"
    assert resolved.settings.checkpoint.keep_last_n == 3
    assert resolved.settings.aws.max_instances == 10
    assert set(resolved.sources.values()) == {"default"}
    assert resolved.files == []


def test_precedence_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = tmp_path / "proj"
    write(home / ".config/runctl/config.toml", '[aws]\ns3_bucket = "user"\nkey_name = "user"\n')
    write(project / ".git/HEAD", "")
    write(
        project / ".runctl.toml",
        '[aws]\ns3_bucket = "project"\nkey_name = "project"\nsubnet_id = "project"\n',
    )
    explicit = write(
        tmp_path / "explicit.toml",
        '[aws]\ns3_bucket = "explicit"\nkey_name = "explicit"\nsubnet_id = "explicit"\n'
        'security_group = "explicit"\n',
    )
    env = {
        "HOME": str(home),
        "RUNCTL_AWS__S3_BUCKET": "env",
        "RUNCTL_AWS__KEY_NAME": "env",
    }
    resolved = resolve(
        cwd=project / "src", env=env, config_path=explicit, overrides={"aws.s3_bucket": "flag"}
    )
    aws = resolved.settings.aws
    assert aws.s3_bucket == "flag"
    assert aws.key_name == "env"
    assert aws.security_group == "explicit"
    assert aws.subnet_id == "explicit"
    assert resolved.sources["aws.s3_bucket"] == "flag"
    assert resolved.sources["aws.key_name"] == "env"
    assert resolved.sources["aws.security_group"] == f"file {explicit} (--config)"
    assert resolved.sources["aws.region"] == "default"

    without_explicit = resolve(cwd=project / "src", env={"HOME": str(home)})
    assert without_explicit.settings.aws.subnet_id == "project"
    assert without_explicit.sources["aws.subnet_id"] == f"file {project / '.runctl.toml'}"
    user_only = resolve(cwd=tmp_path / "elsewhere", env={"HOME": str(home)})
    assert user_only.settings.aws.key_name == "user"


def test_xdg_config_home_is_honoured(tmp_path: Path) -> None:
    write(tmp_path / "xdg/runctl/config.toml", "[checkpoint]\nkeep_last_n = 7\n")
    resolved = resolve(
        cwd=tmp_path, env={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    )
    assert resolved.settings.checkpoint.keep_last_n == 7


def test_project_file_is_searched_upward_but_not_past_the_project_root(tmp_path: Path) -> None:
    write(tmp_path / ".runctl.toml", "")
    inner = tmp_path / "repo"
    write(inner / "pyproject.toml", "")
    (inner / "a/b").mkdir(parents=True)
    assert find_project_file(inner / "a/b") is None
    write(inner / ".runctl.toml", "")
    assert find_project_file(inner / "a/b") == inner / ".runctl.toml"
    assert find_project_file(tmp_path) == tmp_path / ".runctl.toml"


def test_unknown_key_in_file_is_refused_by_name(tmp_path: Path, home: dict[str, str]) -> None:
    path = write(tmp_path / ".runctl.toml", '[aws]\ns3_bukcet = "x"\n')
    with pytest.raises(ConfigError) as err:
        resolve(cwd=tmp_path, env=home)
    assert "aws.s3_bukcet" in err.value.message
    assert str(path) in err.value.message


def test_unknown_section_is_refused(tmp_path: Path, home: dict[str, str]) -> None:
    write(tmp_path / ".runctl.toml", "[gpu]\ncount = 1\n")
    with pytest.raises(ConfigError, match="'gpu'"):
        resolve(cwd=tmp_path, env=home)


def test_wrong_type_names_file_and_key(tmp_path: Path, home: dict[str, str]) -> None:
    write(tmp_path / ".runctl.toml", '[checkpoint]\nkeep_last_n = "many"\n')
    with pytest.raises(ConfigError, match=r"checkpoint\.keep_last_n"):
        resolve(cwd=tmp_path, env=home)


def test_invalid_toml_is_a_config_error(tmp_path: Path, home: dict[str, str]) -> None:
    write(tmp_path / ".runctl.toml", "[aws\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve(cwd=tmp_path, env=home)


def test_env_values_are_typed_and_unknown_names_refused(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "RUNCTL_AWS__USE_SPOT": "true", "RUNCTL_AWS__MAX_INSTANCES": "4"}
    settings = resolve(cwd=tmp_path, env=env).settings
    assert settings.aws.use_spot is True
    assert settings.aws.max_instances == 4
    with pytest.raises(ConfigError, match="RUNCTL_AWS__NOPE"):
        resolve(cwd=tmp_path, env={"HOME": str(tmp_path), "RUNCTL_AWS__NOPE": "1"})
    with pytest.raises(ConfigError, match="RUNCTL_CHECKPOINT__KEEP_LAST_N"):
        resolve(cwd=tmp_path, env={"HOME": str(tmp_path), "RUNCTL_CHECKPOINT__KEEP_LAST_N": "x"})


def test_job_environment_variables_are_not_config(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "RUNCTL_JOB_ID": "x", "RUNCTL_REMOTE_ROOT": "/tmp/r"}
    assert resolve(cwd=tmp_path, env=env).settings.aws.remote_root == "/opt/runctl"


def test_missing_explicit_config_file(tmp_path: Path, home: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(cwd=tmp_path, env=home, config_path=tmp_path / "nope.toml")


def test_parse_value() -> None:
    assert parse_value("aws.use_spot", "yes") is True
    assert parse_value("aws.spot_max_price", "0.25") == 0.25
    assert parse_value("aws.s3_bucket", "none") is None
    with pytest.raises(UsageError):
        parse_value("aws.bogus", "1")
    with pytest.raises(ConfigError):
        parse_value("checkpoint.grace_seconds", "500")
