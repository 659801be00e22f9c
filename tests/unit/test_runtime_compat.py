"""What the runtime bundle ships runs on the instance: Python 3.9 syntax and run-time features
only, and no import from outside the bundle."""

from __future__ import annotations

import ast
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from runctl.services.bundles.runtime import build_runtime_bundle, runctl_files

# Names that do not exist before Python 3.10/3.11 (imported or used as attributes).
NEWER_NAMES = {
    ("datetime", "UTC"),
    ("typing", "TypeAlias"),
    ("typing", "ParamSpec"),
    ("typing", "Concatenate"),
    ("typing", "TypeGuard"),
    ("typing", "Self"),
    ("typing", "Never"),
    ("typing", "LiteralString"),
    ("typing", "assert_never"),
    ("typing", "reveal_type"),
    ("itertools", "pairwise"),
    ("enum", "StrEnum"),
}
NEWER_MODULES = {"tomllib"}


def _problems(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            second = node.args[1] if len(node.args) == 2 else None
            union = isinstance(second, ast.BinOp) and isinstance(second.op, ast.BitOr)
            if name in ("isinstance", "issubclass") and union:
                found.append(f"line {node.lineno}: {name}() with X | Y (3.10+)")
            if name == "zip" and any(k.arg == "strict" for k in node.keywords):
                found.append(f"line {node.lineno}: zip(strict=) (3.10+)")
            if name in ("dataclass", "field") and any(
                k.arg in ("slots", "kw_only") for k in node.keywords
            ):
                found.append(f"line {node.lineno}: {name}(slots/kw_only) (3.10+)")
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (node.module, alias.name) in NEWER_NAMES:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
            if node.module.split(".")[0] in NEWER_MODULES:
                found.append(f"line {node.lineno}: import {node.module}")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in NEWER_MODULES:
                    found.append(f"line {node.lineno}: import {alias.name}")
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in NEWER_NAMES
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("name,path", runctl_files(), ids=[name for name, _ in runctl_files()])
def test_shipped_module_is_python39(name: str, path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=name, feature_version=(3, 9))
    assert source.startswith('"""'), f"{name} has no module docstring"
    annotated = any(
        isinstance(node, ast.AnnAssign)
        or (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns)
        for node in ast.walk(tree)
    )
    if annotated:
        lazy = "from __future__ import annotations" in source
        assert lazy, f"{name}: annotations must be lazy (3.10+ syntax in them)"
    assert _problems(tree) == [], f"{name} uses features newer than Python 3.9"


def test_shipped_modules_include_the_runner_and_the_s3_engine() -> None:
    names = {name for name, _ in runctl_files()}
    assert {
        "runctl/__init__.py",
        "runctl/errors.py",
        "runctl/aws/errors.py",
        "runctl/aws/s3.py",
        "runctl/remote/runner.py",
        "runctl/remote/control.py",
    } <= names
    assert not any(name.startswith(("runctl/cli/", "runctl/services/")) for name in names)


def test_runtime_imports_nothing_from_outside_the_bundle(tmp_path: Path) -> None:
    """Extract the bundle and import the runner with a python3 that has no boto3 at all."""
    target = sys.version_info[:2]  # local packages, no download: this is about imports
    bundle = build_runtime_bundle(tmp_path / "cache", target=target)
    extracted = tmp_path / "runtime"
    with tarfile.open(bundle.path) as tar:
        tar.extractall(extracted, filter="data")
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    code = (
        f"import sys; sys.path.insert(0, {str(extracted)!r})\n"
        "import runctl.remote.runner, runctl.remote.control, runctl.job.s3store\n"
        "import runctl.aws.s3_sync, runctl.aws.s3_copy, runctl.aws.session\n"
        "import boto3\n"
        "for name in ('s3', 'ec2', 'sts'):\n"
        "    boto3.client(name, region_name='us-east-1')\n"
        "outside = sorted({m.__file__ for m in list(sys.modules.values())\n"
        "    if getattr(m, '__file__', None) and m.__name__.split('.')[0] in\n"
        "    ('runctl', 'boto3', 'botocore', 's3transfer', 'urllib3', 'dateutil', 'jmespath')\n"
        f"    and not m.__file__.startswith({str(extracted)!r})}})\n"
        "assert not outside, outside\n"
        "for banned in ('typer', 'rich', 'pydantic', 'runctl.config', 'pathspec'):\n"
        "    assert banned not in sys.modules, banned\n"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python3"), "-I", "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_checker_catches_newer_features() -> None:
    source = (
        "from datetime import UTC\n"
        "import tomllib\n"
        "isinstance(x, int | str)\n"
        "zip(a, b, strict=True)\n"
        "dataclass(slots=True)\n"
        "datetime.UTC\n"
    )
    assert len(_problems(ast.parse(source))) == 6
    with pytest.raises(SyntaxError):
        ast.parse("match x:\n    case 1:\n        pass\n", feature_version=(3, 9))
