"""Translate botocore exceptions into runctl errors at the AWS boundary.

Wrappers call AWS inside :func:`aws_errors`, naming the action and the resource, so a failure
reaches the user as one line saying what failed, where, and what to do next, with the exit code of
docs/reference.md, "Output and exit codes". Throttling never gets here unless botocore's retries ran
out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from runctl.errors import (
    AuthError,
    AwsError,
    CapacityError,
    ConfigError,
    NotFoundError,
    RunctlError,
    UsageError,
    WaitTimeoutError,
    WrongStateError,
)

CREDENTIALS_HINT = (
    "configure credentials: `aws configure`, AWS_PROFILE=name, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY; on EC2 an instance role"
)

DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "UnrecognizedClientException",
    "Blocked",
}
EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
CAPACITY = {
    "InsufficientInstanceCapacity",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow",
    "InsufficientCapacity",
    "Unsupported",
    "VolumeLimitExceeded",
    "LimitExceeded",
    "LimitExceededException",
    "TooManyBuckets",
}
NOT_FOUND = {
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
    "404",
    "NoSuchEntity",
    "InvalidInstanceID.NotFound",
    "InvalidVolume.NotFound",
    "InvalidSnapshot.NotFound",
    "InvalidAMIID.NotFound",
    "InvalidAMIID.Unavailable",
    "InvalidKeyPair.NotFound",
    "InvalidGroup.NotFound",
    "InvalidSubnetID.NotFound",
    "RepositoryNotFoundException",
    "ParameterNotFound",
    "InvocationDoesNotExist",
}
WRONG_STATE = {
    "IncorrectInstanceState",
    "IncorrectState",
    "InvalidInstanceId",
    "IncorrectSpotRequestState",
    "VolumeInUse",
    "InvalidVolume.ZoneMismatch",
    "UnsupportedOperation",
    "BucketAlreadyOwnedByYou",
}
USAGE = {
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidInstanceID.Malformed",
    "MissingParameter",
    "ValidationError",
    "ValidationException",
    "InvalidBucketName",
}
THROTTLED = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "SlowDown"}


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError (``404`` for bare HEAD failures)."""
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def translate(exc: BaseException, action: str, resource: str | None = None) -> RunctlError:
    """Turn a botocore exception raised by ``action`` on ``resource`` into a RunctlError."""
    where = f" on {resource}" if resource else ""
    if isinstance(exc, PartialCredentialsError):
        # botocore: "Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY"
        return AuthError(f"incomplete AWS credentials ({exc})", hint=CREDENTIALS_HINT)
    if isinstance(exc, NoCredentialsError):
        return AuthError(f"no AWS credentials found (needed for {action})", hint=CREDENTIALS_HINT)
    if isinstance(exc, NoRegionError):
        return ConfigError("no AWS region is set", hint="pass --region or set AWS_REGION")
    if isinstance(exc, InvalidRegionError):
        return ConfigError(
            f"the AWS region is not valid: {exc}",
            hint="use a region name such as us-east-1 (--region, AWS_REGION, aws.region, or "
            "the region of your AWS profile)",
        )
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return AwsError(
            f"could not reach AWS for {action}{where}: {exc}",
            hint="check the network, the region, and AWS_ENDPOINT_URL if you set one",
            resource=resource,
        )
    if isinstance(exc, ReadTimeoutError):
        return WaitTimeoutError(
            f"AWS did not answer {action}{where} in time", hint="retry", resource=resource
        )
    if not isinstance(exc, ClientError):
        return AwsError(f"{action}{where} failed: {exc}", resource=resource)
    code = error_code(exc)
    message = exc.response.get("Error", {}).get("Message") or code
    text = f"{action}{where} failed: {message} ({code})"
    if code in EXPIRED:
        return AuthError(
            f"AWS credentials have expired ({action}{where})",
            hint="refresh them (e.g. `aws sso login`) and retry",
            resource=resource,
        )
    if code in DENIED:
        return AuthError(
            f"permission denied: {action}{where} ({code})",
            hint=f"grant {action} to your IAM identity, or use another --profile",
            resource=resource,
        )
    if code in CAPACITY:
        return CapacityError(text, resource=resource, hint="try another type, zone or region")
    if code in NOT_FOUND:
        return NotFoundError(text, resource=resource)
    if code in WRONG_STATE:
        return WrongStateError(text, resource=resource)
    if code in USAGE:
        return UsageError(text, resource=resource)
    if code in THROTTLED:
        return AwsError(
            f"AWS kept throttling {action}{where} after retries",
            hint="wait a minute and retry",
            resource=resource,
        )
    return AwsError(text, resource=resource)


def translate_escaped(exc: BaseException) -> RunctlError | None:
    """A botocore exception that no wrapper translated (credentials are resolved lazily, on a
    client's first request, wherever that is), as a RunctlError; None for anything else. The
    CLI's error boundary calls this, so no command needs its own credential handling."""
    if not isinstance(exc, (BotoCoreError, ClientError)):
        return None
    return translate(exc, getattr(exc, "operation_name", None) or "a request to AWS")


@contextmanager
def aws_errors(action: str, resource: str | None = None) -> Iterator[None]:
    """Run AWS calls, translating any botocore failure into a RunctlError."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, action, resource) from exc
