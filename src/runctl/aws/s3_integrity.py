"""Integrity of transferred files: recompute what S3 stored about an object and compare.

S3 keeps, per object, an ETag (the MD5 of the content for single-part uploads without SSE-KMS;
the MD5 of the parts' MD5s with a ``-N`` suffix for multipart ones) and, when the uploader asked
for it, a checksum (``x-amz-checksum-crc32`` ...): whole-object (``FULL_OBJECT``) or the checksum
of the parts' checksums (``COMPOSITE``, shown with a ``-N`` suffix on AWS). Only algorithms the
standard library can compute are used here (CRC32, SHA1, SHA256, MD5), because this module runs on
instances with nothing but boto3. See
https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runctl.aws.s3 import S3Object, head_object
from runctl.errors import AwsError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from runctl.aws.s3_digests import Streamed

STDLIB_CHECKSUMS = ("CRC32", "SHA256", "SHA1")  # S3 checksums we can recompute, best first
READ_SIZE = 4 * 1024 * 1024
HASH_WORKERS = max(1, min(4, os.cpu_count() or 1))
MB = 1024 * 1024
# Part sizes of common uploaders (boto3 and the AWS CLI 8 MiB, s5cmd 50 MiB, rclone 5 MiB, ...),
# tried when a store does not say how an object was split.
COMMON_PART_SIZES = tuple(n * MB for n in (8, 16, 5, 10, 32, 50, 64, 100, 128))
#: Server-side encryptions whose ETag is not the MD5 of the content: SSE-KMS and dual-layer
#: DSSE-KMS (SSE-C is recognised by its ``SSECustomerAlgorithm``). See
#: https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html (ETag).
KMS_ENCRYPTIONS = frozenset({"aws:kms", "aws:kms:dsse"})
_MD5_ETAG = re.compile(r'^"?([0-9a-fA-F]{32})(?:-(\d+))?"?$')


class IntegrityError(AwsError):
    """A transferred file does not match what S3 stored (exit 1; nothing is left under its name)."""


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class Crc32:
    """``zlib.crc32`` behind the hashlib interface; the digest is 4 big-endian bytes, as S3's."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hasher for ``CRC32``, ``SHA1``, ``SHA256`` or ``MD5``."""
    if algorithm == "CRC32":
        return Crc32()
    return hashlib.new(algorithm.lower())


@dataclass(frozen=True)
class Expected:
    """A digest S3 holds for an object.

    ``parts`` is 0 for a digest of the whole content, N for a digest of the N parts' digests.
    """

    algorithm: str
    digest: bytes
    parts: int = 0


def parse_etag(etag: str | None) -> Expected | None:
    """The MD5 an ETag stands for, or None when it is not an MD5 (e.g. SSE-KMS)."""
    match = _MD5_ETAG.match(etag or "")
    if match is None:
        return None
    return Expected("MD5", bytes.fromhex(match.group(1)), int(match.group(2) or 0))


def parse_checksum(
    algorithm: str, value: str, etag_parts: int, checksum_type: str | None
) -> Expected | None:
    """The digest of an ``x-amz-checksum-*`` value, composite when the object is multipart.

    AWS marks composite checksums with ``-N``; some S3-compatible stores drop the suffix, so a
    multipart ETag without ``ChecksumType: FULL_OBJECT`` also means composite.
    """
    encoded, _, suffix = value.partition("-")
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if suffix.isdigit():
        return Expected(algorithm, digest, int(suffix))
    if etag_parts and checksum_type != "FULL_OBJECT":
        return Expected(algorithm, digest, etag_parts)
    return Expected(algorithm, digest, 0)


def expected_digests(head: Mapping[str, Any]) -> list[Expected]:
    """Every digest in a HeadObject response that we can check, best first."""
    etag = parse_etag(head.get("ETag"))
    etag_parts = etag.parts if etag else 0
    found: list[Expected] = []
    for algorithm in STDLIB_CHECKSUMS:
        value = head.get(f"Checksum{algorithm}")
        if value:
            parsed = parse_checksum(algorithm, value, etag_parts, head.get("ChecksumType"))
            if parsed is not None:
                found.append(parsed)
    encrypted = (
        head.get("ServerSideEncryption") in KMS_ENCRYPTIONS or "SSECustomerAlgorithm" in head
    )
    if etag is not None and not encrypted:
        found.append(etag)
    return found


def verified_in_stream(
    size: int, etag: str | None, algorithms: tuple[str, ...], threshold: int
) -> bool:
    """True when botocore checks a download as it streams it (so no second pass is needed).

    That is a single GET (``size`` under the multipart threshold) of a single-part object with a
    full-object checksum botocore computes without awscrt.
    """
    parsed = parse_etag(etag)
    single_part = parsed is not None and parsed.parts == 0
    return size < threshold and single_part and any(a in STDLIB_CHECKSUMS for a in algorithms)


def file_digest(path: Path, algorithm: str, part_size: int | None = None) -> bytes:
    """The digest of a file, or with ``part_size`` the digest of its parts' digests.

    Parts are hashed in parallel (hashlib and zlib release the GIL), which takes most of the
    check off the end of a large download.
    """
    if part_size is None:
        return _range_digest(path, algorithm, 0, None)
    starts = range(0, path.stat().st_size, part_size)
    outer = new_hasher(algorithm)
    with ThreadPoolExecutor(max_workers=HASH_WORKERS) as pool:
        for digest in pool.map(
            lambda start: _range_digest(path, algorithm, start, part_size), starts
        ):
            outer.update(digest)
    return outer.digest()


