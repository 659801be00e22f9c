"""Faults on demand: throttling, spot/on-demand capacity errors, S3 uploads cut off, S3
downloads held mid-body.

A :class:`Faults` registry is consulted by the gateway for every request that is not
harness-internal. Every HTTP request counts as one call: botocore's own retries are
separate requests, so ``throttle("DescribeInstances", times=2)`` is absorbed by a
default client (legacy mode retries 4 times, standard mode twice) and only delays
the call, while ``times`` >= the client's max attempts makes the call fail.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Throttle:
    """The next ``remaining`` calls of ``operation`` (of ``service``, if set) are throttled."""

    operation: str
    service: str | None
    remaining: int


@dataclass
class Capacity:
    """RunInstances fails with InsufficientInstanceCapacity in ``azs`` (None: every AZ), once
    ``after`` matching launches have succeeded (a zone with room for ``after`` instances)."""

    azs: frozenset[str] | None
    spot_only: bool
    instance_types: frozenset[str] | None
    remaining: int | None
    after: int = 0


@dataclass
class S3Cut:
    """The next ``remaining`` PutObject/UploadPart requests under ``key_prefix`` are cut."""

    key_prefix: str
    bucket: str | None
    after_bytes: int
    remaining: int


@dataclass
class S3Hold:
    """Every GetObject under ``key_prefix`` sends ``after_bytes`` of its body, sets ``reached``
    and waits for :meth:`release`; then its connection drops, and so does that of every later
    GetObject under the prefix once it sent ``after_bytes``, until the fault is cleared. While
    it is registered no download of those keys can complete, so a test can act on one that is
    certainly in progress (interrupt it, kill it) without racing it."""

    key_prefix: str
    bucket: str | None
    after_bytes: int
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class Faults:
    """Thread-safe registry of active faults (cleared by ``Cloud.clear_faults``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.throttles: list[Throttle] = []
        self.capacity: list[Capacity] = []
        self.s3_cuts: list[S3Cut] = []
        self.s3_holds: list[S3Hold] = []

    def clear(self) -> None:
        with self._lock:
            self.throttles.clear()
            self.capacity.clear()
            self.s3_cuts.clear()
            for hold in self.s3_holds:
                hold.release()  # no server thread stays blocked past its test
            self.s3_holds.clear()

    def add_throttle(self, operation: str, times: int, service: str | None) -> None:
        with self._lock:
            self.throttles.append(Throttle(operation, service, times))

    def add_capacity(
        self,
        azs: frozenset[str] | None,
        spot_only: bool,
        instance_types: frozenset[str] | None,
        times: int | None,
        after: int = 0,
    ) -> None:
        with self._lock:
            self.capacity.append(Capacity(azs, spot_only, instance_types, times, after))

    def add_s3_cut(self, key_prefix: str, bucket: str | None, after_bytes: int, times: int) -> None:
        with self._lock:
            self.s3_cuts.append(S3Cut(key_prefix, bucket, after_bytes, times))

    def add_s3_hold(self, key_prefix: str, bucket: str | None, after_bytes: int) -> S3Hold:
        hold = S3Hold(key_prefix, bucket, after_bytes)
        with self._lock:
            self.s3_holds.append(hold)
        return hold

    def find_s3_hold(self, bucket: str, key: str) -> S3Hold | None:
        """The hold (not consumed: it applies to every matching download) for this GetObject."""
        with self._lock:
            for hold in self.s3_holds:
                if key.startswith(hold.key_prefix) and hold.bucket in (None, bucket):
                    return hold
        return None

    def take_throttle(self, service: str, operation: str) -> bool:
        """Consume one throttle matching this call; True if the call must be throttled."""
        with self._lock:
            for fault in self.throttles:
                if fault.remaining <= 0 or fault.operation != operation:
                    continue
                if fault.service is not None and fault.service != service:
                    continue
                fault.remaining -= 1
                return True
        return False

    def take_capacity(self, az: str, spot: bool, instance_type: str) -> bool:
        """Consume one capacity fault matching this launch; True if it must fail."""
        with self._lock:
            for fault in self.capacity:
                if fault.remaining is not None and fault.remaining <= 0:
                    continue
                if fault.spot_only and not spot:
                    continue
                if fault.azs is not None and az not in fault.azs:
                    continue
                if fault.instance_types is not None and instance_type not in fault.instance_types:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                return True
        return False

    def take_s3_cut(self, bucket: str, key: str) -> int | None:
        """Consume one cut matching this upload; returns the bytes to read before the cut."""
        with self._lock:
            for fault in self.s3_cuts:
                if fault.remaining <= 0 or not key.startswith(fault.key_prefix):
                    continue
                if fault.bucket is not None and fault.bucket != bucket:
                    continue
                fault.remaining -= 1
                return fault.after_bytes
        return None
