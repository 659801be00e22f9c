"""When sync copies a file: new, size differs, or newer and different; otherwise not."""

from __future__ import annotations

import pytest

from runctl.aws.s3_sync import Side, copy_reason


def never() -> bool | None:
    raise AssertionError("content must not be compared here")


def test_missing_destination_is_new() -> None:
    assert copy_reason(Side(1, 100.0), None, never) == "new"


def test_different_size_is_copied_without_reading_content() -> None:
    assert copy_reason(Side(1, 100.0), Side(2, 500.0), never) == "size"


@pytest.mark.parametrize("dest_time", [100.0, 100.9, 200.0])
def test_same_size_and_not_newer_is_in_sync_without_reading_content(dest_time: float) -> None:
    # S3 times have whole seconds: a local 100.9 s and an S3 100 s are the same moment.
    assert copy_reason(Side(5, 100.5), Side(5, dest_time), never) is None


@pytest.mark.parametrize(("same", "reason"), [(True, None), (False, "changed"), (None, "changed")])
def test_newer_source_is_copied_unless_content_is_known_equal(
    same: bool | None, reason: str | None
) -> None:
    calls: list[int] = []

    def compare() -> bool | None:
        calls.append(1)
        return same

    assert copy_reason(Side(5, 300.0), Side(5, 100.0), compare) == reason
    assert calls == [1]
