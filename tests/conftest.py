"""Test-suite wide plugins: the cloud harness fixtures (``cloud``, ``cloud_env``, ...) and the
tiers.

Every test that needs no emulated account, instance or real server is marked ``fast``:
``python -m pytest -m fast`` runs that tier in seconds (no moto server, no instance, no dockerd),
``python -m pytest`` runs everything.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.cloud.fixtures"]

#: Fixtures that start the emulated account (moto and the instance harness) or a real server.
HEAVY_FIXTURES = frozenset({"cloud_session", "rgw", "dockerd", "registry"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HEAVY_FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.fast)
