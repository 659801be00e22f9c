"""The one place that builds boto3 sessions and clients.

Building an :class:`AwsContext` costs nothing: boto3 is imported, and the session built, when
the first client is asked for, so commands check their input before paying for boto3.

Profile and region come from the flags, then the environment, then ``aws.region`` in the config,
then the AWS profile's own default. Endpoints honour ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>`` (botocore reads both), so runctl runs against moto, LocalStack or
any S3-compatible store. Retries use botocore's ``standard`` mode, which retries throttling and
5xx errors with backoff; capacity errors are not retried here but go up to the launch strategy.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runctl import __version__
from runctl.errors import ConfigError, UsageError
from runctl.naming import region_problem

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

MAX_ATTEMPTS = 8
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
USER_AGENT = f"runctl/{__version__}"
#: On an instance, how long botocore waits for IMDS to hand out the instance role's credentials,
#: and how often it asks. botocore's defaults (1 s, once) fail a runner whose instance is busy
#: training (or a loaded host): it then finds no credentials at all. Off instances IMDS is the
#: last credential provider and must stay quick to give up, so only the instance program opts in.
INSTANCE_IMDS_TIMEOUT = 5
INSTANCE_IMDS_ATTEMPTS = 3


def client_config(**overrides: Any) -> Config:
    """Retry, timeout and user-agent settings shared by every client."""
    from botocore.config import Config

    options: dict[str, Any] = {
        "retries": {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "user_agent_appid": "runctl",
        "user_agent_extra": USER_AGENT,
        "max_pool_connections": 64,
    }
    options.update(overrides)
    return Config(**options)


@dataclass
class AwsContext:
    """Builds and caches boto3 clients for one CLI invocation."""

    profile: str | None = None
    region: str | None = None
    config_region: str | None = None
    #: Running on an EC2 instance (the runner): be patient with IMDS for role credentials.
    on_instance: bool = False
    _session: boto3.Session | None = None
    _clients: dict[str, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            import boto3
            import botocore.session
            from botocore.exceptions import ProfileNotFound

            core = botocore.session.get_session()
            if self.on_instance:
                for env, name, value in (
                    ("AWS_METADATA_SERVICE_TIMEOUT", "metadata_service_timeout",
                     INSTANCE_IMDS_TIMEOUT),
                    ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "metadata_service_num_attempts",
                     INSTANCE_IMDS_ATTEMPTS),
                ):  # fmt: skip
                    if env not in os.environ:  # the user's own setting wins
                        core.set_config_variable(name, value)
            try:
                self._session = boto3.Session(profile_name=self.profile, botocore_session=core)
            except ProfileNotFound:
                raise ConfigError(
                    f"AWS profile {self.profile!r} is not configured",
                    hint="check --profile / AWS_PROFILE, or run `aws configure --profile NAME`",
                ) from None
        return self._session

    @property
    def region_name(self) -> str:
        """Region: flag > AWS_REGION/AWS_DEFAULT_REGION > aws.region config > profile default.

        Raises ConfigError when none is set, or when the one found is no region name (naming
        where it came from); UsageError when a command's own ``--region`` flag is malformed.
        """
        candidates = (
            ("--region", self.region),
            ("AWS_REGION", os.environ.get("AWS_REGION")),
            ("AWS_DEFAULT_REGION", os.environ.get("AWS_DEFAULT_REGION")),
            ("aws.region", self.config_region),
        )
        source, region = next(((s, r) for s, r in candidates if r), ("AWS profile", None))
        region = region or self.session.region_name
        if not region:
            raise ConfigError(
                "no AWS region is set",
                hint="pass --region, set AWS_REGION, or `runctl config set aws.region us-east-1`",
            )
        problem = region_problem(region)
        if problem and source == "--region":  # a command's own flag: bad input, not config
            raise UsageError(f"--region: {problem}", hint="e.g. --region us-east-1")
        if problem:
            raise ConfigError(f"{source}: {problem}", hint="e.g. us-east-1", resource=source)
        return region

    def client(self, service: str, **config: Any) -> Any:
        """A cached client for ``service`` in the resolved region.

        Thread-safe: a boto3 session must not build clients in two threads at once, and the
        job workflow asks for clients from worker threads (a probe beside an upload).
        """
        key = f"{service}:{sorted(config.items())}"
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self.session.client(
                    service,  # type: ignore[call-overload]
                    region_name=self.region_name,
                    config=client_config(**config),
                )
            return self._clients[key]

    def ec2(self) -> EC2Client:
        return self.client("ec2")  # type: ignore[no-any-return]

    def s3(self) -> S3Client:
        return self.client("s3")  # type: ignore[no-any-return]

    def ssm(self) -> SSMClient:
        return self.client("ssm")  # type: ignore[no-any-return]

    def iam(self) -> IAMClient:
        return self.client("iam")  # type: ignore[no-any-return]

    def sts(self) -> STSClient:
        return self.client("sts")  # type: ignore[no-any-return]
