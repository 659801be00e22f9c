"""Recomputing what S3 stores about an object: ETags, whole and composite checksums."""

from __future__ import annotations

import base64
import hashlib
import zlib
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from runctl.aws.s3 import S3Object
from runctl.aws.s3_integrity import (
    MB,
    Expected,
    IntegrityError,
    expected_digests,
    file_digest,
    matches,
    parse_checksum,
    parse_etag,
    uniform_part_size,
    verified_in_stream,
    verify_download,
)

MD5_HEX = "5d41402abc4b2a76b9719d911017c592"


def crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_parse_etag() -> None:
    assert parse_etag(f'"{MD5_HEX}"') == Expected("MD5", bytes.fromhex(MD5_HEX), 0)
    assert parse_etag(f'"{MD5_HEX}-3"') == Expected("MD5", bytes.fromhex(MD5_HEX), 3)
    assert parse_etag(MD5_HEX) == Expected("MD5", bytes.fromhex(MD5_HEX), 0)
    assert parse_etag('"not-an-md5"') is None
    assert parse_etag(None) is None


def test_parse_checksum_whole_and_composite() -> None:
    digest = crc32(b"abc")
    assert parse_checksum("CRC32", b64(digest), 0, None) == Expected("CRC32", digest, 0)
    # AWS marks composite checksums with -N ...
    assert parse_checksum("CRC32", b64(digest) + "-4", 4, None) == Expected("CRC32", digest, 4)
    # ... some stores do not: a multipart ETag then means composite, unless FULL_OBJECT.
    assert parse_checksum("CRC32", b64(digest), 4, "COMPOSITE") == Expected("CRC32", digest, 4)
    assert parse_checksum("CRC32", b64(digest), 4, "FULL_OBJECT") == Expected("CRC32", digest, 0)
    assert parse_checksum("CRC32", "!!!", 0, None) is None


def test_expected_digests_prefers_checksums_and_skips_kms_etags() -> None:
    head = {"ETag": f'"{MD5_HEX}"', "ChecksumSHA256": b64(b"x" * 32), "ChecksumCRC32": b64(b"abcd")}
    assert [e.algorithm for e in expected_digests(head)] == ["CRC32", "SHA256", "MD5"]
    kms = {"ETag": f'"{MD5_HEX}"', "ServerSideEncryption": "aws:kms"}
    assert expected_digests(kms) == []
    dsse = {"ETag": f'"{MD5_HEX}"', "ServerSideEncryption": "aws:kms:dsse"}
    assert expected_digests(dsse) == []
    assert expected_digests({"ETag": '"opaque"'}) == []


def test_file_digest_whole_and_by_parts(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    path = tmp_path / "f"
    path.write_bytes(data)
    parts = [data[i : i + 100_000] for i in range(0, len(data), 100_000)]
    assert file_digest(path, "CRC32") == crc32(data)
    assert file_digest(path, "SHA256") == hashlib.sha256(data).digest()
    composite = zlib.crc32(b"".join(crc32(p) for p in parts)).to_bytes(4, "big")
    assert file_digest(path, "CRC32", 100_000) == composite
    etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).digest()
    assert file_digest(path, "MD5", 100_000) == etag
    assert matches(path, Expected("MD5", etag, len(parts)), 100_000)
    assert not matches(path, Expected("MD5", etag, len(parts)), 50_000)
    assert matches(path, Expected("CRC32", crc32(data), 0), None)
    with pytest.raises(ValueError, match="part size"):
        matches(path, Expected("MD5", etag, len(parts)), None)


def test_file_digest_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert file_digest(path, "MD5") == hashlib.md5(b"").digest()
    assert file_digest(path, "CRC32") == crc32(b"")


def test_uniform_part_size() -> None:
    assert uniform_part_size(20, 3, 8) == 8
    assert uniform_part_size(24, 3, 8) == 8
    assert uniform_part_size(25, 3, 8) is None
    assert uniform_part_size(16, 3, 8) is None
    assert uniform_part_size(10, 0, 8) is None


def test_verified_in_stream_only_for_single_gets_of_single_part_checksummed_objects() -> None:
    single = f'"{MD5_HEX}"'
    assert verified_in_stream(10, single, ("CRC32",), threshold=100)
    assert not verified_in_stream(100, single, ("CRC32",), threshold=100)  # ranged GETs
    assert not verified_in_stream(10, f'"{MD5_HEX}-2"', ("CRC32",), threshold=100)
    assert not verified_in_stream(10, single, ("CRC64NVME",), threshold=100)
    assert not verified_in_stream(10, single, (), threshold=100)


def test_a_good_download_of_a_dsse_kms_object_is_not_called_corrupt(tmp_path: Path) -> None:
    # DSSE-KMS objects have an ETag that is not their MD5; S3 says how the object is encrypted
    # only in HeadObject, which moto cannot be made to answer with a foreign ETag: stubbed.
    content = b"weights" * 1000
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    opaque_etag = '"' + hashlib.md5(b"not the content").hexdigest() + '"'
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    obj = S3Object("b", "model.bin", len(content), datetime.now(UTC), etag=opaque_etag)
    head = {
        "ETag": opaque_etag,
        "ContentLength": len(content),
        "ServerSideEncryption": "aws:kms:dsse",
    }
    with Stubber(client) as stub:
        stub.add_response("head_object", head)
        assert verify_download(client, obj, path, threshold=8 * MB, chunksize=8 * MB) is False
    with Stubber(client) as stub:
        stub.add_response("head_object", {**head, "ServerSideEncryption": "AES256"})
        with pytest.raises(IntegrityError):
            verify_download(client, obj, path, threshold=8 * MB, chunksize=8 * MB)
