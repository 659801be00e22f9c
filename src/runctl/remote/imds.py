"""A small IMDSv2 client and the spot-interruption watcher, standard library only.

IMDSv2: ``PUT /latest/api/token`` (header ``X-aws-ec2-metadata-token-ttl-seconds``) returns a
session token sent as ``X-aws-ec2-metadata-token`` on every ``GET /latest/meta-data/...``. The
endpoint is ``$AWS_EC2_METADATA_SERVICE_ENDPOINT`` when set (as botocore honours it), else
``http://169.254.169.254``; timeouts are short because IMDS is local or absent (2 s, or
``$AWS_METADATA_SERVICE_TIMEOUT`` seconds when set, as botocore honours it).

``spot/instance-action`` answers 404 until EC2 decides to interrupt a spot instance, then
``{"action": "terminate|stop|hibernate", "time": "2024-05-01T12:02:00Z"}`` (about two minutes
ahead). ``events/recommendations/rebalance`` gives ``{"noticeTime": ...}`` when the instance is at
elevated risk; it is only logged.
See https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from runctl.job.spec import UTC, parse_time

DEFAULT_ENDPOINT = "http://169.254.169.254"
ENDPOINT_ENV = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
TOKEN_TTL_SECONDS = 21600
TIMEOUT_SECONDS = 2.0
TIMEOUT_ENV = "AWS_METADATA_SERVICE_TIMEOUT"


class ImdsUnavailable(Exception):
    """IMDS did not answer (not on EC2, or blocked)."""


@dataclass(frozen=True)
class SpotNotice:
    """A spot interruption notice: what EC2 will do and when (aware UTC)."""

    action: str
    time: datetime

    def seconds_left(self, now: datetime | None = None) -> float:
        return (self.time - (now or datetime.now(UTC))).total_seconds()


def _timeout_from_env() -> float:
    """``$AWS_METADATA_SERVICE_TIMEOUT`` seconds when it is a positive number, else the default."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV, ""))
    except ValueError:
        return TIMEOUT_SECONDS
    return value if value > 0 else TIMEOUT_SECONDS


class ImdsClient:
    """IMDSv2 reads with a cached session token (refreshed on 401 or expiry)."""

    def __init__(self, endpoint: str | None = None, timeout: float | None = None) -> None:
        base = endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT
        self.endpoint = base.rstrip("/")
        self.timeout = timeout if timeout is not None else _timeout_from_env()
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()

    def _fetch_token(self) -> str:
        request = urllib.request.Request(  # noqa: S310 -- IMDS is http:// by design
            self.endpoint + "/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return str(response.read().decode("utf-8").strip())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ImdsUnavailable(f"IMDS at {self.endpoint} did not answer: {exc}") from exc

    def token(self, refresh: bool = False) -> str:
        with self._lock:
            if refresh or self._token is None or time.monotonic() >= self._token_expires:
                self._token = self._fetch_token()
                self._token_expires = time.monotonic() + TOKEN_TTL_SECONDS - 60
            return self._token

    def get(self, path: str) -> str | None:
        """``GET /latest/<path>``: the body, or None on 404; ImdsUnavailable when unreachable."""
        for attempt in range(2):
            request = urllib.request.Request(  # noqa: S310
                f"{self.endpoint}/latest/{path.lstrip('/')}",
                headers={"X-aws-ec2-metadata-token": self.token(refresh=attempt > 0)},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    return str(response.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code == 401 and attempt == 0:
                    continue  # the token expired or IMDS restarted: fetch a new one
                raise ImdsUnavailable(f"IMDS {path}: HTTP {exc.code}") from exc
            except (urllib.error.URLError, OSError) as exc:
                raise ImdsUnavailable(f"IMDS {path}: {exc}") from exc
        return None

    def meta(self, name: str) -> str | None:
        return self.get(f"meta-data/{name}")

    def instance_id(self) -> str | None:
        return self.meta("instance-id")

    def instance_type(self) -> str | None:
        return self.meta("instance-type")

    def availability_zone(self) -> str | None:
        return self.meta("placement/availability-zone")

    def region(self) -> str | None:
        region = self.meta("placement/region")
        if region:
            return region
        zone = self.availability_zone()
        return zone[:-1] if zone else None

    def lifecycle(self) -> str | None:
        """``spot`` or ``on-demand``."""
        return self.meta("instance-life-cycle")

    def spot_notice(self) -> SpotNotice | None:
        """The pending spot interruption, or None."""
        body = self.meta("spot/instance-action")
        if not body:
            return None
        try:
            data = json.loads(body)
            return SpotNotice(str(data.get("action", "terminate")), parse_time(str(data["time"])))
        except (ValueError, KeyError, TypeError):
            # A notice we cannot parse is still a notice: assume the usual two minutes.
            return SpotNotice("terminate", datetime.now(UTC).replace(microsecond=0))

    def rebalance_recommendation(self) -> str | None:
        """The rebalance recommendation's ``noticeTime``, or None."""
        body = self.meta("events/recommendations/rebalance")
        if not body:
            return None
        try:
            return str(json.loads(body).get("noticeTime") or body)
        except ValueError:
            return body


def probe(client: ImdsClient) -> str | None:
    """The instance id when IMDS answers, else None (not on EC2)."""
    try:
        return client.instance_id()
    except ImdsUnavailable:
        return None


class SpotWatcher(threading.Thread):
    """Polls ``spot/instance-action`` every ``interval`` seconds; calls ``on_notice`` once.

    Rebalance recommendations are passed to ``log`` once. Errors reaching IMDS are logged (once
    per outage) and polling goes on.
    """

    def __init__(
        self,
        client: ImdsClient,
        on_notice: Callable[[SpotNotice], None],
        *,
        interval: float = 2.0,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        super().__init__(name="runctl-spot-watcher", daemon=True)
        self.client = client
        self.on_notice = on_notice
        self.interval = max(0.05, interval)
        self.log = log
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        rebalance_seen = False
        failing = False
        while not self._stop_event.is_set():
            try:
                notice = self.client.spot_notice()
                if not rebalance_seen:
                    recommendation = self.client.rebalance_recommendation()
                    if recommendation:
                        rebalance_seen = True
                        self.log(f"EC2 rebalance recommendation (noticeTime {recommendation})")
                failing = False
            except ImdsUnavailable as exc:
                if not failing:
                    self.log(f"cannot poll IMDS for spot notices: {exc}")
                failing = True
                notice = None
            if notice is not None:
                self.on_notice(notice)
                return
            self._stop_event.wait(self.interval)
