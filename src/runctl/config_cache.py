"""The resolved configuration, and a cache of it that spares a command pydantic.

Validating the configuration means importing pydantic and building its models: about 60 ms on
every command, twice what ``runctl --help`` takes in all. The result depends only on the config
files' contents, the ``RUNCTL_*`` environment, the command's flags and runctl's own schema, so
:func:`resolve_cached` keys the validated values by exactly those (file contents by sha256, so an
edit inside one mtime tick is still seen) and a repeated command reads them back from
``$XDG_CACHE_HOME/runctl/config/`` as JSON. A command that needs the typed models
(:attr:`ResolvedConfig.settings`) validates the cached values then, on first use; ``config show``
and the ``--help`` path never do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runctl import __version__
from runctl.paths import cache_dir, find_project_file, user_config_file

if TYPE_CHECKING:
    from runctl.config import Settings

KEEP_ENTRIES = 32
ENV_PREFIX = "RUNCTL_"  # the variables runctl.config reads


@dataclass(frozen=True)
class Layer:
    """One source of configuration values: a file, the environment, flags, or defaults."""

    source: str
    data: dict[str, dict[str, Any]]
    path: Path | None = None


@dataclass
class ResolvedConfig:
    """Validated values (every key, by section) plus, for every dotted key, the layer it came
    from. ``settings`` gives them as the typed models."""

    values: dict[str, dict[str, Any]]
    sources: dict[str, str]
    layers: list[Layer] = field(default_factory=list)
    _settings: Settings | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, settings: Settings, sources: dict[str, str], layers: list[Layer]) -> ResolvedConfig:
        """The resolved configuration of already validated ``settings``."""
        return cls(settings.model_dump(mode="json"), sources, layers, settings)

    @property
    def settings(self) -> Settings:
        """The typed settings (validated from ``values`` on first use)."""
        if self._settings is None:
            from runctl.config import validate_settings

            self._settings = validate_settings(self.values, where="configuration")
        return self._settings

    def value(self, key: str) -> Any:
        section, _, name = key.partition(".")
        try:
            return self.values[section][name]
        except KeyError:
            from runctl.config import split_key

            split_key(key)  # raises the UsageError that names the key
            raise

    def file_for(self, key: str) -> Path | None:
        """The file a key's value came from, if it came from a file."""
        section, _, name = key.partition(".")
        for layer in reversed(self.layers):
            if layer.path is not None and name in layer.data.get(section, {}):
                return layer.path
        return None

    @property
    def files(self) -> list[Path]:
        return [layer.path for layer in self.layers if layer.path is not None]


def resolve_cached(
    *,
    config_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """:func:`runctl.config.resolve`, read from the cache when nothing it depends on changed.

    Raises what ``resolve`` raises; a cache that cannot be read or written is simply not used.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    key = _fingerprint(config_path, overrides or {}, cwd, env)
    entry = cache_dir("config", env=env) / f"{key}.json" if key else None
    if entry is not None:
        cached = _read(entry)
        if cached is not None:
            return cached
    from runctl.config import resolve

    resolved = resolve(cwd=cwd, env=env, config_path=config_path, overrides=overrides)
    if entry is not None:
        _write(entry, resolved)
    return resolved


def _fingerprint(
    config_path: Path | None, overrides: Mapping[str, Any], cwd: Path, env: Mapping[str, str]
) -> str | None:
    """What the resolution depends on, hashed; None when it cannot be said (unreadable file)."""
    files: list[tuple[str, str | None]] = []
    for path in (user_config_file(env), find_project_file(cwd), config_path):
        if path is None:
            continue
        try:
            digest: str | None = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            digest = None
        except OSError:
            return None
        files.append((str(path), digest))
    schema = Path(__file__).with_name("config.py").stat()
    basis = {
        "runctl": [__version__, schema.st_mtime_ns, schema.st_size],
        "files": files,
        "env": sorted((k, v) for k, v in env.items() if k.startswith(ENV_PREFIX)),
        "flags": sorted((k, repr(v)) for k, v in overrides.items() if v is not None),
    }
    return hashlib.sha256(json.dumps(basis).encode()).hexdigest()


def _read(entry: Path) -> ResolvedConfig | None:
    try:
        data = json.loads(entry.read_text("utf-8"))
        layers = [
            Layer(item["source"], item["data"], Path(item["path"]) if item["path"] else None)
            for item in data["layers"]
        ]
        return ResolvedConfig(data["values"], data["sources"], layers)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(entry: Path, resolved: ResolvedConfig) -> None:
    """Store ``resolved`` under ``entry`` (atomically) and keep the newest entries only."""
    document = {
        "values": resolved.values,
        "sources": resolved.sources,
        "layers": [
            {"source": layer.source, "data": layer.data, "path": layer.path and str(layer.path)}
            for layer in resolved.layers
        ],
    }
    try:
        text = json.dumps(document)
    except (TypeError, ValueError):
        return  # a value JSON cannot hold (a TOML date): resolve it every time
    with contextlib.suppress(OSError):
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config.", dir=entry.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, entry)
        _prune(entry.parent)


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP_ENTRIES:]:
        with contextlib.suppress(OSError):
            old.unlink()
