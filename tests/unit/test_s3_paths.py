"""Local side of transfers: aws-cli filters, safe key-to-path mapping, temporary names, walking."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runctl.aws.s3_paths import (
    PathFilter,
    is_temp_name,
    local_path_for,
    parse_filter_args,
    temp_path_for,
    walk_local,
)
from runctl.errors import NotFoundError, UsageError


@pytest.mark.parametrize(
    ("rules", "path", "included"),
    [
        ([], "a/b.txt", True),
        ([("exclude", "*.txt")], "a/b.txt", False),
        ([("exclude", "*.txt")], "a/b.py", True),
        # later filters win, as in aws-cli
        ([("exclude", "*"), ("include", "*.py")], "pkg/mod.py", True),
        ([("exclude", "*"), ("include", "*.py")], "pkg/data.bin", False),
        ([("include", "*.py"), ("exclude", "*")], "pkg/mod.py", False),
        ([("exclude", "logs/*")], "logs/2024/run.log", False),
        ([("exclude", "logs/*")], "src/logs.py", True),
        ([("exclude", "*.TXT")], "a.txt", True),
    ],
)
def test_path_filter_follows_aws_cli_semantics(
    rules: list[tuple[str, str]], path: str, included: bool
) -> None:
    assert PathFilter(rules)(path) is included


def test_path_filter_refuses_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="filter kind"):
        PathFilter([("drop", "*")])


def test_parse_filter_args_keeps_interleaved_order() -> None:
    args = ["src", "--exclude", "*", "--include=*.py", "-r", "--exclude", "tests/*", "--"]
    assert parse_filter_args([*args, "--exclude", "after-dashdash"]) == [
        ("exclude", "*"),
        ("include", "*.py"),
        ("exclude", "tests/*"),
    ]
    with pytest.raises(UsageError):
        parse_filter_args(["--include"])


@pytest.mark.parametrize(
    "relkey", ["", "../etc/passwd", "a/../../b", "./a", "a//b", "a/./b", "dir/", "a\x00b"]
)
def test_local_path_for_refuses_keys_that_escape_or_are_ambiguous(
    relkey: str, tmp_path: Path
) -> None:
    assert local_path_for(tmp_path, relkey) is None


def test_local_path_for_maps_nested_keys(tmp_path: Path) -> None:
    assert local_path_for(tmp_path, "a b/ü/c+d.txt") == tmp_path / "a b" / "ü" / "c+d.txt"


def test_temp_names_are_hidden_siblings_and_recognised(tmp_path: Path) -> None:
    final = tmp_path / "model.pt"
    temp = temp_path_for(final)
    assert temp.parent == final.parent
    assert temp.name.startswith(".model.pt.")
    assert is_temp_name(temp.name)
    assert is_temp_name(temp.name + ".aB12cD34")  # s3transfer's own suffix while writing
    assert not is_temp_name("model.pt")
    assert temp_path_for(final) != temp
    long_name = tmp_path / ("x" * 250)
    assert len(temp_path_for(long_name).name) < 64


def test_walk_local_is_sorted_relative_and_skips_unfinished_downloads(tmp_path: Path) -> None:
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b" / "c" / "d e.bin").write_bytes(b"\0" * 10)
    (tmp_path / "b" / "empty").write_bytes(b"")
    (tmp_path / temp_path_for(tmp_path / "a.txt").name).write_text("partial")
    os.symlink(tmp_path / "missing", tmp_path / "dangling")
    files = list(walk_local(tmp_path))
    assert [f.relpath for f in files] == ["a.txt", "b/empty", "b/c/d e.bin"]
    assert [f.size for f in files] == [1, 0, 10]
    excluded = list(walk_local(tmp_path, PathFilter([("exclude", "b/*")])))
    assert [f.relpath for f in excluded] == ["a.txt"]


def test_walk_local_of_a_missing_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        list(walk_local(tmp_path / "nope"))
