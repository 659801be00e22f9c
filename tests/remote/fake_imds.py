"""A tiny IMDSv2 server for the runner's tests: tokens, a few meta-data keys, spot notices."""

from __future__ import annotations

import json
import secrets
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeImds:
    """Serves ``/latest/api/token`` and ``/latest/meta-data/...`` on 127.0.0.1 (IMDSv2 only)."""

    def __init__(self, instance_id: str = "i-0123456789abcdef0", region: str = "us-east-1"):
        self.instance_id = instance_id
        self.region = region
        self.spot_action: dict[str, str] | None = None
        self.rebalance: dict[str, str] | None = None
        self.requests: list[str] = []
        self.tokens: set[str] = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: str = "") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                fake.requests.append(f"PUT {self.path}")
                if self.path != "/latest/api/token" or not self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"
                ):
                    self._send(400)
                    return
                token = secrets.token_hex(8)
                fake.tokens.add(token)
                self._send(200, token)

            def do_GET(self) -> None:
                fake.requests.append(f"GET {self.path}")
                if self.headers.get("X-aws-ec2-metadata-token") not in fake.tokens:
                    self._send(401)
                    return
                body = fake.metadata().get(self.path.removeprefix("/latest/meta-data/"))
                self._send(404) if body is None else self._send(200, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def metadata(self) -> dict[str, str | None]:
        return {
            "instance-id": self.instance_id,
            "instance-type": "t3.micro",
            "instance-life-cycle": "spot",
            "placement/availability-zone": self.region + "a",
            "placement/region": self.region,
            "spot/instance-action": json.dumps(self.spot_action) if self.spot_action else None,
            "events/recommendations/rebalance": (
                json.dumps(self.rebalance) if self.rebalance else None
            ),
        }

    def interrupt(self, seconds: float = 120, action: str = "terminate") -> None:
        """Publish a spot interruption notice for ``seconds`` from now."""
        when = datetime.now(UTC) + timedelta(seconds=seconds)
        self.spot_action = {"action": action, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
