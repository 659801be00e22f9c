"""Per-instance EC2 instance metadata service (IMDSv2 only) on 127.0.0.1.

One small threaded HTTP server per instance; its base URL is what the instance's
processes get in ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (botocore's IMDS fetcher and
``InstanceMetadataProvider`` honour it). Behaviour:

* ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` (1..21600)
  returns a token; without the header: 400. Every ``GET`` needs a live token in
  ``X-aws-ec2-metadata-token``, else 401 (IMDSv1 is off, as on current AMIs).
* ``/latest/meta-data/``: ``ami-id``, ``ami-launch-index``, ``hostname``,
  ``local-hostname``, ``local-ipv4``, ``instance-id``, ``instance-type``,
  ``instance-life-cycle`` (``spot``/``on-demand``), ``mac``, ``security-groups``,
  ``placement/availability-zone``, ``placement/availability-zone-id``,
  ``placement/region``, ``iam/info``, ``iam/security-credentials/`` (the role name) and
  ``iam/security-credentials/<role>`` (the JSON botocore expects; the keys are real moto
  STS assumed-role keys, so GetCallerIdentity answers with the assumed role),
  ``spot/instance-action`` and ``spot/termination-time`` (404 until an interruption
  notice), ``events/recommendations/rebalance`` (404 until a rebalance
  recommendation). Directories list their entries; a trailing slash on a leaf is
  accepted.
* ``/latest/user-data`` (404 without user data) and
  ``/latest/dynamic/instance-identity/document``.
* ``POST /_harness/shutdown`` and ``POST /_harness/reboot`` (no token) are the harness's
  own hooks behind the sandbox's ``shutdown``/``reboot`` commands.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


class MetadataSource(Protocol):
    """What an IMDS server asks its instance for."""

    def metadata(self) -> dict[str, Any]:
        """The meta-data tree: nested dicts of str -> str | dict (None values are absent)."""

    def user_data(self) -> bytes | None:
        """Decoded user data, or None."""

    def identity_document(self) -> dict[str, Any]:
        """The instance identity document."""

    def harness_action(self, action: str) -> None:
        """Run a ``/_harness/<action>`` hook (``shutdown`` or ``reboot``)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, source: MetadataSource) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.source = source
        self.tokens: dict[str, float] = {}
        self.tokens_lock = threading.Lock()
        self.token_requests = 0

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (botocore's IMDS timeout) is not the server's error.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: str | bytes = b"", content_type: str = "text/plain") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_PUT(self) -> None:
        self._drain()
        if self.path.rstrip("/") != "/latest/api/token":
            self._send(404, "Not Found")
            return
        if self.headers.get("X-Forwarded-For"):
            self._send(403, "Forbidden")
            return
        raw = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        try:
            ttl = int(raw or "")
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= 21600:
            self._send(400, "Bad Request")
            return
        token = secrets.token_urlsafe(40)
        with self.server.tokens_lock:
            self.server.tokens[token] = time.monotonic() + ttl
            self.server.token_requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))
        self.send_header("Content-Length", str(len(token)))
        self.end_headers()
        self.wfile.write(token.encode())

    def do_POST(self) -> None:
        self._drain()
        action = self.path.strip("/").removeprefix("_harness/")
        if self.path.startswith("/_harness/") and action in ("shutdown", "reboot"):
            self._send(200, "ok")
            threading.Thread(
                target=self.server.source.harness_action, args=(action,), daemon=True
            ).start()
            return
        self._send(405, "Method Not Allowed")

    def _authorised(self) -> bool:
        token = self.headers.get("X-aws-ec2-metadata-token")
        if not token:
            return False
        with self.server.tokens_lock:
            expiry = self.server.tokens.get(token)
        return expiry is not None and expiry > time.monotonic()

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._authorised():
            self._send(401, "Unauthorized")
            return
        path = self.path.split("?", 1)[0]
        if not path.startswith("/latest"):
            self._send(404, "Not Found")
            return
        rest = path[len("/latest") :].strip("/")
        source = self.server.source
        if rest == "":
            self._send(200, "dynamic\nmeta-data\nuser-data")
            return
        if rest == "user-data":
            data = source.user_data()
            if data is None:
                self._send(404, "Not Found")
            else:
                self._send(200, data, "application/octet-stream")
            return
        if rest == "dynamic/instance-identity/document":
            self._send(200, json.dumps(source.identity_document(), indent=2), "text/plain")
            return
        if rest == "dynamic":
            self._send(200, "instance-identity/")
            return
        if rest == "dynamic/instance-identity":
            self._send(200, "document")
            return
        if not (rest == "meta-data" or rest.startswith("meta-data/")):
            self._send(404, "Not Found")
            return
        node: Any = source.metadata()
        for part in [p for p in rest.split("/")[1:] if p]:
            if not isinstance(node, dict) or node.get(part) is None:
                self._send(404, "Not Found")
                return
            node = node[part]
        if isinstance(node, dict):
            listing = [
                f"{key}/" if isinstance(value, dict) else key
                for key, value in node.items()
                if value is not None
            ]
            self._send(200, "\n".join(listing))
        else:
            self._send(200, str(node))


class ImdsServer:
    """A running IMDS for one instance. ``endpoint`` is ``http://127.0.0.1:<port>/``."""

    def __init__(self, source: MetadataSource) -> None:
        self._server = _Server(source)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def token_requests(self) -> int:
        """How many session tokens this server has issued."""
        return self._server.token_requests

    def forget_tokens(self) -> None:
        """Drop every issued token, as a restarted IMDS would: old tokens answer 401."""
        with self._server.tokens_lock:
            self._server.tokens.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class StandaloneImds:
    """An IMDS with no EC2 instance behind it, for the runner's own tests (``tests/remote``):
    the same server every harness instance gets, serving metadata the test sets.

    ``spot_action`` (``interrupt()`` sets it) and ``rebalance`` are published like a harness
    instance's notices; ``instance_id`` may be changed to play a replacement instance.
    """

    def __init__(self, instance_id: str = "i-0123456789abcdef0", region: str = "us-east-1"):
        self.instance_id = instance_id
        self.region = region
        self.spot_action: dict[str, str] | None = None
        self.rebalance: dict[str, str] | None = None
        self._server = ImdsServer(self)

    @property
    def endpoint(self) -> str:
        return self._server.endpoint

    @property
    def token_requests(self) -> int:
        return self._server.token_requests

    def forget_tokens(self) -> None:
        self._server.forget_tokens()

    def interrupt(self, seconds: float = 120, action: str = "terminate") -> None:
        """Publish a spot interruption notice for ``seconds`` from now."""
        when = datetime.now(UTC) + timedelta(seconds=seconds)
        self.spot_action = {"action": action, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}

    def metadata(self) -> dict[str, Any]:
        spot = None
        if self.spot_action is not None:
            spot = {
                "instance-action": json.dumps(self.spot_action),
                "termination-time": self.spot_action["time"],
            }
        events = None
        if self.rebalance is not None:
            events = {"recommendations": {"rebalance": json.dumps(self.rebalance)}}
        return {
            "instance-id": self.instance_id,
            "instance-type": "t3.micro",
            "instance-life-cycle": "spot",
            "placement": {"availability-zone": f"{self.region}a", "region": self.region},
            "spot": spot,
            "events": events,
        }

    def user_data(self) -> bytes | None:
        return None

    def identity_document(self) -> dict[str, Any]:
        return {"instanceId": self.instance_id, "region": self.region}

    def harness_action(self, action: str) -> None:
        """No instance to shut down or reboot: the hooks do nothing here."""

    def close(self) -> None:
        self._server.close()
