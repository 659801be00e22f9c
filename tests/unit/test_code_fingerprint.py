"""The code bundle's sha256 from its fingerprint: packed once, again only when a file changed."""

from __future__ import annotations

import os
from pathlib import Path

from runctl.services.bundles.code import build_code_bundle
from runctl.services.bundles.fingerprint import FINGERPRINTS, cached_code_sha


def project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\n")
    (root / "train.py").write_text("print(1)\n")
    (root / "pkg" / "model.py").write_text("W = 1\n")
    return root


def bundles(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.glob("*.tar.gz"))


def test_unchanged_code_is_not_packed_again_and_a_change_is_seen(tmp_path: Path) -> None:
    root, cache = project(tmp_path / "p"), tmp_path / "cache"
    first = cached_code_sha(root, cache)
    assert first == build_code_bundle(root, tmp_path / "elsewhere").sha256
    packed = (cache / f"{first}.tar.gz").stat().st_mtime_ns
    assert cached_code_sha(root, cache) == first
    assert (cache / f"{first}.tar.gz").stat().st_mtime_ns == packed  # not packed again

    (root / "pkg" / "model.py").write_text("W = 2\n")  # same size, new content and time
    second = cached_code_sha(root, cache)
    assert second != first
    assert second == build_code_bundle(root, tmp_path / "elsewhere").sha256

    (root / "train.py").chmod(0o755)  # the execute bit is in the archive
    assert cached_code_sha(root, cache) not in (first, second)


def test_a_touched_file_costs_a_pack_but_gives_the_same_sha(tmp_path: Path) -> None:
    root, cache = project(tmp_path / "p"), tmp_path / "cache"
    first = cached_code_sha(root, cache)
    stat = (root / "train.py").stat()
    os.utime(root / "train.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cached_code_sha(root, cache) == first
    assert len(list((cache / FINGERPRINTS).iterdir())) == 2


def test_a_bundle_gone_from_the_cache_is_packed_again(tmp_path: Path) -> None:
    root, cache = project(tmp_path / "p"), tmp_path / "cache"
    first = cached_code_sha(root, cache)
    (cache / f"{first}.tar.gz").unlink()
    assert cached_code_sha(root, cache) == first
    assert bundles(cache) == [f"{first}.tar.gz"]
