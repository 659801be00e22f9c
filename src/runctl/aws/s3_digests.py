"""Hash object bodies while s3transfer streams them, so a download is verified without reading
the file again: the digest of a single GET, or of each ranged GET of a multipart download (which
are the parts' digests when the ranges line up with the parts the object was uploaded in).

Two of the client's botocore events carry this: ``before-parameter-build`` (which sees the
call's parameters) tags the requests for watched keys, ``after-call`` wraps their response
body. Part of the instance-shipped S3 engine: standard library and botocore's event hooks only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runctl.aws.s3_integrity import Expected, Hasher, new_hasher

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_TAG = "runctl.stream_digest"


@dataclass(frozen=True)
class Streamed:
    """Digests of one object's bodies as they streamed, by range start.

    ``range_size`` is the length of each ranged GET (the object's size for a single GET).
    """

    algorithm: str
    size: int
    range_size: int
    digests: Mapping[int, bytes]

    def digest(self, expected: Expected, part_size: int | None) -> bytes | None:
        """The digest ``expected`` is about, if what streamed can give it; else None."""
        if expected.algorithm != self.algorithm or not self.digests:
            return None
        if not expected.parts:
            single_get = self.range_size >= self.size and set(self.digests) == {0}
            return self.digests[0] if single_get else None
        starts = range(0, self.size, self.range_size)
        if part_size != self.range_size or set(self.digests) != set(starts):
            return None
        outer = new_hasher(self.algorithm)
        for start in starts:
            outer.update(self.digests[start])
        return outer.digest()


class _HashingBody:
    """A response body that hashes what is read from it and reports the digest at its end."""

    def __init__(self, body: Any, hasher: Hasher, done: Callable[[bytes], None]) -> None:
        self._body = body
        self._hasher = hasher
        self._done = done

    def read(self, amt: int | None = None) -> bytes:
        data: bytes = self._body.read(amt)
        if data:
            self._hasher.update(data)
        else:
            self._done(self._hasher.digest())
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)


class StreamDigests:
    """While entered, hashes the GetObject bodies of the watched objects with the algorithm each
    is watched for (``CRC32``, ``MD5`` ...). A body read only in part (a cut connection) is not
    recorded; the complete body of the retry is."""

    def __init__(self, client: S3Client) -> None:
        self._events = client.meta.events
        self._watch: dict[tuple[str, str], str] = {}
        self._found: dict[tuple[str, str], dict[int, bytes]] = {}
        self._lock = threading.Lock()
        self._ids = (f"runctl-digest-before-{id(self)}", f"runctl-digest-after-{id(self)}")

    def __enter__(self) -> StreamDigests:
        self._events.register(
            "before-parameter-build.s3.GetObject", self._tag, unique_id=self._ids[0]
        )
        self._events.register("after-call.s3.GetObject", self._wrap, unique_id=self._ids[1])
        return self

    def __exit__(self, *exc: object) -> None:
        self._events.unregister("before-parameter-build.s3.GetObject", unique_id=self._ids[0])
        self._events.unregister("after-call.s3.GetObject", unique_id=self._ids[1])

    def watch(self, bucket: str, key: str, algorithm: str) -> None:
        """Hash the bodies of ``bucket/key`` with ``algorithm`` from now on."""
        with self._lock:
            self._watch[(bucket, key)] = algorithm

    def _tag(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        key = (params.get("Bucket", ""), params.get("Key", ""))
        if key in self._watch:
            context[_TAG] = (key, _range_start(params.get("Range")))

    def _wrap(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        tag = context.get(_TAG)
        if tag is None or parsed.get("Body") is None or "Error" in parsed:
            return
        key, start = tag

        def record(digest: bytes) -> None:
            with self._lock:
                self._found.setdefault(key, {})[start] = digest

        parsed["Body"] = _HashingBody(parsed["Body"], new_hasher(self._watch[key]), record)

    def streamed(self, bucket: str, key: str, size: int, range_size: int) -> Streamed | None:
        """What streamed for one object (forgotten afterwards), or None if it is not watched."""
        with self._lock:
            algorithm = self._watch.pop((bucket, key), None)
            digests = self._found.pop((bucket, key), {})
        if algorithm is None:
            return None
        return Streamed(algorithm, size, range_size, digests)


def _range_start(header: str | None) -> int:
    """The first byte of a ``bytes=START-END`` Range header (0 without one)."""
    if not header or not header.startswith("bytes="):
        return 0
    return int(header[len("bytes=") :].split("-", 1)[0] or 0)
