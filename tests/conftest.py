"""Test-suite wide plugins: the cloud harness fixtures (``cloud``, ``cloud_env``, ...)."""

pytest_plugins = ["tests.cloud.fixtures"]
