"""The error tree and the exit-code table (docs/reference.md, "Output and exit codes").

Every failure runctl reports is a :class:`RunctlError` subclass carrying its exit code, a message
saying what failed and on which resource, and a hint saying what to do next. The CLI boundary in
``runctl.cli.app`` is the only place that turns them into output and an exit status.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, one per kind of failure."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    CONFIG = 3
    AUTH = 4
    CAPACITY = 5
    NOT_FOUND = 6
    JOB_FAILED = 7
    WRONG_STATE = 8
    TIMEOUT = 9
    INTERRUPTED = 130


class RunctlError(Exception):
    """Base of every error runctl reports to a user.

    ``details`` is the command's own result document when it got far enough to have one (a
    job's record, a transfer's report): the JSON error document is merged over it, so a
    command prints one document whether it succeeds or fails.
    """

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        resource: str | None = None,
        details: dict[str, object] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.resource = resource
        self.details = details or {}

    def to_dict(self) -> dict[str, object]:
        """The JSON form of this error, as printed under ``--output json``."""
        return {
            **self.details,
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "resource": self.resource,
            "exit_code": int(self.exit_code),
        }


class UsageError(RunctlError):
    """A bad flag or argument, found before any AWS call."""

    exit_code = ExitCode.USAGE


class ConfigError(RunctlError):
    """A configuration file or variable is invalid or missing a required value."""

    exit_code = ExitCode.CONFIG


class AuthError(RunctlError):
    """Credentials are missing or expired, or permission is denied."""

    exit_code = ExitCode.AUTH


class CapacityError(RunctlError):
    """AWS has no capacity for the request, or a quota is exhausted."""

    exit_code = ExitCode.CAPACITY


class NotFoundError(RunctlError):
    """An instance, script, bucket, key, volume or checkpoint does not exist."""

    exit_code = ExitCode.NOT_FOUND


class JobFailedError(RunctlError):
    """The training script ended with a non-zero exit code."""

    exit_code = ExitCode.JOB_FAILED

    def __init__(
        self,
        message: str,
        *,
        script_exit_code: int | None,
        hint: str | None = None,
        resource: str | None = None,
        details: dict[str, object] | None = None,
    ):
        super().__init__(message, hint=hint, resource=resource, details=details)
        self.script_exit_code = script_exit_code

    def to_dict(self) -> dict[str, object]:
        """The job's own document (its ``verdict``, ``state`` ...) with the error's fields.

        ``exit_code`` is the script's own code, as in every job document; runctl's exit code (7)
        is the process's.
        """
        data = {**super().to_dict(), **self.details}
        data["exit_code"] = self.script_exit_code
        return data


class ImageBuildError(RunctlError):
    """A ``docker build`` failed: a step of the Dockerfile (a ``RUN`` that exited non-zero, a
    missing base image) or the Dockerfile itself. Like a failed training script, it is the
    user's own commands that failed, hence the same exit code. ``step`` is the failing step as
    the builder printed it (``Step 3/4 : RUN make``), when known."""

    exit_code = ExitCode.JOB_FAILED

    def __init__(
        self,
        message: str,
        *,
        step: str | None = None,
        hint: str | None = None,
        resource: str | None = None,
    ):
        super().__init__(message, hint=hint, resource=resource)
        self.step = step


class WrongStateError(RunctlError):
    """The resource is in a state that does not allow the operation."""

    exit_code = ExitCode.WRONG_STATE


class IncompleteTransferError(WrongStateError):
    """Some objects could not be written where they belong (a key that would have to be both a
    file and a directory, a local directory in the way); everything else was transferred."""


class WaitTimeoutError(RunctlError):
    """Waiting for a state or a job took longer than allowed."""

    exit_code = ExitCode.TIMEOUT


class AwsError(RunctlError):
    """An AWS call failed for a reason with no more specific exit code."""

    exit_code = ExitCode.INTERNAL
