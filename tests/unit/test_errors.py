"""The exit-code table and AWS error translation."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from runctl.aws.errors import aws_errors, translate
from runctl.errors import (
    AuthError,
    CapacityError,
    ExitCode,
    JobFailedError,
    NotFoundError,
    UsageError,
    WrongStateError,
)


def client_error(code: str, message: str = "boom", operation: str = "RunInstances") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_exit_code_table_matches_the_spec() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "INTERNAL": 1,
        "USAGE": 2,
        "CONFIG": 3,
        "AUTH": 4,
        "CAPACITY": 5,
        "NOT_FOUND": 6,
        "JOB_FAILED": 7,
        "WRONG_STATE": 8,
        "TIMEOUT": 9,
        "INTERRUPTED": 130,
    }


@pytest.mark.parametrize(
    ("code", "kind", "exit_code"),
    [
        ("AccessDenied", AuthError, 4),
        ("UnauthorizedOperation", AuthError, 4),
        ("ExpiredToken", AuthError, 4),
        ("InsufficientInstanceCapacity", CapacityError, 5),
        ("VcpuLimitExceeded", CapacityError, 5),
        ("NoSuchBucket", NotFoundError, 6),
        ("InvalidInstanceID.NotFound", NotFoundError, 6),
        ("IncorrectInstanceState", WrongStateError, 8),
        ("InvalidParameterValue", UsageError, 2),
    ],
)
def test_client_errors_map_to_exit_codes(code: str, kind: type, exit_code: int) -> None:
    err = translate(client_error(code), "ec2:RunInstances", "i-0123456789abcdef0")
    assert isinstance(err, kind)
    assert err.exit_code == exit_code
    assert "i-0123456789abcdef0" in err.message or code in {"ExpiredToken"}


def test_access_denied_names_the_action() -> None:
    err = translate(client_error("UnauthorizedOperation"), "ec2:RunInstances")
    assert "ec2:RunInstances" in err.message
    assert err.hint is not None and "ec2:RunInstances" in err.hint


def test_expired_token_says_to_refresh() -> None:
    err = translate(client_error("ExpiredToken"), "s3:ListObjectsV2", "s3://b/p")
    assert isinstance(err, AuthError)
    assert "expired" in err.message
    assert err.hint is not None and "refresh" in err.hint


def test_no_credentials_says_how_to_configure() -> None:
    err = translate(NoCredentialsError(), "ec2:DescribeInstances")
    assert err.exit_code == ExitCode.AUTH
    assert err.hint is not None and "aws configure" in err.hint


def test_unreachable_endpoint_is_one_clear_line() -> None:
    err = translate(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "s3:GetObject")
    assert err.exit_code == ExitCode.INTERNAL
    assert "could not reach AWS" in err.message


def test_aws_errors_context_manager_translates() -> None:
    with pytest.raises(NotFoundError) as caught, aws_errors("s3:HeadBucket", "s3://nope"):
        raise client_error("NoSuchBucket", operation="HeadBucket")
    assert "s3://nope" in caught.value.message


def test_job_failed_carries_the_script_exit_code() -> None:
    err = JobFailedError("job failed", script_exit_code=3, details={"verdict": "failed"})
    assert err.exit_code == 7  # runctl's own exit code: the process's
    document = err.to_dict()
    assert document["exit_code"] == 3  # in JSON, exit_code is always the script's
    assert document["verdict"] == "failed" and document["error"] == "JobFailedError"
