"""Grouping a prefix's entries for ``s3 cleanup --keep-last-n``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runctl.aws.s3 import S3Object, S3Uri
from runctl.aws.s3_cleanup import group_entries, split_newest


def obj(key: str, minute: int, size: int = 1) -> S3Object:
    return S3Object("bkt", key, size, datetime(2024, 1, 1, 0, minute, tzinfo=UTC))


def test_entries_are_sub_prefixes_and_objects_ordered_by_newest_object() -> None:
    prefix = S3Uri("bkt", "ckpt/")
    objects = [
        obj("ckpt/run-1/a", 1),
        obj("ckpt/run-1/b", 9, size=5),  # run-1 was written to last
        obj("ckpt/run-2/a", 5),
        obj("ckpt/run-2/deep/x", 6),
        obj("ckpt/loose.txt", 7),
    ]
    entries = group_entries(prefix, objects)
    assert [e.name for e in entries] == ["run-1/", "loose.txt", "run-2/"]
    assert entries[0].keys == ("ckpt/run-1/a", "ckpt/run-1/b")
    assert entries[0].size == 6
    assert entries[0].uri == S3Uri("bkt", "ckpt/run-1/")
    assert entries[2].keys == ("ckpt/run-2/a", "ckpt/run-2/deep/x")


def test_split_newest() -> None:
    entries = group_entries(S3Uri("bkt", ""), [obj(f"e{i}", i) for i in range(5)])
    keep, delete = split_newest(entries, 2)
    assert [e.name for e in keep] == ["e4", "e3"]
    assert [e.name for e in delete] == ["e2", "e1", "e0"]
    assert split_newest(entries, 10) == (entries, [])
    assert split_newest(entries, 0) == ([], entries)
    with pytest.raises(ValueError):
        split_newest(entries, -1)
