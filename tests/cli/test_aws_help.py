"""``aws`` and ``resources`` help stays light: boto3 is imported only when a command runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_startup import HEAVY, imported_modules


@pytest.mark.parametrize(
    "args", [["aws", "--help"], ["aws", "create", "--help"], ["resources", "list", "--help"]]
)
def test_help_imports_no_boto3(args: list[str], tmp_path: Path) -> None:
    names = imported_modules(args, tmp_path)
    assert sorted(n for n in names if n.split(".")[0] in HEAVY) == []
