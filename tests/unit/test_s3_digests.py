"""Digests taken while a download streams: when they answer for a whole object or its parts."""

from __future__ import annotations

import hashlib

from runctl.aws.s3_digests import Streamed, _range_start
from runctl.aws.s3_integrity import Expected


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


DATA = bytes(range(256)) * 40  # 10,240 bytes
PARTS = [DATA[i : i + 4096] for i in range(0, len(DATA), 4096)]
COMPOSITE = md5(b"".join(md5(p) for p in PARTS))


def test_single_get_gives_the_whole_object_digest() -> None:
    streamed = Streamed("MD5", len(DATA), len(DATA), {0: md5(DATA)})
    assert streamed.digest(Expected("MD5", b"", 0), None) == md5(DATA)
    assert streamed.digest(Expected("CRC32", b"", 0), None) is None  # another algorithm


def test_ranges_lined_up_with_parts_give_the_composite_digest() -> None:
    streamed = Streamed("MD5", len(DATA), 4096, {i * 4096: md5(p) for i, p in enumerate(PARTS)})
    assert streamed.digest(Expected("MD5", COMPOSITE, 3), 4096) == COMPOSITE
    assert streamed.digest(Expected("MD5", COMPOSITE, 3), 5000) is None  # other part size
    assert streamed.digest(Expected("MD5", COMPOSITE, 0), None) is None  # ranges: no whole MD5


def test_a_missing_range_gives_nothing() -> None:
    streamed = Streamed("MD5", len(DATA), 4096, {0: md5(PARTS[0]), 8192: md5(PARTS[2])})
    assert streamed.digest(Expected("MD5", COMPOSITE, 3), 4096) is None
    assert Streamed("MD5", 10, 10, {}).digest(Expected("MD5", b"", 0), None) is None


def test_range_start() -> None:
    assert _range_start(None) == 0
    assert _range_start("bytes=0-99") == 0
    assert _range_start("bytes=16777216-33554431") == 16777216
