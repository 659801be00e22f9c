"""Local side of transfers: aws-cli filters, safe key-to-path mapping, temporary names, walking."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runctl.aws.s3_paths import (
    PathFilter,
    is_temp_name,
    local_path_for,
    normalize_relkey,
    parse_filter_args,
    place_keys,
    set_mtime,
    stale_temp_paths,
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
    "relkey", ["", "../etc/passwd", "a/../../b", "a/..", "dir/", "a\x00b", "/", ".", "./"]
)
def test_local_path_for_refuses_keys_that_escape_or_name_no_file(
    relkey: str, tmp_path: Path
) -> None:
    assert local_path_for(tmp_path, relkey) is None


@pytest.mark.parametrize(
    ("relkey", "lands"),
    [
        ("x//double.txt", "x/double.txt"),
        ("./dot.txt", "dot.txt"),
        ("//lead.txt", "lead.txt"),
        ("a/./b/.//c", "a/b/c"),
    ],
)
def test_keys_with_empty_or_dot_segments_land_where_the_aws_cli_puts_them(
    relkey: str, lands: str, tmp_path: Path
) -> None:
    assert normalize_relkey(relkey) == lands
    assert local_path_for(tmp_path, relkey) == tmp_path.joinpath(*lands.split("/"))


def test_place_keys_skips_duplicates_and_reports_file_directory_clashes() -> None:
    placement = place_keys(
        ["x//double.txt", "x/double.txt", "./only.txt", "a/b", "a/b/c.txt", "../up", "ok"],
        name=lambda relkey: f"s3://b/p/{relkey}",
    )
    assert placement.paths == {
        "./only.txt": "only.txt",
        "a/b/c.txt": "a/b/c.txt",
        "ok": "ok",
        "x/double.txt": "x/double.txt",
    }
    # The key already in canonical form wins, whatever the listing order.
    assert placement.skipped == {
        "../up": "its key cannot be a local path",
        "x//double.txt": "it lands on the same path as s3://b/p/x/double.txt",
    }
    assert placement.conflicts == {
        "a/b": "a/b would be both a file and the directory of s3://b/p/a/b/c.txt"
    }
    assert place_keys(["//z", "/z"]).skipped == {"/z": "it lands on the same path as //z"}


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


@pytest.mark.parametrize("name", ["model.pt", "ü space.bin", "y" * 250])
def test_stale_temp_paths_finds_what_a_killed_download_left_and_nothing_else(
    name: str, tmp_path: Path
) -> None:
    final = tmp_path / name
    ours = temp_path_for(final)
    theirs = Path(str(temp_path_for(final)) + ".aB12cD34")  # s3transfer's file inside ours
    other = temp_path_for(tmp_path / "other.pt")
    for path in (ours, theirs, other, final):
        path.write_bytes(b"x")
    (tmp_path / f".{name[:200]}.notes").write_bytes(b"a user's file")
    assert sorted(stale_temp_paths(final)) == sorted([ours, theirs])
    assert stale_temp_paths(tmp_path / "absent" / name) == []


def test_set_mtime_is_exact_to_the_nanosecond(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    # 1714564800.449 as a float is 1714564800.4489998817...: a float utime loses the .449.
    moment = datetime(2024, 5, 1, 12, 0, 0, 449000, tzinfo=UTC)
    set_mtime(path, moment)
    assert path.stat().st_mtime_ns == 1714564800_449000000
    set_mtime(path, datetime(2024, 5, 1, 12, 0, 0, 449000))  # naive: taken as UTC
    assert path.stat().st_mtime_ns == 1714564800_449000000


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
