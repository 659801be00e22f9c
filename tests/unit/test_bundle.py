"""The code bundle: git's ignore semantics, default excludes, secrets, determinism."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from runctl.paths import find_project_root
from runctl.services.bundles import code as bundle_module
from runctl.services.bundles.code import build_code_bundle
from runctl.services.bundles.selection import select_files


def collect_files(root: Path, include_patterns: list[str] | None = None) -> list[str]:
    return select_files(root, include_patterns or ()).files


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_project_root_is_the_nearest_marker(tmp_path: Path) -> None:
    make(
        tmp_path,
        {"outer/pyproject.toml": "", "outer/inner/requirements.txt": "", "outer/inner/a/b.py": ""},
    )

    assert find_project_root(tmp_path / "outer/inner/a") == (tmp_path / "outer/inner").resolve()
    assert find_project_root(tmp_path / "outer") == (tmp_path / "outer").resolve()


def test_gitignore_semantics(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            ".gitignore": "*.log\n!keep.log\nbuild/\n/top-only.txt\ndata/**/*.csv\n",
            "train.py": "",
            "run.log": "",
            "keep.log": "",
            "build/out.bin": "",
            "src/build/nested.bin": "",
            "top-only.txt": "",
            "src/top-only.txt": "",
            "data/a/b/x.csv": "",
            "data/readme.md": "",
            "src/.gitignore": "*.tmp\n!important.tmp\ngenerated/\n",
            "src/a.tmp": "",
            "src/important.tmp": "",
            "src/generated/g.py": "",
            "src/deep/z.tmp": "",
            "other/a.tmp": "",
            "src/sub/.gitignore": "!*.log\n",
            "src/sub/re-included.log": "",
        },
    )

    files = collect_files(tmp_path)

    assert files == [
        ".gitignore",
        "data/readme.md",
        "keep.log",
        "other/a.tmp",
        "src/.gitignore",
        "src/important.tmp",
        "src/sub/.gitignore",
        "src/sub/re-included.log",
        "src/top-only.txt",
        "train.py",
    ]


def test_a_file_in_an_ignored_directory_cannot_be_re_included(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "logs/\n!logs/keep.txt\n", "logs/keep.txt": "", "a.py": ""})

    assert collect_files(tmp_path) == [".gitignore", "a.py"]


def test_matches_git_itself(tmp_path: Path) -> None:
    if subprocess.run(["git", "--version"], capture_output=True, check=False).returncode != 0:
        pytest.skip("git is not installed")
    make(
        tmp_path,
        {
            ".gitignore": "*.pyc\n/dist\n**/tmp/**\n!/dist/keep\ncache*/\n#comment\n\\#hash.txt\n",
            "a.py": "",
            "a.pyc": "",
            "dist/x": "",
            "lib/dist/y": "",
            "x/tmp/y/z.txt": "",
            "cache1/c": "",
            "cachefile": "",
            "#hash.txt": "",
            "docs/.gitignore": "*.md\n!README.md\n",
            "docs/README.md": "",
            "docs/other.md": "",
        },
    )
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    listed = subprocess.run(
        ["git", "-C", str(tmp_path), "ls-files", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    assert collect_files(tmp_path) == sorted(listed)


def test_default_excludes_and_virtualenvs(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "a.py": "",
            ".git/config": "",
            ".venv/lib/x.py": "",
            "venv/lib/x.py": "",
            "env-with-cfg/pyvenv.cfg": "",
            "env-with-cfg/lib/y.py": "",
            "pkg/__pycache__/a.cpython-311.pyc": "",
            "pkg/b.pyc": "",
            ".mypy_cache/x": "",
            ".pytest_cache/x": "",
            ".ruff_cache/x": "",
            "web/node_modules/x.js": "",
            "checkpoints/model.pt": "",
            "nested/checkpoints/model.pt": "",
            ".runctl/jobs/j/status.json": "",
            "pkg/c.py": "",
        },
    )

    assert collect_files(tmp_path) == ["a.py", "pkg/c.py"]


def test_secrets_are_never_shipped_unless_named(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "a.py": "",
            ".env": "AWS_SECRET_ACCESS_KEY=x",
            ".env.local": "",
            "config/.envrc": "",
            "certs/server.pem": "",
            "certs/server.key": "",
            "id_rsa": "",
            "id_rsa.pub": "",
            ".aws/credentials": "",
            ".runctl.toml": "",
            ".gitignore": "!.env\n",
        },
    )

    assert collect_files(tmp_path) == [".gitignore", "a.py"]
    assert collect_files(tmp_path, include_patterns=["*.pem", ".aws/"]) == [
        ".aws/credentials",
        ".gitignore",
        "a.py",
        "certs/server.pem",
    ]


def test_include_pattern_reaches_into_ignored_directories(tmp_path: Path) -> None:
    make(tmp_path, {".gitignore": "data/\n", "data/small.csv": "", "data/big.bin": "", "a.py": ""})

    assert collect_files(tmp_path, ["data/small.csv"]) == [".gitignore", "a.py", "data/small.csv"]


def test_runctlignore_applies_like_gitignore(tmp_path: Path) -> None:
    make(tmp_path, {".runctlignore": "notebooks/\n", "notebooks/n.ipynb": "", "a.py": ""})

    assert collect_files(tmp_path) == [".runctlignore", "a.py"]


@pytest.mark.parametrize(
    "secret",
    [
        ".env",
        ".env.local",
        "server.pem",
        "server.key",
        "client.p12",
        "client.pfx",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "id_ed25519.pub",
        ".ssh/config",
        ".aws/credentials",
        ".netrc",
        ".git-credentials",
        ".pypirc",
        ".npmrc",
        ".docker/config.json",
        "my-service-account.json",
        "service-account.json",
        "credentials.json",
        ".runctl.toml",
    ],
)
@pytest.mark.parametrize("where", ["", "deep/er/"])
def test_the_secret_denylist_applies_at_any_depth(tmp_path: Path, secret: str, where: str) -> None:
    make(tmp_path, {"a.py": "", f"{where}{secret}": "secret", f"{where}keep.json": "{}"})
    assert collect_files(tmp_path) == sorted(["a.py", f"{where}keep.json"])
    assert f"{where}{secret}" in collect_files(tmp_path, [f"{where}{secret}"])


def test_links_inside_are_followed_once_and_links_out_are_skipped_with_a_warning(
    tmp_path: Path,
) -> None:
    project = make(tmp_path / "p", {"real/a.py": "x", "b.py": ""})
    outside = make(tmp_path / "outside", {"secret.txt": "s", "dir/key.txt": "k"})
    (project / "link.py").symlink_to(project / "b.py")
    (project / "linkdir").symlink_to("real")
    (project / "real" / "back").symlink_to("..")  # a loop through the project root
    (project / "out.txt").symlink_to(outside / "secret.txt")
    (project / "outdir").symlink_to(outside / "dir")
    (project / "dangling").symlink_to(project / "nowhere")

    selection = select_files(project)

    assert selection.files == ["b.py", "link.py", "linkdir/a.py", "real/a.py"]
    assert selection.skipped == {
        "broken": ["dangling"],
        "loop": ["linkdir/back", "real/back"],
        "outside": ["out.txt", "outdir"],
    }
    assert selection.warnings == [
        "not in the code bundle (symbolic links that point outside the project): out.txt, outdir",
        "not in the code bundle (symbolic links whose target does not exist): dangling",
        "not in the code bundle (directory links back into a directory they are in): "
        "linkdir/back, real/back",
    ]


def test_a_project_reached_through_a_link_is_still_inside_itself(tmp_path: Path) -> None:
    project = make(tmp_path / "real-project", {"a.py": "", "pkg/b.py": ""})
    (project / "alias").symlink_to(project / "pkg")
    (tmp_path / "via").symlink_to(project)
    assert select_files(tmp_path / "via").files == ["a.py", "alias/b.py", "pkg/b.py"]


def test_a_long_list_of_skipped_links_is_shortened(tmp_path: Path) -> None:
    project = make(tmp_path / "p", {"a.py": ""})
    for i in range(8):
        (project / f"l{i}").symlink_to(tmp_path)
    [warning] = select_files(project).warnings
    assert warning.endswith("l0, l1, l2, l3, l4 and 3 more")


def test_bundle_is_deterministic(tmp_path: Path) -> None:
    project = make(tmp_path / "p", {"a.py": "print(1)\n", "pkg/b.py": "x = 2\n", "run.sh": "echo"})
    (project / "run.sh").chmod(0o755)
    (project / "pkg/b.py").chmod(0o600)

    first = build_code_bundle(project, tmp_path / "cache1")
    for path in project.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    second = build_code_bundle(project, tmp_path / "cache2")

    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.path.name == f"{first.sha256}.tar.gz"
    assert first.files == ["a.py", "pkg/b.py", "run.sh"]
    with tarfile.open(first.path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a.py", "pkg/b.py", "run.sh"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.name: m.mode for m in members} == {"a.py": 0o644, "pkg/b.py": 0o644, "run.sh": 0o755}
    raw = first.path.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip header mtime

    (project / "a.py").write_text("print(2)\n")
    assert build_code_bundle(project, tmp_path / "cache1").sha256 != first.sha256


def test_large_bundle_warns_with_the_largest_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle_module, "WARN_BYTES", 1000)
    project = make(tmp_path / "p", {"small.py": "x", "weights.bin": os.urandom(5000).hex()})

    built = build_code_bundle(project, tmp_path / "cache")

    assert built.largest[0] == ("weights.bin", 10000)
    assert len(built.warnings) == 1
    assert "weights.bin" in built.warnings[0]
