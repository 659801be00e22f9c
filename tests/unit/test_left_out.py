"""What the code bundle left out: counted, the largest named, and the script's references to it."""

from __future__ import annotations

from pathlib import Path

from runctl.services.bundles.code import build_code_bundle
from runctl.services.bundles.left_out import left_out, script_references

TRAIN = """
import os
data_dir = os.path.join("data", "shakespeare")
out_dir = "out"
config = "config/small.py"
print(f"reading {data_dir}")
"""

WRAPPER = """#!/bin/bash
set -e
python3 train.py --data_dir=data/shakespeare --out_dir "out" --config config/small.py
"""


def _project(root: Path) -> Path:
    files = {
        ".gitignore": "data/**/*.bin\nout/\n*.log\n",
        "train.py": TRAIN,
        "run.sh": WRAPPER,
        "config/small.py": "n_layer = 2\n",
        "data/shakespeare/prepare.py": "print('prepare')\n",
        "data/shakespeare/train.bin": "x" * 5000,
        "data/shakespeare/val.bin": "x" * 100,
        "out/ckpt.pt": "x" * 2000,
        "run.log": "x" * 10,
        ".env": "SECRET=1",
        ".venv/pyvenv.cfg": "home = /usr/bin\n",
        ".venv/lib/big.so": "x" * 9000,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_what_the_ignore_files_left_out_is_counted_and_the_largest_named(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    bundle = build_code_bundle(root, tmp_path / "cache")
    found = left_out(root, bundle.ignored, bundle.files)

    # Secrets, virtualenvs and caches are left out by design: not counted.
    assert found.files == 4
    assert found.bytes == 5000 + 100 + 2000 + 10
    assert found.largest == [
        ("data/shakespeare/train.bin", 5000),
        ("out/ckpt.pt", 2000),
        ("data/shakespeare/val.bin", 100),
    ]
    text = found.describe()
    assert text.startswith("left out by .gitignore/.runctlignore: 4 files, 7.1 kB")
    assert "data/shakespeare/train.bin (5.0 kB)" in text


def test_files_taken_back_with_include_pattern_are_not_counted(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    bundle = build_code_bundle(
        root, tmp_path / "cache", include_patterns=["data/shakespeare/val.bin"]
    )
    found = left_out(root, bundle.ignored, bundle.files)
    assert "data/shakespeare/val.bin" in bundle.files
    assert found.files == 3


def test_a_python_script_naming_a_left_out_path_is_warned_about(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    bundle = build_code_bundle(root, tmp_path / "cache")
    found = left_out(root, bundle.ignored, bundle.files)

    references = script_references(root, "train.py", found)

    assert sorted(r.literal for r in references) == ["data", "out"]
    by_literal = {r.literal: r for r in references}
    assert {p.path for p in by_literal["data"].left_out} == {
        "data/shakespeare/train.bin",
        "data/shakespeare/val.bin",
    }
    message = by_literal["out"].describe()
    assert "train.py refers to 'out'" in message
    assert "--data-s3" in message and "--include-pattern 'out'" in message


def test_a_shell_wrappers_words_are_scanned_too(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    bundle = build_code_bundle(root, tmp_path / "cache")
    found = left_out(root, bundle.ignored, bundle.files)

    literals = sorted(r.literal for r in script_references(root, "run.sh", found))

    assert literals == ["data/shakespeare", "out"]


def test_nothing_left_out_means_nothing_to_say(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "train.py").write_text("open('data/x.bin')\n")
    bundle = build_code_bundle(root, tmp_path / "cache")
    found = left_out(root, bundle.ignored, bundle.files)
    assert found.paths == []
    assert script_references(root, "train.py", found) == []
