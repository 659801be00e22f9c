"""The docker SDK wrapper against the real test dockerd: errors inside build and push streams
become runctl errors, a missing SDK or daemon says what to do, images and registry lookups."""

from __future__ import annotations

import io
import sys
import tarfile

import pytest

from runctl.aws.docker_engine import (
    DockerEngine,
    LayerProgress,
    RegistryAuth,
    registry_error,
)
from runctl.errors import AuthError, ConfigError, ImageBuildError, NotFoundError, WrongStateError
from tests.cloud.images import BaseImages
from tests.cloud.services import DockerDaemon, Registry


def context(dockerfile: str) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@pytest.fixture
def engine(dockerd: DockerDaemon, monkeypatch: pytest.MonkeyPatch) -> DockerEngine:
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    return DockerEngine.connect()


def test_a_build_streams_its_output_and_returns_the_image(
    engine: DockerEngine, docker_images: BaseImages
) -> None:
    lines: list[str] = []
    image_id = engine.build(
        context(f"FROM {docker_images.busybox}\nARG WORD\nRUN echo said $WORD\n"),
        dockerfile="Dockerfile",
        tag="runctl-test/engine:1",
        build_args={"WORD": "hello"},
        on_output=lines.append,
    )
    assert image_id.startswith("sha256:")
    assert engine.image_id("runctl-test/engine:1") == image_id
    assert "said hello\n" in lines
    assert engine.image_id("runctl-test/never:built") is None


@pytest.mark.parametrize(
    ("dockerfile", "words"),
    [
        ("FROM {base}\nRUN exit 3\n", "at Step 2/2 : RUN exit 3: The command '/bin/sh -c exit 3'"),
        ("FROM {base}\nFORM x\n", "dockerfile parse error line 2: unknown instruction: FORM"),
        ("FROM runctl-test/nonexistent:1\n", "at Step 1/1 : FROM runctl-test/nonexistent:1"),
    ],
)
def test_a_failing_build_is_an_image_build_error_naming_the_step(
    engine: DockerEngine, docker_images: BaseImages, dockerfile: str, words: str
) -> None:
    with pytest.raises(ImageBuildError) as caught:
        engine.build(
            context(dockerfile.format(base=docker_images.busybox)),
            dockerfile="Dockerfile",
            tag="runctl-test/failing:1",
        )
    assert words in caught.value.message
    assert caught.value.exit_code == 7


def test_pushes_report_layers_and_the_registry_knows_the_digest(
    engine: DockerEngine, docker_images: BaseImages, registry: Registry
) -> None:
    auth = RegistryAuth("AWS", "token", registry.address)
    engine.login(auth)
    repository = f"{registry.address}/runctl/engine"
    # a layer of its own: the session's registry may already hold the base image's layers
    own = engine.build(
        context(f"FROM {docker_images.busybox}\nRUN echo {repository} > /own\n"),
        dockerfile="Dockerfile",
        tag="runctl-test/own:1",
    )
    engine.tag(own, repository, "v1")
    # the base's layers already in another repository: the registry lends them ("Mounted from")
    engine.tag(docker_images.busybox, f"{registry.address}/runctl/engine-base", "v1")
    engine.push(f"{registry.address}/runctl/engine-base", "v1", auth)
    assert engine.registry_digest(f"{repository}:v1", auth) is None
    events: list[LayerProgress] = []
    digest = engine.push(repository, "v1", auth, events.append)
    assert digest.startswith("sha256:")
    assert engine.registry_digest(f"{repository}:v1", auth) == digest
    assert f"{repository}@{digest}" in engine.repo_digests(f"{repository}:v1")
    assert any(e.uploaded for e in events) and all(e.layer for e in events)
    assert {e.layer for e in events if e.done} == {e.layer for e in events}
    again: list[LayerProgress] = []
    assert engine.push(repository, "v1", auth, again.append) == digest
    assert {e.status for e in again if e.done} == {"Layer already exists"}


def test_registry_refusals_become_errors_with_exit_codes(
    engine: DockerEngine, registry: Registry
) -> None:
    auth = RegistryAuth("AWS", "token", registry.address)
    with pytest.raises(NotFoundError, match="does not exist locally") as missing:
        engine.push(f"{registry.address}/runctl/nothing", "v1", auth)
    assert missing.value.hint is not None and "runctl docker build" in missing.value.hint
    assert isinstance(
        registry_error("denied: requested access to the resource is denied", "r:1"), AuthError
    )
    assert isinstance(registry_error("unauthorized: authentication required", "r:1"), AuthError)
    assert registry_error("dial tcp: connection refused", "r:1").exit_code == 1


def test_no_daemon_or_no_sdk_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(WrongStateError, match="cannot reach the Docker daemon") as down:
        DockerEngine.connect()
    assert down.value.hint is not None and "DOCKER_HOST" in down.value.hint
    monkeypatch.setitem(sys.modules, "docker", None)  # as if the extra were not installed
    with pytest.raises(ConfigError) as missing:
        DockerEngine.connect()
    assert missing.value.hint == 'install the Docker SDK: pip install "runctl[docker]"'
