"""Keep the newest N entries under a prefix and delete the rest (``s3 cleanup --keep-last-n``).

An entry is what sits immediately under the prefix: a sub-prefix (``run-7/`` with everything in
it, e.g. one checkpoint) or a plain object. Entries are ordered by their newest object's
LastModified, so a sub-prefix that was written to last counts as newest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from runctl.aws.s3 import S3Object, S3Uri, delete_objects, iter_objects

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class PrefixEntry:
    """One entry under a prefix: its name (``run-7/`` or ``notes.txt``) and its objects."""

    name: str
    uri: S3Uri
    keys: tuple[str, ...]
    size: int
    last_modified: datetime


@dataclass
class CleanupPlan:
    """Which entries stay and which go, newest first in each list."""

    prefix: S3Uri
    keep: list[PrefixEntry] = field(default_factory=list)
    delete: list[PrefixEntry] = field(default_factory=list)

    @property
    def delete_keys(self) -> list[str]:
        return [key for entry in self.delete for key in entry.keys]

    @property
    def delete_bytes(self) -> int:
        return sum(entry.size for entry in self.delete)


def group_entries(prefix: S3Uri, objects: Iterable[S3Object]) -> list[PrefixEntry]:
    """Group objects under ``prefix`` (a ``/``-ended prefix) into entries, newest first."""
    grouped: dict[str, list[S3Object]] = {}
    for obj in objects:
        relkey = obj.key[len(prefix.key) :]
        head, slash, _ = relkey.partition("/")
        grouped.setdefault(head + slash, []).append(obj)
    entries = [
        PrefixEntry(
            name=name,
            uri=prefix.join(name),
            keys=tuple(o.key for o in objs),
            size=sum(o.size for o in objs),
            last_modified=max(o.last_modified for o in objs),
        )
        for name, objs in grouped.items()
    ]
    entries.sort(key=lambda e: (e.last_modified, e.name), reverse=True)
    return entries


def split_newest(
    entries: list[PrefixEntry], keep_last_n: int
) -> tuple[list[PrefixEntry], list[PrefixEntry]]:
    """The newest ``keep_last_n`` entries and the rest (``entries`` is newest first)."""
    if keep_last_n < 0:
        raise ValueError("keep_last_n must be >= 0")
    return entries[:keep_last_n], entries[keep_last_n:]


def plan_cleanup(client: S3Client, prefix: S3Uri, keep_last_n: int) -> CleanupPlan:
    """List everything under ``prefix`` and decide what goes (NotFoundError: no such bucket)."""
    prefix = prefix.as_prefix()
    entries = group_entries(prefix, iter_objects(client, prefix))
    keep, delete = split_newest(entries, keep_last_n)
    return CleanupPlan(prefix=prefix, keep=keep, delete=delete)


def run_cleanup(client: S3Client, plan: CleanupPlan) -> int:
    """Delete the plan's doomed entries; return the number of objects deleted."""
    return delete_objects(client, plan.prefix.bucket, plan.delete_keys)
