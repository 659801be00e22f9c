"""End-to-end AWS test harness for runctl (moto plus the half of AWS that moto lacks).

The harness API -- fixtures, the ``Cloud`` object, sandboxes, SSM, IMDS, faults -- is
documented in :mod:`tests.cloud.harness`; the pytest fixtures live in
:mod:`tests.cloud.fixtures` (a plugin module: ``pytest_plugins = ["tests.cloud.fixtures"]``).
Real-server fixtures (Ceph RGW, dockerd, a Docker registry) are in
:mod:`tests.cloud.services`; ``.ci/services.sh`` installs what they need.
"""
