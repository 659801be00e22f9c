"""What a build sends and what a build is: the context (.dockerignore, secrets, links), the
Dockerfile's steps, and the options checked before Docker or AWS is asked."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from runctl.config import Settings
from runctl.errors import NotFoundError, UsageError
from runctl.services.images.build import ImageOptions, instruction_lines, plan_image
from runctl.services.images.context import (
    OUTSIDE_DOCKERFILE,
    select_context,
    skipped_warnings,
    write_context,
)


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def tar_names(context_root: Path, dockerfile: Path) -> tuple[list[str], dict[str, list[str]]]:
    context = select_context(context_root, dockerfile)
    buffer = io.BytesIO()
    write_context(context, buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        return sorted(tar.getnames()), context.skipped


def test_dockerignore_and_the_secret_denylist_both_apply(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {
        "Dockerfile": "FROM scratch\n",
        ".dockerignore": "# data stays out\ndata/\n*.log\n!keep.log\n",
        "train.py": "", "data/x.bin": "", "a.log": "", "keep.log": "",
        ".env": "", "config/.env.prod": "", "deploy.pem": "", ".aws/credentials": "",
        "sub/id_rsa": "", ".runctl.toml": "", "pkg/module.py": "",
    })  # fmt: skip
    names, skipped = tar_names(root, root / "Dockerfile")
    assert names == [
        ".dockerignore", "Dockerfile", "config", "keep.log", "pkg", "pkg/module.py", "sub",
        "train.py",
    ]  # fmt: skip
    assert sorted(skipped["secret"]) == [
        ".aws", ".env", ".runctl.toml", "config/.env.prod", "deploy.pem", "sub/id_rsa",
    ]  # fmt: skip
    assert "not in the build context (secrets" in skipped_warnings(skipped)[0]


SPEC_SECRETS = [
    "id_ed25519", ".ssh/config", ".netrc", ".git-credentials", ".pypirc", ".npmrc",
    ".docker/config.json", "cert.p12", "cert.pfx", "service-account.json", "credentials.json",
]  # fmt: skip


@pytest.mark.parametrize("where", ["", "deep/er/"])
def test_the_build_context_leaves_out_the_whole_secret_denylist(tmp_path: Path, where: str) -> None:
    # The code bundle's denylist, at any depth, wherever runctl packs the project.
    files = {"Dockerfile": "FROM scratch\n", "train.py": ""}
    root = make(tmp_path / "p", {**files, **{where + rel: "secret" for rel in SPEC_SECRETS}})
    names, skipped = tar_names(root, root / "Dockerfile")
    dirs = {"deep", "deep/er", f"{where}.docker"}  # .docker/ itself is no secret, its config is
    assert [n for n in names if n not in dirs] == ["Dockerfile", "train.py"]
    left_out = [where + (".ssh" if rel == ".ssh/config" else rel) for rel in SPEC_SECRETS]
    assert sorted(skipped["secret"]) == sorted(left_out)


def test_links_inside_go_as_links_links_outside_or_broken_stay_out(tmp_path: Path) -> None:
    outside = make(tmp_path / "outside", {"secret.txt": "host file"})
    root = make(tmp_path / "p", {"Dockerfile": "FROM scratch\n", "real.txt": "x", "d/f": "y"})
    (root / "inside.txt").symlink_to("real.txt")
    (root / "inside-dir").symlink_to("d")
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "escape-dir").symlink_to(outside)
    (root / "broken").symlink_to("nowhere")
    context = select_context(root, root / "Dockerfile")
    assert sorted(context.skipped["outside"]) == ["escape-dir", "escape.txt"]
    assert context.skipped["broken"] == ["broken"]
    buffer = io.BytesIO()
    write_context(context, buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        link = tar.getmember("inside.txt")
        assert link.issym() and link.linkname == "real.txt"  # the target is never read
        assert tar.getmember("inside-dir").issym()
        assert "escape.txt" not in tar.getnames() and "secret.txt" not in str(tar.getnames())
        assert all(m.uid == 0 and m.gid == 0 for m in tar.getmembers())


def test_a_dockerfile_outside_the_context_travels_inside_it(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"app.py": ""})
    dockerfile = make(tmp_path / "docker", {"train.Dockerfile": "FROM scratch\n"})
    context = select_context(root, dockerfile / "train.Dockerfile")
    assert context.dockerfile == OUTSIDE_DOCKERFILE
    names, _ = tar_names(root, dockerfile / "train.Dockerfile")
    assert names == [OUTSIDE_DOCKERFILE, "app.py"]


def test_an_ignored_dockerfile_is_still_sent(tmp_path: Path) -> None:
    root = make(tmp_path / "p", {"Dockerfile": "FROM scratch\n", ".dockerignore": "*\n", "x": ""})
    names, _ = tar_names(root, root / "Dockerfile")
    assert names == [".dockerignore", "Dockerfile"]


def test_steps_are_counted_as_the_builder_counts_them() -> None:
    dockerfile = (
        "# syntax comment\n"  # 1
        "ARG BASE=scratch\n"  # 2: step 1
        "\n"
        "FROM ${BASE}\n"  # 4: step 2
        "RUN echo a \\\n"  # 5: step 3
        "    # a comment inside a continuation\n"
        "    && echo b\n"
        "COPY . /app\n"  # 8: step 4
    )
    assert instruction_lines(dockerfile) == [2, 4, 5, 8]


def plan(tmp_path: Path, **options: object) -> object:
    settings = Settings.model_validate({"aws": {"project_name": "Demo"}})
    return plan_image(
        ImageOptions(**options),  # type: ignore[arg-type]
        settings,
        tmp_path,
        code_tag=lambda project: "c0de",
    )


def test_plans_default_to_the_project_and_the_code_tag(tmp_path: Path) -> None:
    make(tmp_path, {"pyproject.toml": "", "Dockerfile": "FROM scratch\n"})
    found = plan(tmp_path, build_args=["V=1", "EMPTY="])
    assert found.repository == "runctl/demo"  # type: ignore[attr-defined]
    assert found.tag == "c0de" and found.image == "runctl/demo:c0de"  # type: ignore[attr-defined]
    assert found.build_args == {"V": "1", "EMPTY": ""}  # type: ignore[attr-defined]
    assert found.dockerfile == tmp_path / "Dockerfile"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"tag": "-x"}, UsageError, "tag"),
        ({"repository": "Team/X"}, UsageError, "repository"),
        ({"build_args": ["1X=2"]}, UsageError, "--build-arg"),
        ({"platform": "linux"}, UsageError, "--platform"),
        ({"dockerfile": "missing.Dockerfile"}, NotFoundError, "no Dockerfile"),
        ({"context": "nowhere"}, NotFoundError, "not a directory"),
    ],
)
def test_bad_options_are_refused_with_what_to_do(
    tmp_path: Path, options: dict[str, object], error: type[Exception], words: str
) -> None:
    make(tmp_path, {"pyproject.toml": "", "Dockerfile": "FROM scratch\n"})
    with pytest.raises(error, match=words):
        plan(tmp_path, **options)
