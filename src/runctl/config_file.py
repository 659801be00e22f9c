"""Writing configuration files: ``runctl init`` and ``runctl config set``.

Edits go through tomlkit so the comments and layout of a user's file survive.
"""

from __future__ import annotations

import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from runctl.config import parse_value, split_key, validate_settings
from runctl.errors import ConfigError, UsageError


def template_text() -> str:
    """The commented configuration written by ``runctl init``."""
    return resources.files("runctl").joinpath("templates/runctl.toml.example").read_text("utf-8")


def write_initial(path: Path, *, force: bool, values: dict[str, Any]) -> Path:
    """Write the commented template to ``path``, then set ``values`` in it.

    Raises UsageError when the file exists and ``force`` is false, ConfigError naming the key
    when a value is invalid (nothing is written then).
    """
    if path.exists() and not force:
        raise UsageError(
            f"{path} already exists; not overwriting it",
            hint="pass --force to replace it, or `runctl config set KEY VALUE` to edit one key",
            resource=str(path),
        )
    text = template_text()
    for key, value in values.items():
        if value is not None:
            text = _set_in_text(text, key, parse_value(key, str(value)), where=str(path))
    _atomic_write(path, text)
    return path


def set_value(path: Path, key: str, raw: str) -> Any:
    """Set ``key`` to ``raw`` (converted to the key's type) in the TOML file at ``path``.

    The file is created when missing. Returns the typed value written.
    """
    split_key(key)
    value = parse_value(key, raw)
    text = path.read_text("utf-8") if path.exists() else ""
    _atomic_write(path, _set_in_text(text, key, value, where=str(path)))
    return value


def _set_in_text(text: str, key: str, value: Any, *, where: str) -> str:
    import tomlkit

    section, name = split_key(key)
    try:
        doc = tomlkit.parse(text)
    except Exception as exc:  # tomlkit raises several unrelated parse error types
        raise ConfigError(f"{where}: not valid TOML: {exc}", resource=where) from None
    if value is None:
        table = doc.get(section)
        if table is not None and name in table:
            del table[name]
    else:
        if section not in doc:
            doc.add(section, tomlkit.table())
        doc[section][name] = value
    new_text = tomlkit.dumps(doc)
    validate_settings(tomlkit.parse(new_text).unwrap(), where=where)
    return new_text


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
