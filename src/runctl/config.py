"""Configuration: pydantic models, the files they come from, and precedence.

Precedence, highest first (docs/reference.md, "Configuration"): command-line flag,
``RUNCTL_<SECTION>__<KEY>`` environment variable, ``--config PATH``, ``./.runctl.toml`` searched
upward to the project root, ``~/.config/runctl/config.toml`` (``$XDG_CONFIG_HOME`` honoured),
defaults. Every resolved value remembers which layer it came from so ``runctl config show`` can say
so.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runctl.config_cache import Layer, ResolvedConfig
from runctl.errors import ConfigError, UsageError
from runctl.naming import bucket_problem, region_problem, remote_root_problem
from runctl.paths import find_project_file, user_config_file

ENV_PREFIX = "RUNCTL_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AwsSettings(_Section):
    """``[aws]``: where and how instances are launched."""

    region: str | None = None
    s3_bucket: str | None = None
    default_instance_type: str = "t3.medium"
    default_ami: str | None = None
    use_spot: bool = False
    spot_max_price: float | None = Field(default=None, gt=0)
    iam_instance_profile: str | None = None
    security_group: str | None = None
    subnet_id: str | None = None
    key_name: str | None = None
    project_name: str | None = None
    remote_root: str = "/opt/runctl"
    max_instances: int = Field(default=10, ge=1)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else _checked(value, region_problem)

    @field_validator("s3_bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        return None if value is None else _checked(value, bucket_problem)

    @field_validator("remote_root")
    @classmethod
    def _remote_root(cls, value: str) -> str:
        # It reaches the boot script and every SSM command: refuse what a shell would interpret.
        return _checked(value, remote_root_problem)


def _checked(value: str, problem: Callable[[str], str | None]) -> str:
    """``value``, or the ValueError (pydantic's validation error) saying what is wrong."""
    found = problem(value)
    if found:
        raise ValueError(found)
    return value


class CheckpointSettings(_Section):
    """``[checkpoint]``: how checkpoints are synced and kept."""

    dir: str = "checkpoints"
    sync_interval_seconds: int = Field(default=60, ge=1)
    keep_last_n: int = Field(default=3, ge=1)
    grace_seconds: int = Field(default=60, ge=1, le=110)


class LocalSettings(_Section):
    """``[local]``: ``runctl local`` runs on this machine."""

    #: ``runctl local``'s own checkpoint directory; None: ``checkpoint.dir``, as on an instance.
    checkpoint_dir: str | None = None
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"


class DockerSettings(_Section):
    """``[docker]``: image builds and pushes (``runctl docker``, ``aws train --docker``)."""

    repository: str | None = None
    dockerfile: str = "Dockerfile"
    keep_last_n: int = Field(default=10, ge=1, le=1000)


class S3Settings(_Section):
    """``[s3]``: the transfer engine's tuning."""

    multipart_threshold_mb: int = Field(default=16, ge=5)
    multipart_chunksize_mb: int = Field(default=16, ge=5)
    max_concurrency: int = Field(default=16, ge=1, le=256)


class Settings(_Section):
    """The whole resolved configuration."""

    aws: AwsSettings = Field(default_factory=AwsSettings)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)
    docker: DockerSettings = Field(default_factory=DockerSettings)
    s3: S3Settings = Field(default_factory=S3Settings)


SECTIONS: dict[str, type[_Section]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Settings.model_fields.items()
}


def all_keys() -> list[str]:
    """Every dotted key that exists, in declaration order."""
    return [f"{sec}.{key}" for sec, model in SECTIONS.items() for key in model.model_fields]


def split_key(key: str) -> tuple[str, str]:
    """Split ``aws.s3_bucket`` into its section and name, refusing keys that do not exist."""
    section, _, name = key.partition(".")
    model = SECTIONS.get(section)
    if model is None or name not in model.model_fields:
        raise UsageError(
            f"unknown configuration key {key!r}",
            hint="`runctl config show` lists every key; keys look like aws.s3_bucket",
        )
    return section, name


def parse_value(key: str, raw: str) -> Any:
    """Convert a command-line or environment string into the key's type, or raise ConfigError."""
    section, name = split_key(key)
    model = SECTIONS[section]
    if raw.strip().lower() in ("", "none", "null") and _allows_none(
        model.model_fields[name].annotation
    ):
        return None
    try:
        return getattr(model.model_validate({name: raw}), name)
    except ValidationError as exc:
        detail = _message(exc.errors()[0]["msg"])
        raise ConfigError(f"invalid value {raw!r} for {key}: {detail}", resource=key) from None


def _message(msg: str) -> str:
    """pydantic's message without the ``Value error, `` it puts before a validator's own."""
    return msg.removeprefix("Value error, ")


def _allows_none(annotation: Any) -> bool:
    return "None" in repr(annotation)


def read_file_layer(path: Path, source: str) -> Layer:
    """Parse one TOML file and validate its keys, naming the file in every error."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", resource=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", resource=str(path)) from None
    validate_settings(data, where=str(path))
    return Layer(source=source, data=data, path=path)


def env_layer(env: Mapping[str, str]) -> Layer:
    """Values from ``RUNCTL_<SECTION>__<KEY>`` variables (e.g. ``RUNCTL_AWS__S3_BUCKET``)."""
    data: dict[str, dict[str, Any]] = {}
    for var, raw in sorted(env.items()):
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        section, _, name = var[len(ENV_PREFIX) :].lower().partition("__")
        key = f"{section}.{name}"
        try:
            value = parse_value(key, raw)
        except UsageError:
            raise ConfigError(
                f"environment variable {var} names no configuration key ({key})",
                hint="unset it, or see `runctl config show` for the keys that exist",
            ) from None
        except ConfigError as exc:
            raise ConfigError(f"environment variable {var}: {exc.message}") from None
        data.setdefault(section, {})[name] = value
    return Layer(source="env", data=data)


def flag_layer(overrides: Mapping[str, Any]) -> Layer:
    """Values given as command-line flags, keyed by dotted name; ``None`` means not given."""
    data: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        section, name = split_key(key)
        data.setdefault(section, {})[name] = value
    return Layer(source="flag", data=data)


def validate_settings(data: Mapping[str, Any], *, where: str) -> Settings:
    """``data`` as Settings, or a ConfigError naming ``where`` (a file) and the first bad key."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            detail = f"unknown key {loc!r}"
        else:
            detail = f"{loc}: {_message(first['msg'])}"
        raise ConfigError(
            f"{where}: {detail}", hint="see .runctl.toml.example for every key", resource=where
        ) from None


def resolve(
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ResolvedConfig:
    """Load every layer, merge by precedence and validate the result.

    Raises ConfigError naming the file or variable and the key when anything is invalid.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    layers: list[Layer] = [Layer(source="default", data={})]
    user_file = user_config_file(env)
    if user_file.is_file():
        layers.append(read_file_layer(user_file, f"file {user_file}"))
    project_file = find_project_file(cwd)
    if project_file is not None:
        layers.append(read_file_layer(project_file, f"file {project_file}"))
    if config_path is not None:
        layers.append(read_file_layer(config_path, f"file {config_path} (--config)"))
    layers.append(env_layer(env))
    layers.append(flag_layer(overrides or {}))

    merged: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {key: "default" for key in all_keys()}
    for layer in layers:
        for section, values in layer.data.items():
            for name, value in values.items():
                merged.setdefault(section, {})[name] = value
                sources[f"{section}.{name}"] = layer.source
    settings = validate_settings(merged, where="configuration")
    return ResolvedConfig.of(settings, sources, layers)
