"""The S3 engine is shipped to instances with only boto3 and Python >= 3.9: keep it that way.

Static checks over ``runctl/aws/s3*.py`` and the runctl modules they import: what they may
import, and no syntax or run-time constructs newer than Python 3.9.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import runctl

SRC = Path(runctl.__file__).parent
ENGINE = sorted((SRC / "aws").glob("s3*.py"))
ALLOWED_RUNCTL = {"runctl.errors", "runctl.aws.errors", "runctl.aws"}
ALLOWED_THIRD_PARTY = {"boto3", "botocore", "s3transfer"}
TYPE_ONLY = {"mypy_boto3_s3"}
MODULES = [*ENGINE, SRC / "errors.py", SRC / "aws" / "errors.py"]


def imported(tree: ast.Module) -> list[tuple[str, bool]]:
    """(module, only under TYPE_CHECKING) for every import in the module."""
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in type_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in type_only))
    return found


def test_the_engine_modules_exist() -> None:
    assert {p.name for p in ENGINE} >= {"s3.py", "s3_transfer.py", "s3_sync.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_only_what_an_instance_has(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for module, type_only in imported(tree):
        top = module.split(".")[0]
        if top == "runctl":
            assert module in ALLOWED_RUNCTL or module.startswith("runctl.aws.s3"), module
        elif top in TYPE_ONLY:
            assert type_only, f"{module} may be imported only under TYPE_CHECKING"
        else:
            assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, module


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_runs_on_python_3_9(path: Path) -> None:
    source = path.read_text()
    tree = ast.parse(source, feature_version=(3, 9))
    assert "from __future__ import annotations" in source
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("isinstance", "issubclass") and len(node.args) == 2:
                second = node.args[1]
                assert not (isinstance(second, ast.BinOp) and isinstance(second.op, ast.BitOr)), (
                    f"{path.name}:{node.lineno}: isinstance(x, A | B) needs Python 3.10"
                )
            if node.func.id == "zip":
                assert not any(k.arg == "strict" for k in node.keywords), "zip(strict=) is 3.10"
            if node.func.id == "dataclass":
                assert not any(k.arg in ("slots", "kw_only") for k in node.keywords)
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.BinOp):
            assert not isinstance(node.value.op, ast.BitOr), (
                f"{path.name}:{node.lineno}: a module-level `A | B` alias needs Python 3.10"
            )