def _range_digest(path: Path, algorithm: str, start: int, length: int | None) -> bytes:
    """The digest of ``length`` bytes of a file from ``start`` (to the end when None)."""
    hasher = new_hasher(algorithm)
    with path.open("rb") as stream:
        stream.seek(start)
        remaining = length
        while remaining is None or remaining > 0:
            block = stream.read(READ_SIZE if remaining is None else min(READ_SIZE, remaining))
            if not block:
                break
            hasher.update(block)
            if remaining is not None:
                remaining -= len(block)
    return hasher.digest()


def uniform_part_size(size: int, parts: int, first_part_size: int) -> int | None:
    """The part size when all parts but the last are ``first_part_size`` long, else None."""
    if parts < 1 or first_part_size < 1:
        return None
    if -(-size // first_part_size) != parts:
        return None
    return first_part_size


def matches(path: Path, expected: Expected, part_size: int | None) -> bool:
    """True when the file's content has the expected digest (multipart needs ``part_size``)."""
    if expected.parts:
        if part_size is None:
            raise ValueError("a multipart digest needs the part size")
        return file_digest(path, expected.algorithm, part_size) == expected.digest
    return file_digest(path, expected.algorithm) == expected.digest


def stream_algorithm(obj: S3Object) -> str:
    """What to hash a download of ``obj`` with as it streams: its stored checksum's algorithm
    when the standard library computes it, else MD5 (for the ETag)."""
    return next((a for a in STDLIB_CHECKSUMS if a in obj.checksum_algorithms), "MD5")


def verify_download(
    client: S3Client,
    obj: S3Object,
    path: Path,
    threshold: int,
    chunksize: int,
    streamed: Streamed | None = None,
) -> bool:
    """Check a downloaded file against what S3 stored for ``obj``.

    ``streamed`` holds the digests taken while it downloaded; the file is read again only when
    they cannot answer. Returns True when verified, False when S3 holds no digest we can compute
    (only CRC32C, an SSE-KMS ETag, a multipart object whose part size S3 does not tell and none
    of the usual sizes fits). Raises IntegrityError on a mismatch, or when the object changed
    since it was listed.
    """
    if verified_in_stream(obj.size, obj.etag, obj.checksum_algorithms, threshold):
        return True
    etag = parse_etag(obj.etag)
    if etag is not None and (etag.parts or obj.size < threshold):
        # The listed ETag alone may do (a mismatch may be an SSE-KMS ETag, or another part size:
        # S3 decides below).
        part_size = chunksize if etag.parts else None
        if _digest_matches(path, obj.size, etag, part_size, streamed, reread=not etag.parts):
            return True
    head = head_object(client, obj.uri)
    if obj.etag is not None and head.get("ETag") != obj.etag:
        raise IntegrityError(
            f"{obj.uri} changed while it was downloaded", hint="retry", resource=str(obj.uri)
        )
    sizes: tuple[int | None, list[int]] | None = None
    for expected in expected_digests(head):
        if not expected.parts:
            if _digest_matches(path, obj.size, expected, None, streamed):
                return True
            raise _mismatch(obj, expected)
        sizes = sizes or _part_sizes(client, obj, expected.parts, chunksize)
        trusted, guesses = sizes
        if trusted is not None:
            if _digest_matches(path, obj.size, expected, trusted, streamed):
                return True
            raise _mismatch(obj, expected)
        if any(_digest_matches(path, obj.size, expected, p, streamed) for p in guesses):
            return True
    return False


def _digest_matches(
    path: Path,
    size: int,
    expected: Expected,
    part_size: int | None,
    streamed: Streamed | None,
    *,
    reread: bool = True,
) -> bool:
    """Whether the file has the expected digest: from what streamed if it can tell, else (when
    ``reread``) by reading the file."""
    got = streamed.digest(expected, part_size) if streamed is not None else None
    if got is None:
        if not reread or (expected.parts and part_size is None):
            return False
        if expected.parts and uniform_part_size(size, expected.parts, part_size or 0) is None:
            return False
        got = file_digest(path, expected.algorithm, part_size if expected.parts else None)
    return got == expected.digest


def _mismatch(obj: S3Object, expected: Expected) -> IntegrityError:
    return IntegrityError(
        f"downloaded {obj.uri} does not match its {expected.algorithm} in S3",
        hint="retry; if it persists the stored object may be damaged",
        resource=str(obj.uri),
    )


def _part_sizes(
    client: S3Client, obj: S3Object, parts: int, chunksize: int
) -> tuple[int | None, list[int]]:
    """The part size of a multipart object as S3 reports it (HEAD of part 1), or, for stores
    that ignore ``partNumber`` (Ceph RGW), the usual part sizes that fit its size and count."""
    first = head_object(client, obj.uri, PartNumber=1)
    if first.get("PartsCount") == parts:
        reported = uniform_part_size(obj.size, parts, int(first["ContentLength"]))
        if reported is not None:
            return reported, []
    candidates = dict.fromkeys((chunksize, *COMMON_PART_SIZES))
    return None, [p for p in candidates if uniform_part_size(obj.size, parts, p)]
