"""The runctl cloud test harness: moto plus what happens *on* an instance.

moto answers the EC2/S3/IAM/SSM/ECR/STS APIs, but nothing runs on its instances: its SSM
RunCommand runs nothing and always says Success, fans out to every instance, and lacks
DescribeInstanceInformation, ListCommandInvocations and CancelCommand; its IMDS has no
spot notices. This harness supplies that half. Tests use it through the pytest fixtures
of :mod:`tests.cloud.fixtures` (enable with ``pytest_plugins = ["tests.cloud.fixtures"]``).

Fixtures
========
``cloud`` (function scope)
    The :class:`Cloud` below, reset for this test: moto state wiped and re-seeded, every
    sandbox process killed, sandboxes, faults, the request log and the tunables reset,
    a fresh ``HOME``. The server itself is session-scoped (``cloud_session``).
``cloud_env`` (function scope)
    ``cloud``, plus ``cloud.env`` applied to ``os.environ`` with ``monkeypatch`` (and
    other ``AWS_*`` variables removed) for in-process ``CliRunner`` use.
``rgw``, ``dockerd``, ``registry`` (session scope)
    Real Ceph RGW S3, Docker daemon and Docker registry; see :mod:`tests.cloud.services`.
    Each skips with the reason when its packages are missing (``.ci/services.sh``).

The ``Cloud`` object
====================
Endpoint and environment
    ``endpoint`` (``http://127.0.0.1:<port>``), ``region`` (``us-east-1``), ``account_id``
    (``123456789012``). ``env``: variables for running the CLI -- ``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` = ``testing``,
    ``AWS_DEFAULT_REGION``/``AWS_REGION``, ``AWS_CONFIG_FILE`` and
    ``AWS_SHARED_CREDENTIALS_FILE`` pointing at files that do not exist,
    ``AWS_EC2_METADATA_DISABLED=true`` (the CLI machine is no instance), and ``HOME``
    (``cloud.home``, a fresh directory per test). ``subprocess_env()`` is ``os.environ``
    minus every other ``AWS_*`` variable, plus ``env``: use it for
    ``subprocess.run(["runctl", ...], env=cloud.subprocess_env())``.
Clients and backends
    ``client(service, region=None, config=None, **kw)``: a boto3 client on the endpoint
    (a private botocore session: no config or credential files are read; ``kw`` may
    override the ``testing`` keys). Its calls are logged and subject to faults; the
    harness's own helpers use unlogged, fault-free internal clients. NB botocore's
    ``retries={"max_attempts": n}`` counts *retries*; use ``total_max_attempts`` for
    attempts. ``ec2_backend()``, ``s3_backend()``, ``iam_backend()``,
    ``ssm_backend()``, ``sts_backend()``: moto's backend objects, for direct reads/writes.
Seeded images
    ``amis``: AMI id by short name. Newest of each family: ``dl-ubuntu`` (Deep Learning
    OSS Nvidia Driver AMI GPU PyTorch 2.5.1 (Ubuntu 22.04) 20250101), ``dl-ubuntu-arm64``,
    ``dl-al2023``, ``al2023`` (al2023-ami-2023.6.20250115.0-kernel-6.1-x86_64),
    ``al2023-arm64``, ``ubuntu2204``, ``ubuntu2404``; dated names for all images (e.g.
    ``dl-pytorch25-ubuntu2204-20241105``, ``al2023-20241212``, ``dl-pytorch24-...``).
    DescribeImages returns only these (moto's default catalogue is off). The AL2023
    public SSM parameters, DLAMI and Canonical parameters name seeded images (see
    :mod:`tests.cloud.seed`). ``seed_region(name)`` seeds another region.
Instances
    ``create_instance_profile(name="runctl-harness", ssm_policy=True)`` -> ``Profile``
    (``name``, ``arn``, ``role_name``, ``role_arn``): role trusted by EC2, with
    ``AmazonSSMManagedInstanceCore`` attached unless ``ssm_policy=False``, and the access
    ``runctl aws setup`` gives its role (:data:`RUNCTL_ROLE_DOCUMENT`: objects under
    ``runctl/`` of any bucket, stop/terminate of ``runctl:managed`` instances); idempotent.
    ``allow_s3(uri, read_only=False, profile=...)`` adds access to another S3 prefix;
    ``role_client(id, service)``: a client with the instance role's IMDS credentials.
    ``put_role_policy(name, document, profile=...)``: an inline policy on the profile's role
    (e.g. what ``runctl aws setup`` adds beyond :data:`RUNCTL_ROLE_DOCUMENT`). An instance may
    launch instances with its role credentials (RunInstances is authorized as EC2 does, see
    :mod:`tests.cloud.iam_authz`); they boot and run their user data like any other.
    ``run_instance(image="al2023", instance_type="t3.micro", spot=False, user_data=None,
    profile="runctl-harness", az=None, tags=None, **run_instances_kwargs)`` -> instance
    id (``profile=None``: no instance profile, so not SSM-managed).
    ``sandbox(id)`` -> Path of the instance's disk (``HOME``, ``RUNCTL_REMOTE_ROOT`` and
    ``RUNCTL_SYSTEM_ROOT`` of its processes); ``install_executable(id, name, text)`` -> Path:
    an executable in the instance's ``usr/local/bin``, first on its PATH; ``imds_endpoint(id)``;
    ``processes(id)`` -> live pids; ``state(id)``; ``wait_state(id, state)``;
    ``wait_boot(id)`` (user data finished);
    ``run_command(id, commands, execution_timeout=None, working_directory=None,
    timeout=60)`` -> the GetCommandInvocation dict once finished (harness-internal, not
    logged, no InvocationDoesNotExist wait); ``wait_for(predicate, timeout)``;
    ``reconcile()`` (sync sandboxes with moto's states after changing moto directly);
    ``volume_dir(vol_id)`` (see "EBS volumes").
What runs on an instance
    Processes run on the host in the sandbox directory (no chroot/namespace) with:
    ``HOME``/``RUNCTL_REMOTE_ROOT``/``RUNCTL_SYSTEM_ROOT`` = sandbox (runctl's scripts read
    ``/dev``, ``/etc/fstab`` and mount points under ``RUNCTL_SYSTEM_ROOT``, and look for a Deep
    Learning AMI's framework Python there, so an "image" provides one at ``sandbox/opt/pytorch``),
    ``TMPDIR`` = sandbox/tmp,
    ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` = the instance's own IMDS (with
    ``AWS_METADATA_SERVICE_TIMEOUT`` = 60 s: it is a thread of the test process, slow when the
    machine is loaded, and botocore's 1 s would lose the role's credentials),
    ``AWS_ENDPOINT_URL`` = moto, ``AWS_DEFAULT_REGION``/``AWS_REGION``, and a ``PATH`` that
    starts with the sandbox's ``usr/local/bin`` (as on a real AMI; made at boot, empty), then
    a bare venv ``python3``/``python`` (no boto3, no pip), and has no ``aws`` CLI. There are
    **no credentials in the environment**: the instance role's credentials come from IMDS
    (``iam/security-credentials/<role>``), as botocore's default chain finds them, and
    requests signed with them are held to the role's policies. What runctl needs on an
    instance, runctl must bring. ``shutdown``/``poweroff``/``halt`` stop or terminate the
    instance (per its InstanceInitiatedShutdownBehavior); ``reboot`` reboots it. Every
    process carries ``RUNCTL_HARNESS_INSTANCE=<id>`` (and a session marker) and is killed
    when the instance stops, terminates or reboots, even if it daemonised.
Lifecycle
    RunInstances -> the instance boots (sandbox, IMDS, user data in the background at
    first boot, output in ``var/log/cloud-init-output.log``, then
    ``var/lib/cloud/instance/boot-finished``). Stop: processes killed, disk kept.
    Start: boots again without user data. Terminate: processes killed, disk deleted.
SSM
    See :mod:`tests.cloud.ssm` for the full semantics (statuses, exit codes, output
    limits, timeouts, cancel, InvocationDoesNotExist race, managed instances).
EBS volumes
    See :mod:`tests.cloud.volumes`. Each volume moto knows is a directory,
    ``volume_dir(vol_id)``, whose ``data/`` is its filesystem's content (``fs.json`` once
    formatted; blank before). It outlives instances unless moto deletes it with one
    (DeleteOnTermination); CreateSnapshot copies it at that moment (``volumes.snapshot_dir``),
    CreateVolume from a snapshot starts as that copy. Attached to a running instance (not as
    its root), it shows in the sandbox as ``dev/nvme<N>n1`` (attach order) with a
    ``dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<hex>`` link, and the instance's
    ``blkid``, ``mkfs.ext4``/``mkfs.xfs``, ``mount``, ``umount`` (busy while a process holds a
    file there) and ``findmnt`` act on it (:mod:`tests.cloud.ebs_tools`): a mount point becomes
    a view of ``data/``. Stop drops mounts; start mounts what ``etc/fstab`` lists by UUID.
    AttachVolume is refused as EC2 refuses it (see "What AWS refuses").
Spot and IMDS
    ``interrupt(id, notice_seconds=120, action="terminate")``: IMDS
    ``spot/instance-action`` gives ``{"action": "terminate", "time": "...Z"}``; after
    the notice the instance is terminated (or stopped for ``stop``/``hibernate``) with
    state reason ``Server.SpotInstanceTermination`` and its processes killed
    (``notice_seconds=0``: at once, synchronously). Spot instances only.
    ``rebalance(id)``: ``events/recommendations/rebalance`` gives ``{"noticeTime": ...}``.
    IMDS details: :mod:`tests.cloud.imds`.
    ``set_spot_price_history(type, zone, [(when, usd), ...])``: a real price history for
    DescribeSpotPriceHistory (StartTime/EndTime, pages, newest first), where moto makes one up.
    ``set_service_quota(service, code, value, region=None)``: a Service Quotas value (EC2's
    vCPU quotas), which moto does not know (:mod:`tests.cloud.quotas`).
Faults (each HTTP request counts once; botocore retries are separate requests)
    ``throttle(operation, times, service=None)``: the next ``times`` calls fail with
    ``RequestLimitExceeded`` (EC2, 503), ``Throttling`` (IAM/STS query, 400),
    ``ThrottlingException`` (JSON protocols such as SSM/ECR, 400) or ``SlowDown`` (S3, 503).
    ``insufficient_capacity(azs=None, spot_only=True, instance_types=None, times=None,
    after=0)``: RunInstances in those AZs (None: all) fails with ``InsufficientInstanceCapacity``
    (HTTP 500, so botocore retries it: 5 attempts in legacy mode) until cleared or
    ``times`` is used up; with ``after=k`` the first ``k`` matching launches succeed (a
    zone with room for ``k`` instances). The AZ is ``Placement.AvailabilityZone``, else the subnet's
    (``SubnetId`` or ``NetworkInterface.1.SubnetId``), else the launch template's, else
    moto's default ``<region>a``; spot means ``InstanceMarketOptions.MarketType=spot``.
    ``cut_s3_upload(key_prefix, times=1, after_bytes=65536, bucket=None)``: the next
    ``times`` PutObject/UploadPart requests for keys under the prefix read
    ``after_bytes`` of the body and then lose the connection. botocore retries a dropped
    connection, so ``times=1`` is absorbed by a default client (the log then shows two
    PUTs); ``times`` >= max attempts makes the upload fail.
    ``hold_s3_download(key_prefix, after_bytes=1 MiB, bucket=None)`` -> ``S3Hold``: every
    GetObject under the prefix sends ``after_bytes`` of its body and blocks; the test waits
    on ``hold.reached`` (a download is now certainly in progress and cannot complete), acts,
    then ``hold.release()`` drops the held connections (later GetObjects are dropped after
    ``after_bytes`` too). ``clear_faults()`` removes every fault and releases holds.
ECR and Docker
    ``link_ecr(registry.address)``: ECR repository URIs and GetAuthorizationToken's
    ``proxyEndpoint`` name the ``registry`` fixture's real registry, so a CLI's
    ``docker login``/``push`` (against the ``dockerd`` fixture) really happen.
    ``link_docker(dockerd.host)``: instance processes get ``DOCKER_HOST`` naming that daemon
    (the sandboxes run on this host, and the ``docker`` CLI is on their ``PATH``), so a
    runner's ``docker login``/``pull``/``run`` really happen, with bind mounts of sandbox paths.
    Containers are the daemon's children, not the instance's, so no marker reaches them: the
    containers labelled ``runctl.instance=<id>`` (runctl's runner labels its job containers so)
    are removed with ``docker rm -f`` when that instance stops, terminates or reboots, and at
    every reset, as they would die with a real machine. The default role may log in to ECR
    and pull from repositories ``runctl/*``, as ``runctl aws setup`` grants.
What AWS refuses (on for every test; see :mod:`tests.cloud.strict`)
    SigV2 S3 requests; presigned URLs signed for another region than the bucket's; requests
    with an instance role's credentials that its policies do not allow (AccessDenied /
    UnauthorizedOperation); StopInstances of a one-time spot instance
    (UnsupportedOperation); AttachVolume of an attached volume, across zones, to an instance
    neither running nor stopped, or on a used device name; user data over 16 KB; an instance
    profile created or given its role less than ``profile_propagation_delay`` seconds ago
    (InvalidParameterValue, in EC2's wordings); SendCommand parameters over SSM's 64 KB
    document limit.
Request log
    ``request_log``: list of ``ApiCall(service, operation, key)`` for every non-internal
    request (faulted ones too); ``key`` is the S3 object key (else None). ``calls(op,
    service=None)`` filters it.
Tunables (reset before each test)
    ``ssm_invocation_delay`` (0.3 s: GetCommandInvocation says InvocationDoesNotExist
    this long), ``ssm_delivery_delay`` (0.05 s in Pending), ``ssm_registration_delay``
    (0 s from boot until the instance is Online), ``require_ssm_policy`` (True),
    ``shutdown_grace`` (0 s: SIGTERM this long before SIGKILL on power-off),
    ``profile_propagation_delay`` (0 s: how long a profile made through the API stays
    unknown to RunInstances).

Speed
=====
``python -m tests.cloud.measure`` prints start-up and launch + command + terminate
times (about 1.4 s and 0.45 s here; a per-test reset is about 10 ms).

moto settings
=============
While a test holds ``cloud``, moto's ``settings.ENABLE_AMI_VALIDATION``,
``settings.EC2_ENABLE_INSTANCE_TYPE_VALIDATION`` and ``settings.ENABLE_KEYPAIR_VALIDATION``
are True (moto reads the ``MOTO_*`` variables for these once, at import, so the harness
sets the module attributes; the variables are set too), and ``MOTO_IAM_LOAD_MANAGED_POLICIES
=true`` and ``MOTO_EC2_LOAD_DEFAULT_AMIS=false`` are in the environment (read when a
backend is created, i.e. right after the per-test reset). All are restored afterwards, so
``mock_aws`` tests in the same session are unaffected. moto answers an unknown instance
type with ``InvalidInstanceType.NotFound`` (real EC2 says ``InvalidParameterValue``).
For speed the harness builds IAM's 1,485 AWS managed policies once per session and only
for the ``aws`` partition, and skips re-initialising IAM backends that a reset discards.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from tests.cloud import seed
from tests.cloud.faults import Faults, S3Hold
from tests.cloud.gateway import INTERNAL_HEADER, Gateway
from tests.cloud.instances import InstanceRuntime, iso_now
from tests.cloud.protocol import Request
from tests.cloud.quotas import ServiceQuotaValues
from tests.cloud.sandbox import Toolbox, kill_marked, marked_pids
from tests.cloud.spot_prices import SpotPriceHistory
from tests.cloud.ssm import TERMINAL, SsmService
from tests.cloud.strict import Strict
from tests.cloud.volumes import Volumes

ACCOUNT_ID = "123456789012"
DEFAULT_PROFILE = "runctl-harness"
SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
EC2_TRUST_POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
    '"Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
)

_MOTO_ENV = {
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    "MOTO_ENABLE_AMI_VALIDATION": "true",
    "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true",
    "MOTO_ENABLE_KEYPAIR_VALIDATION": "true",
}
_MOTO_SETTINGS = (
    "ENABLE_AMI_VALIDATION",
    "EC2_ENABLE_INSTANCE_TYPE_VALIDATION",
    "ENABLE_KEYPAIR_VALIDATION",
)
#: The label runctl's runner puts on a job's container: the instance it runs on.
CONTAINER_INSTANCE_LABEL = "runctl.instance"
_TUNABLES: dict[str, Any] = {
    "ssm_invocation_delay": 0.3,
    "ssm_delivery_delay": 0.05,
    "ssm_registration_delay": 0.0,
    "require_ssm_policy": True,
    "shutdown_grace": 0.0,
    "profile_propagation_delay": 0.0,
}
#: What the default harness role may do besides SSM: what ``runctl aws setup`` grants its role,
#: for every bucket (objects under ``runctl/``, listing that prefix, the bucket's location),
#: stopping or terminating runctl-managed instances, and pulling images from ECR repositories
#: ``runctl/*``. Anything else needs ``Cloud.allow_s3``.
RUNCTL_ROLE_POLICY = "runctl-harness-access"
RUNCTL_ROLE_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::*",
            "Condition": {"StringLike": {"s3:prefix": ["runctl/*", "runctl/"]}},
        },
        {
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
            "Resource": "arn:aws:s3:::*",
        },
        {
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": "arn:aws:s3:::*/runctl/*",
        },
        {
            "Effect": "Allow",
            "Action": ["ec2:StopInstances", "ec2:TerminateInstances"],
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/runctl:managed": "true"}},
        },
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": [
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchCheckLayerAvailability",
            ],
            "Resource": "arn:aws:ecr:*:*:repository/runctl/*",
        },
    ],
}


def _fast_backend_reset(backend_dict: Any) -> None:
    """moto's ``BackendDict.reset``, minus re-initialising IAM backends it then discards.

    moto resets every region backend in place and then drops them all. The in-place
    reset matters for some services (S3 closes its temporary files and forgets its
    global bucket->account map), but re-running IAM's ``__init__`` only rebuilds 1,485
    managed policies to throw them away, so IAM backends are just dropped.
    """
    from moto.core.base_backend import backend_lock
    from moto.iam.models import IAMBackend

    with backend_lock:
        for backend in backend_dict._instances:
            if backend.backend is not IAMBackend:
                for account_specific in backend.values():
                    account_specific.reset()
            backend.clear()
        backend_dict._instances.clear()


_AWS_POLICY_TEMPLATES: dict[str, list[Any]] = {}


def _cached_aws_policies(self: Any) -> list[Any]:
    """``IAMBackend._init_aws_policies``, but cheap: AWS managed policies are built once.

    moto builds its 1,485 AWS managed policies for every IAM backend, i.e. for every
    partition of every account, on every reset (~0.1 s each, 0.5 s per test). The
    harness builds them once per account and hands each new backend shallow copies
    (own attachment count, shared immutable documents), and only for the ``aws``
    partition.
    """
    import copy
    import json

    from moto.iam import models
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.settings import load_iam_aws_managed_policies

    if not load_iam_aws_managed_policies() or self.partition != "aws":
        return []
    templates = _AWS_POLICY_TEMPLATES.get(self.account_id)
    if templates is None:
        data = json.loads(aws_managed_policies_data)
        templates = [
            models.AWSManagedPolicy.from_data(name, self.account_id, self.region_name, d)
            for name, d in data.items()
        ]
        _AWS_POLICY_TEMPLATES[self.account_id] = templates
    return [copy.copy(policy) for policy in templates]


class ApiCall(NamedTuple):
    """One request seen by the endpoint."""

    service: str
    operation: str
    key: str | None


class Profile(NamedTuple):
    """An instance profile made by ``Cloud.create_instance_profile``."""

    name: str
    arn: str
    role_name: str
    role_arn: str


_UNSET: Any = object()


class Cloud:
    """The harness: one in-process moto server plus sandboxes, SSM, IMDS and faults."""

    account_id = ACCOUNT_ID

    def __init__(self, root: Path, region: str = "us-east-1") -> None:
        self.root = root
        self.region = region
        self.session_token = uuid.uuid4().hex
        self.toolbox = Toolbox(root / "toolbox")
        self.faults = Faults()
        self.ssm = SsmService(self)
        self.runtimes: dict[str, InstanceRuntime] = {}
        self.request_log: list[ApiCall] = []
        self.amis: dict[str, str] = seed.ami_ids()
        self.endpoint = ""
        self.home = root / "home"
        self.env: dict[str, str] = {}
        self.ssm_invocation_delay: float = 0.3
        self.ssm_delivery_delay: float = 0.05
        self.ssm_registration_delay: float = 0.0
        self.require_ssm_policy: bool = True
        self.shutdown_grace: float = 0.0
        self.profile_propagation_delay: float = 0.0
        self.strict = Strict(self)
        self.volumes = Volumes(self)
        self.spot_prices = SpotPriceHistory()
        self.service_quotas = ServiceQuotaValues()
        self.role_keys: dict[str, tuple[str, str]] = {}
        self.ecr_registry: str | None = None
        self.docker_host: str | None = None
        self._lock = threading.RLock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_settings: dict[str, Any] = {}
        self._botocore: Any = None
        self._internal_clients: dict[tuple[str, str], Any] = {}
        self._test_number = 0

    # -- session -------------------------------------------------------------------------

    def start(self) -> None:
        """Build the toolbox and start the moto server on 127.0.0.1:<random port>."""
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            create_backend_app,
        )
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                return

            def log(self, type: str, message: str, *args: Any) -> None:
                return

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.root.mkdir(parents=True, exist_ok=True)
        self.toolbox.build()
        app = Gateway(self, DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Kill every sandbox process and stop the server."""
        self._reset_runtime_state()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        shutil.rmtree(self.root / "instances", ignore_errors=True)

    # -- per test ------------------------------------------------------------------------

    def begin_test(self) -> None:
        """Reset everything for a new test (moto state re-seeded, processes killed)."""
        from moto.core.base_backend import BackendDict
        from moto.core.model_instances import reset_model_data

        self._apply_moto_settings()
        self._reset_runtime_state()
        with self._lock:
            _fast_backend_reset(BackendDict)
            reset_model_data()
            self._internal_clients.clear()
        self.seed_region(self.region)
        self._test_number += 1
        self.home = self.root / "homes" / str(self._test_number)
        self.home.mkdir(parents=True, exist_ok=True)
        missing = self.root / "nonexistent"
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_SECURITY_TOKEN": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_CONFIG_FILE": str(missing / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(missing / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": str(self.home),
        }

    def end_test(self) -> None:
        """Kill the test's processes and restore moto's global settings."""
        self._reset_runtime_state()
        self._restore_moto_settings()

    def _reset_runtime_state(self) -> None:
        kill_marked(self.session_token)
        self.remove_containers(list(self.runtimes))
        self.docker_host = None
        for runtime in list(self.runtimes.values()):
            runtime.cleanup()
        self.ssm.reset()
        self.runtimes.clear()
        shutil.rmtree(self.root / "instances", ignore_errors=True)
        self.volumes.reset()
        self.faults.clear()
        self.strict.reset()
        self.spot_prices.clear()
        self.service_quotas.clear()
        self.role_keys.clear()
        self.request_log.clear()
        self.ecr_registry = None
        for name, value in _TUNABLES.items():
            setattr(self, name, value)

    def _apply_moto_settings(self) -> None:
        from moto import settings

        for name, value in _MOTO_ENV.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        for name in _MOTO_SETTINGS:
            self._saved_settings.setdefault(name, getattr(settings, name))
            setattr(settings, name, True)
        from moto.iam.models import IAMBackend

        if "_init_aws_policies" not in self._saved_settings:
            self._saved_settings["_init_aws_policies"] = IAMBackend.__dict__["_init_aws_policies"]
            IAMBackend._init_aws_policies = _cached_aws_policies  # type: ignore[method-assign]

    def _restore_moto_settings(self) -> None:
        from moto import settings

        for name, old in self._saved_env.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        from moto.iam.models import IAMBackend

        for name, value in self._saved_settings.items():
            setattr(IAMBackend if name == "_init_aws_policies" else settings, name, value)
        self._saved_env.clear()
        self._saved_settings.clear()

    def seed_region(self, region: str) -> None:
        """Seed the AMIs and public SSM parameters into ``region``."""
        seed.seed_region(self.account_id, region)

    def subprocess_env(self) -> dict[str, str]:
        """``os.environ`` without other ``AWS_*`` variables, plus ``env``."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        base.update(self.env)
        return base

    # -- moto backends and clients -------------------------------------------------------

    def ec2_backend(self, region: str | None = None) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[self.account_id][region or self.region]

    def s3_backend(self) -> Any:
        from moto.s3.models import s3_backends

        return s3_backends[self.account_id]["aws"]

    def iam_backend(self) -> Any:
        from moto.iam.models import iam_backends

        return iam_backends[self.account_id]["global"]

    def sts_backend(self) -> Any:
        from moto.sts.models import sts_backends

        return sts_backends[self.account_id]["global"]

    def ssm_backend(self, region: str | None = None) -> Any:
        from moto.ssm.models import ssm_backends

        return ssm_backends[self.account_id][region or self.region]

    def availability_zones(self) -> list[str]:
        zones = self.ec2_backend().describe_availability_zones()
        return sorted(z.name for z in zones)

    def _session(self) -> Any:
        """One boto3 session (over a private botocore session) for all harness clients."""
        if self._botocore is None:
            import boto3
            import botocore.session

            missing = str(self.root / "nonexistent")
            # No profile, config or credentials file: whatever the developer's
            # environment says (AWS_PROFILE, ~/.aws) must not leak into the harness.
            core = botocore.session.Session(
                session_vars={
                    "profile": (None, None, None, None),
                    "config_file": (None, None, missing + "/config", None),
                    "credentials_file": (None, None, missing + "/credentials", None),
                }
            )
            self._botocore = boto3.session.Session(botocore_session=core)
        return self._botocore

    def client(
        self,
        service: str,
        region: str | None = None,
        config: Any = None,
        *,
        internal: bool = False,
        **kwargs: Any,
    ) -> Any:
        """A boto3 client for ``service`` on the endpoint (logged and faultable)."""
        client = self._session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=region or self.region,
            config=config,
            **{
                "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing",
                "aws_session_token": "testing",
                **kwargs,
            },
        )
        if internal:

            def mark(request: Any, **_: Any) -> None:
                request.headers[INTERNAL_HEADER] = "1"

            client.meta.events.register("before-sign", mark)
        return client

    def _internal(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self.region)
        client = self._internal_clients.get(key)
        if client is None:
            from botocore.config import Config

            client = self.client(
                service,
                region=key[1],
                config=Config(retries={"total_max_attempts": 1}),
                internal=True,
            )
            self._internal_clients[key] = client
        return client

    # -- request log ---------------------------------------------------------------------

    def record(self, req: Request) -> None:
        key = req.key if req.service == "s3" else None
        with self._lock:
            self.request_log.append(ApiCall(req.service, req.operation, key))

    def calls(self, operation: str, service: str | None = None) -> list[ApiCall]:
        """Logged calls of ``operation`` (of ``service`` if given)."""
        with self._lock:
            return [
                c
                for c in self.request_log
                if c.operation == operation and (service is None or c.service == service)
            ]

    # -- faults --------------------------------------------------------------------------

    def throttle(self, operation: str, times: int, service: str | None = None) -> None:
        """Throttle the next ``times`` calls of ``operation``."""
        self.faults.add_throttle(operation, times, service)

    def insufficient_capacity(
        self,
        azs: list[str] | str | None = None,
        spot_only: bool = True,
        instance_types: list[str] | None = None,
        times: int | None = None,
        after: int = 0,
    ) -> None:
        """Make RunInstances fail with InsufficientInstanceCapacity in ``azs`` (after ``after``
        matching launches succeeded: a zone with room for that many)."""
        zones = frozenset([azs] if isinstance(azs, str) else azs) if azs is not None else None
        types = frozenset(instance_types) if instance_types is not None else None
        self.faults.add_capacity(zones, spot_only, types, times, after)

    def cut_s3_upload(
        self,
        key_prefix: str,
        times: int = 1,
        after_bytes: int = 65536,
        bucket: str | None = None,
    ) -> None:
        """Drop the connection of the next ``times`` uploads under ``key_prefix``."""
        self.faults.add_s3_cut(key_prefix, bucket, after_bytes, times)

    def hold_s3_download(
        self, key_prefix: str, after_bytes: int = 1024 * 1024, bucket: str | None = None
    ) -> S3Hold:
        """Hold every GetObject under ``key_prefix`` after ``after_bytes`` of its body until
        ``hold.release()``; then drop it (and every later one, until ``clear_faults``).
        ``hold.reached`` is set once a download is held, i.e. certainly in progress."""
        return self.faults.add_s3_hold(key_prefix, bucket, after_bytes)

    def set_spot_price_history(
        self, instance_type: str, zone: str, points: list[tuple[Any, float]]
    ) -> None:
        """Seed the spot price history of ``instance_type`` in ``zone``: (aware datetime, USD)
        changes. DescribeSpotPriceHistory for that type then answers as AWS does (time window,
        pages, newest first); see :mod:`tests.cloud.spot_prices`. Reset before each test."""
        self.spot_prices.set(instance_type, zone, points)

    def set_service_quota(
        self, service_code: str, quota_code: str, value: float, region: str | None = None
    ) -> None:
        """Set a Service Quotas value moto does not know (EC2's vCPU quotas); see
        :mod:`tests.cloud.quotas`. Reset before each test."""
        self.service_quotas.set(region or self.region, service_code, quota_code, value)

    def clear_faults(self) -> None:
        """Remove every fault (a held download is released and dropped)."""
        self.faults.clear()

    # -- ECR -----------------------------------------------------------------------------

    def link_ecr(self, registry_address: str) -> None:
        """Make ECR answers name a real registry (``127.0.0.1:<port>``) instead of
        ``<account>.dkr.ecr.<region>.amazonaws.com``: repository URIs become
        ``<address>/<name>`` and GetAuthorizationToken's proxyEndpoint
        ``http://<address>``, so ``docker login``/``push`` really happen (use with the
        ``registry`` and ``dockerd`` fixtures). Reset before each test."""
        self.ecr_registry = registry_address

    def link_docker(self, host: str) -> None:
        """Give instance processes ``DOCKER_HOST=host`` (the ``dockerd`` fixture's), and remove
        an instance's containers with it (see the module). Reset before each test."""
        self.docker_host = host

    def remove_containers(self, instance_ids: list[str]) -> None:
        """``docker rm -f`` every container labelled with one of the instances (linked daemon)."""
        if self.docker_host is None or not instance_ids:
            return
        env = {**os.environ, "DOCKER_HOST": self.docker_host}
        filters = [f"--filter=label={CONTAINER_INSTANCE_LABEL}={i}" for i in instance_ids]
        for flag in filters:
            found = subprocess.run(
                ["docker", "ps", "-aq", flag], env=env, capture_output=True, text=True, timeout=60
            ).stdout.split()
            if found:
                subprocess.run(
                    ["docker", "rm", "-f", *found], env=env, capture_output=True, timeout=60
                )

    # -- instances -----------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring sandboxes in line with moto's instance states."""
        with self._lock:
            for instance in self.ec2_backend().all_instances():
                runtime = self.runtimes.get(instance.id)
                state = instance.state
                if state in ("pending", "running"):
                    if runtime is None:
                        runtime = InstanceRuntime(self, instance.id)
                        self.runtimes[instance.id] = runtime
                    runtime.power_on()
                elif runtime is None:
                    continue
                elif state == "terminated":
                    if not runtime.terminated:
                        runtime.power_off(terminate=True)
                elif runtime.powered:
                    runtime.power_off(terminate=False)
            self.volumes.reconcile()

    def after_ec2(self, req: Request) -> None:
        """Called by the gateway after every successful EC2 call."""
        self.reconcile()
        if req.operation == "RebootInstances":
            ids = [v for k, v in req.params.items() if k.startswith("InstanceId.")]
            for instance_id in ids:
                runtime = self.runtimes.get(instance_id)
                if runtime is not None:
                    runtime.reboot()

    def _runtime(self, instance_id: str) -> InstanceRuntime:
        runtime = self.runtimes.get(instance_id)
        if runtime is None:
            raise KeyError(f"the harness has not seen instance {instance_id} running")
        return runtime

    def sandbox(self, instance_id: str) -> Path:
        """The instance's disk (gone once it is terminated)."""
        return self.root / "instances" / instance_id

    def volume_dir(self, volume_id: str) -> Path:
        """The volume's directory; ``data/`` is what a mount of it shows (gone with the
        volume)."""
        return self.volumes.volume_dir(volume_id)

    def imds_endpoint(self, instance_id: str) -> str:
        """Base URL of the instance's IMDS (``http://127.0.0.1:<port>/``)."""
        return self._runtime(instance_id).imds.endpoint

    def processes(self, instance_id: str) -> list[int]:
        """Live pids of processes started on the instance."""
        return marked_pids(self.session_token, instance_id)

    def state(self, instance_id: str) -> str:
        return str(self.ec2_backend().get_instance(instance_id).state)

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.02
    ) -> Any:
        """Poll ``predicate`` until it returns something truthy; TimeoutError otherwise.

        ``timeout`` caps a wait for something broken; it is no speed requirement (a loaded
        machine takes its time), so it is generous."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(interval)

    def wait_state(self, instance_id: str, state: str, timeout: float = 60.0) -> None:
        self.wait_for(lambda: self.state(instance_id) == state, timeout)

    def wait_boot(self, instance_id: str, timeout: float = 120.0) -> Path:
        """Wait until user data has finished; returns cloud-init's output log."""
        marker = self.sandbox(instance_id) / "var/lib/cloud/instance/boot-finished"
        self.wait_for(marker.exists, timeout)
        return self.sandbox(instance_id) / "var/log/cloud-init-output.log"

    def create_instance_profile(
        self, name: str = DEFAULT_PROFILE, ssm_policy: bool = True
    ) -> Profile:
        """An instance profile whose role EC2 may assume (idempotent)."""
        iam = self._internal("iam")
        try:
            found = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
            role = found["Roles"][0]
            return Profile(name, found["Arn"], role["RoleName"], role["Arn"])
        except iam.exceptions.NoSuchEntityException:
            pass
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=EC2_TRUST_POLICY)["Role"]
        if ssm_policy:
            iam.attach_role_policy(RoleName=name, PolicyArn=SSM_CORE_POLICY)
        iam.put_role_policy(
            RoleName=name,
            PolicyName=RUNCTL_ROLE_POLICY,
            PolicyDocument=json.dumps(RUNCTL_ROLE_DOCUMENT),
        )
        profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        return Profile(name, profile["Arn"], name, role["Arn"])

    def put_role_policy(
        self, name: str, document: dict[str, Any], *, profile: str = DEFAULT_PROFILE
    ) -> None:
        """Put the inline policy ``name`` on the profile's role (idempotent)."""
        found = self.create_instance_profile(profile)
        self._internal("iam").put_role_policy(
            RoleName=found.role_name, PolicyName=name, PolicyDocument=json.dumps(document)
        )

    def allow_s3(
        self, uri: str, *, read_only: bool = False, profile: str = DEFAULT_PROFILE
    ) -> None:
        """Let the profile's role read (and unless ``read_only`` write) ``s3://bucket/prefix/``,
        as ``runctl aws setup --grant`` would (an inline policy per prefix; idempotent)."""
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        found = self.create_instance_profile(profile)
        actions = ["s3:GetObject"] + (
            []
            if read_only
            else [
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ]
        )
        document = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": f"arn:aws:s3:::{bucket}",
                    "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
                },
                {
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
                },
            ],
        }
        name = "allow-" + "".join(c if c.isalnum() else "-" for c in f"{bucket}-{prefix}")[:100]
        self._internal("iam").put_role_policy(
            RoleName=found.role_name, PolicyName=name, PolicyDocument=json.dumps(document)
        )

    def role_client(self, instance_id: str, service: str, region: str | None = None) -> Any:
        """A client signed with the credentials the instance gets from its IMDS (held to its
        role's policies, as the instance's own requests are)."""
        runtime = self._runtime(instance_id)
        found = runtime.credentials()
        if found is None:
            raise ValueError(f"{instance_id} has no instance profile with a role")
        _, creds = found
        return self.client(
            service,
            region=region,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["Token"],
        )

    def install_executable(self, instance_id: str, name: str, text: str) -> Path:
        """Put an executable ``name`` with ``text`` into the instance's ``/usr/local/bin``,
        which comes first on every instance process's PATH (a fake old ``python3``, a framework
        Python wrapper, ...). Returns its path."""
        directory = self.sandbox(instance_id) / "usr/local/bin"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)
        return path

    def run_instance(
        self,
        image: str = "al2023",
        instance_type: str = "t3.micro",
        *,
        spot: bool = False,
        user_data: str | bytes | None = None,
        profile: str | None = DEFAULT_PROFILE,
        az: str | None = None,
        tags: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> str:
        """Launch one instance (harness-internal call) and return its id."""
        params: dict[str, Any] = {
            "ImageId": self.amis.get(image, image),
            "InstanceType": instance_type,
            "MinCount": 1,
            "MaxCount": 1,
        }
        if profile is not None:
            self.create_instance_profile(profile)
            params["IamInstanceProfile"] = {"Name": profile}
        if spot:
            params["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        if user_data is not None:
            params["UserData"] = user_data
        if az is not None:
            params["Placement"] = {"AvailabilityZone": az}
        if tags:
            params["TagSpecifications"] = [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
        params.update(kwargs)
        result = self._internal("ec2").run_instances(**params)
        instance_id: str = result["Instances"][0]["InstanceId"]
        self.reconcile()
        return instance_id

    def run_command(
        self,
        instance_id: str,
        commands: list[str] | str,
        execution_timeout: int | None = None,
        working_directory: str | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Run commands through SSM and return the finished GetCommandInvocation dict."""
        parameters: dict[str, list[str]] = {
            "commands": [commands] if isinstance(commands, str) else list(commands)
        }
        if execution_timeout is not None:
            parameters["executionTimeout"] = [str(execution_timeout)]
        if working_directory is not None:
            parameters["workingDirectory"] = [working_directory]
        sent = self._internal("ssm").send_command(
            InstanceIds=[instance_id], DocumentName="AWS-RunShellScript", Parameters=parameters
        )
        command_id = sent["Command"]["CommandId"]
        command = self.ssm.commands[command_id]
        inv = command.invocations[instance_id]
        self.wait_for(lambda: inv.status in TERMINAL, timeout)
        inv.sent = float("-inf")  # harness-internal: visible now, whatever the delay
        return self.ssm.get_command_invocation({"CommandId": command_id, "InstanceId": instance_id})

    # -- spot ----------------------------------------------------------------------------

    def interrupt(
        self, instance_id: str, notice_seconds: float = 120, action: str = "terminate"
    ) -> None:
        """Give a spot interruption notice; the instance goes after ``notice_seconds``."""
        runtime = self._runtime(instance_id)
        if runtime.instance().lifecycle != "spot":
            raise ValueError(f"{instance_id} is not a spot instance")
        if action not in ("terminate", "stop", "hibernate"):
            raise ValueError(f"unknown interruption action {action!r}")
        runtime.spot_action = {"action": action, "time": iso_now(notice_seconds)}
        if notice_seconds <= 0:
            self._reclaim(instance_id, action)
        else:
            runtime.schedule(notice_seconds, lambda: self._reclaim(instance_id, action))

    def _reclaim(self, instance_id: str, action: str) -> None:
        from moto.ec2.models.instances import StateReason

        backend = self.ec2_backend()
        try:
            instance = backend.get_instance(instance_id)
        except Exception:
            return
        if instance.state == "terminated":
            return
        when = time.strftime("%Y-%m-%d %H:%M:%S GMT", time.gmtime())
        if action == "terminate":
            backend.terminate_instances([instance_id])
            code = "Server.SpotInstanceTermination"
            instance.state_reason = StateReason(f"{code}: Spot instance termination", code)
        else:
            backend.stop_instances([instance_id])
            code = "Server.SpotInstanceShutdown"
            instance.state_reason = StateReason(f"{code}: Spot instance shutdown", code)
        instance._reason = f"Service initiated ({when})"
        self.reconcile()

    def rebalance(self, instance_id: str) -> None:
        """Publish an EC2 rebalance recommendation for the instance."""
        self._runtime(instance_id).rebalance_notice = {"noticeTime": iso_now()}
