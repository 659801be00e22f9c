"""pytest plugin with the cloud harness fixtures (``pytest_plugins = ["tests.cloud.fixtures"]``).

``cloud_session`` (session): the started :class:`tests.cloud.harness.Cloud`.
``cloud`` (function): the same object, reset for the test and cleaned up after it.
``cloud_env`` (function): ``cloud`` with ``cloud.env`` put into ``os.environ`` (and other
``AWS_*`` variables removed) via ``monkeypatch``, for in-process ``CliRunner`` use.
``rgw``, ``dockerd``, ``registry`` (session): real servers, skipped with the reason when
their packages are missing; see :mod:`tests.cloud.services`.
``docker_images`` (session): the test base images (busybox, python) built ``FROM scratch`` in
``dockerd``; see :mod:`tests.cloud.images`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.cloud.harness import Cloud
from tests.cloud.images import BaseImages, build_base_images
from tests.cloud.services import (
    DockerDaemon,
    Registry,
    RgwServer,
    start_dockerd,
    start_registry,
    start_rgw,
)


@pytest.fixture(scope="session")
def cloud_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    harness = Cloud(tmp_path_factory.mktemp("cloud"))
    harness.start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture
def cloud(cloud_session: Cloud) -> Iterator[Cloud]:
    cloud_session.begin_test()
    try:
        yield cloud_session
    finally:
        cloud_session.end_test()


@pytest.fixture
def cloud_env(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    for name in list(os.environ):
        if name.startswith("AWS_") and name not in cloud.env:
            monkeypatch.delenv(name, raising=False)
    for name, value in cloud.env.items():
        monkeypatch.setenv(name, value)
    return cloud


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RgwServer]:
    server = start_rgw(tmp_path_factory.mktemp("rgw"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    daemon = start_dockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    server = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def docker_images(dockerd: DockerDaemon, tmp_path_factory: pytest.TempPathFactory) -> BaseImages:
    return build_base_images(dockerd, tmp_path_factory.mktemp("images"))
