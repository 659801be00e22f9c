"""The job's attempt log: one small JSON document per attempt, ``attempts/<N>.json`` in the job's
S3 prefix, so that ``jobs show`` can list every attempt (instance, zone, market, start, end,
the checkpoint it restored, why it ended) long after the instances are gone.

An attempt's document is also its **claim**. Before an instance launches a successor for
attempt N+1 (:mod:`runctl.remote.succession`) it creates ``attempts/<N+1>.json`` with a
conditional PutObject (``If-None-Match: *``): S3 lets exactly one writer create a key, so two
instances (or an instance and a laptop) can never both resume the same attempt, and the attempt
number, compared with the job's ``max_restarts``, bounds the restarts across instances. Later
writes of the same attempt (the runner at its start and end) replace the document whole; their
writer is the attempt's own runner, so there is no one to race.

Standard library only at import time; the S3 client is passed in (boto3 on the instance).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from runctl.job.spec import JobLocation, utc_now

CLAIM_LOST = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
#: Who launched an attempt's instance.
BY_USER = "user"


@dataclass
class AttemptEntry:
    """One attempt of a job, as its documents in ``attempts/`` say."""

    attempt: int
    instance_id: str | None = None
    availability_zone: str | None = None
    market: str | None = None
    launched_by: str = BY_USER  # "user", or the id of the instance whose runner launched it
    claimed: str | None = None
    started: str | None = None
    ended: str | None = None
    state: str | None = None
    restored_checkpoint: str | None = None
    checkpoint_id: str | None = None
    reason: str | None = None  # why it ended (or why no successor was launched)
    successor: str | None = None  # what became of its recovery: "attempt 2 on i-..." etc.

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptEntry:
        names = {f.name for f in fields(cls)}
        known = {key: value for key, value in data.items() if key in names}
        if not isinstance(known.get("attempt"), int):
            raise ValueError("attempt record: 'attempt' is missing")
        return cls(**known)


class AttemptClaimed(Exception):
    """Another writer created this attempt's document first."""


class AttemptLog:
    """Reads, claims and writes the attempt documents of one job in S3."""

    def __init__(self, location: JobLocation, s3: Any) -> None:
        self.location = location
        self.s3 = s3

    @property
    def prefix(self) -> str:
        return self.location.prefix + "attempts/"

    def key(self, attempt: int) -> str:
        return f"{self.prefix}{int(attempt)}.json"

    def read(self, attempt: int) -> AttemptEntry | None:
        """Attempt ``attempt``'s document, or None when it has none."""
        try:
            body = self.s3.get_object(Bucket=self.location.bucket, Key=self.key(attempt))["Body"]
            return AttemptEntry.from_dict(json.loads(body.read()))
        except Exception as exc:  # NoSuchKey, or a document this reader cannot parse
            if aws_error_code(exc) in ("NoSuchKey", "404") or isinstance(exc, ValueError):
                return None
            raise

    def entries(self) -> list[AttemptEntry]:
        """Every attempt's document, by attempt number."""
        found: list[AttemptEntry] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix) :]
                if name.endswith(".json") and name[: -len(".json")].isdigit():
                    entry = self.read(int(name[: -len(".json")]))
                    if entry is not None:
                        found.append(entry)
        return sorted(found, key=lambda e: e.attempt)

    def claim(self, entry: AttemptEntry) -> None:
        """Create ``entry``'s document unless it exists; AttemptClaimed when it does."""
        entry.claimed = entry.claimed or utc_now()
        try:
            self._put(entry, IfNoneMatch="*")
        except Exception as exc:
            # 412 PreconditionFailed: it exists; 409 ConditionalRequestConflict: a concurrent
            # conditional write of the same key is in flight (and will win or fail on its own).
            if aws_error_code(exc) in CLAIM_LOST:
                raise AttemptClaimed(f"attempt {entry.attempt} is already claimed") from None
            raise

    def write(self, entry: AttemptEntry) -> None:
        """Create or replace ``entry``'s document."""
        self._put(entry)

    def update(self, attempt: int, **changes: Any) -> AttemptEntry:
        """Merge ``changes`` into attempt ``attempt``'s document (created when missing)."""
        entry = self.read(attempt) or AttemptEntry(attempt=attempt)
        for name, value in changes.items():
            setattr(entry, name, value)
        self.write(entry)
        return entry

    def _put(self, entry: AttemptEntry, **conditions: str) -> None:
        data = (json.dumps(entry.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")
        self.s3.put_object(
            Bucket=self.location.bucket,
            Key=self.key(entry.attempt),
            Body=data,
            ContentType="application/json",
            **conditions,
        )


def aws_error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError (else its HTTP status, else '')."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    code = str(error.get("Code", ""))
    if code:
        return code
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(status) if status else ""
