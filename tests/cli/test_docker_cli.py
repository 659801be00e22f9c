"""``runctl docker build|push|build-push`` end to end: a real dockerd and registry behind ECR.

The registry fixture stands in for ECR's registry (``cloud.link_ecr``): repository URIs and the
login endpoint name it, so the CLI's login, tag lookups and pushes really happen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runctl.services.bundles.code import build_code_bundle
from tests.cli.aws_helpers import ok_json, run
from tests.cloud.harness import Cloud
from tests.cloud.images import BaseImages
from tests.cloud.services import DockerDaemon, Registry

DOCKERFILE = """\
FROM {base}
# the project's files, minus .dockerignore and secrets
COPY . /app
RUN echo built > /built.txt
"""


@pytest.fixture
def docker_project(
    cloud_env: Cloud,
    dockerd: DockerDaemon,
    registry: Registry,
    docker_images: BaseImages,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """The working directory as a project with a Dockerfile; the CLI talks to the test dockerd
    and ECR answers name the test registry."""
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    monkeypatch.setenv("XDG_CACHE_HOME", str(workdir.parent / "cache"))
    cloud_env.link_ecr(registry.address)
    (workdir / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    (workdir / ".runctl.toml").write_text('[aws]\nproject_name = "demo"\n')
    (workdir / "Dockerfile").write_text(DOCKERFILE.format(base=docker_images.busybox))
    (workdir / "train.py").write_text("print('training')\n")
    (workdir / "data").mkdir()
    (workdir / "data" / "big.bin").write_bytes(b"x" * 1000)
    (workdir / ".dockerignore").write_text("data/\n*.log\n")
    (workdir / "debug.log").write_text("ignored\n")
    (workdir / ".env").write_text("AWS_SECRET_ACCESS_KEY=do-not-ship\n")
    (workdir / "deploy.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    return workdir


def image_files(dockerd: DockerDaemon, image: str) -> set[str]:
    """Every path under /app in ``image`` (its busybox's find)."""
    out = dockerd.docker("run", "--rm", "--network", "none", image, "find", "/app")
    return {line.strip() for line in out.splitlines() if line.strip()}


def tag_link(registry: Registry, repository: str, tag: str) -> Path:
    """The registry's record of which manifest ``repository:tag`` names (rewritten by a push)."""
    root = registry.daemons.root / "data/docker/registry/v2/repositories"
    return root / repository / "_manifests/tags" / tag / "current/link"


def test_build_push_ships_neither_ignored_files_nor_secrets_and_pushes_once(
    docker_project: Path, cloud_env: Cloud, dockerd: DockerDaemon, registry: Registry
) -> None:
    first = ok_json("docker", "build-push")
    sha = build_code_bundle(docker_project, docker_project.parent / "bundle").sha256
    assert first["tag"] == sha  # the same code gives the same tag
    assert first["uri"] == f"{registry.address}/runctl/demo:{sha}"
    assert first["digest"].startswith("sha256:")
    assert first["reference"] == f"{first['uri']}@{first['digest']}"
    assert first["pushed"] is True and first["layers_pushed"] >= 1
    assert first["repository_created"] is True
    assert sorted(first["build"]["skipped"]["secret"]) == [".env", ".runctl.toml", "deploy.pem"]
    files = image_files(dockerd, first["uri"])
    assert "/app/train.py" in files and "/app/Dockerfile" in files
    assert not {"/app/.env", "/app/deploy.pem", "/app/debug.log", "/app/data"} & files

    ecr = cloud_env.client("ecr")
    repo = ecr.describe_repositories(repositoryNames=["runctl/demo"])["repositories"][0]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    tags = ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    assert {"Key": "runctl:managed", "Value": "true"} in tags
    policy = json.loads(
        ecr.get_lifecycle_policy(repositoryName="runctl/demo")["lifecyclePolicyText"]
    )
    assert policy["rules"][0]["selection"]["countNumber"] == 10

    link = tag_link(registry, "runctl/demo", sha)
    pushed_at = link.stat().st_mtime_ns
    blobs = sorted((registry.daemons.root / "data").rglob("data"))
    second = ok_json("docker", "build-push")
    assert second["pushed"] is False and second["layers_pushed"] == 0
    assert second["repository_created"] is False
    assert second["digest"] == first["digest"] and second["uri"] == first["uri"]
    assert link.stat().st_mtime_ns == pushed_at  # the registry was not written to
    assert sorted((registry.daemons.root / "data").rglob("data")) == blobs


def test_a_changed_file_is_a_new_tag_and_a_new_push(
    docker_project: Path, registry: Registry
) -> None:
    first = ok_json("docker", "build-push")
    (docker_project / "train.py").write_text("print('training, better')\n")
    second = ok_json("docker", "build-push")
    assert second["tag"] != first["tag"]
    assert second["pushed"] is True and second["digest"] != first["digest"]
    assert tag_link(registry, "runctl/demo", second["tag"]).exists()


def test_text_output_is_the_uri_and_build_output_goes_to_stderr(
    docker_project: Path, registry: Registry
) -> None:
    result = run("docker", "build-push", "--tag", "v1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"{registry.address}/runctl/demo:v1"
    assert "RUN echo built" in result.stderr
    assert "not in the build context (secrets" in result.stderr


def test_build_then_push_with_a_tag_and_repository(
    docker_project: Path, registry: Registry, dockerd: DockerDaemon
) -> None:
    built = ok_json("docker", "build", "--tag", "v2", "--repository", "runctl/other")
    assert built["image"] == "runctl/other:v2"
    assert built["context_files"] >= 4
    assert dockerd.docker("images", "-q", "runctl/other:v2").strip()
    pushed = ok_json("docker", "push", "--tag", "v2", "--repository", "runctl/other")
    assert pushed["uri"] == f"{registry.address}/runctl/other:v2"
    assert pushed["pushed"] is True
    both = ok_json("docker", "build", "--push", "--tag", "v2", "--repository", "runctl/other")
    assert both["build"]["image"] == "runctl/other:v2" and both["pushed"] is False


def test_a_failing_run_fails_the_build_naming_its_line(docker_project: Path) -> None:
    (docker_project / "Dockerfile").write_text(
        "FROM runctl-test/busybox:1\n\n# prepare\nRUN echo one \\\n    two\nRUN exit 3\n"
    )
    result = run("docker", "build", "--output", "json")
    assert result.exit_code == 7, result.stderr
    assert "Dockerfile line 6, Step 3/3 : RUN exit 3" in result.stderr
    assert "returned a non-zero code: 3" in result.stderr
    assert json.loads(result.stdout)["error"] == "ImageBuildError"


def test_bad_input_is_refused_before_docker_or_aws(
    cloud_env: Cloud, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    (workdir / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    assert run("docker", "build").exit_code == 6  # no Dockerfile
    (workdir / "Dockerfile").write_text("FROM scratch\n")
    assert run("docker", "build", "--tag", "-bad").exit_code == 2
    assert run("docker", "build", "--repository", "Upper/Case").exit_code == 2
    assert run("docker", "build", "--build-arg", "no-equals").exit_code == 2
    assert run("docker", "build", "--platform", "amd64").exit_code == 2
    assert cloud_env.request_log == []
    down = run("docker", "build", "--tag", "v1")
    assert down.exit_code == 8
    assert "cannot reach the Docker daemon" in down.stderr and "DOCKER_HOST" in down.stderr


def test_push_without_a_local_image_says_how_to_build_it(docker_project: Path) -> None:
    result = run("docker", "push", "--tag", "never-built")
    assert result.exit_code == 6
    assert "runctl docker build" in result.stderr
