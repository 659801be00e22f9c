"""WSGI middleware in front of moto's server app: log, inject faults, serve SSM, watch EC2.

For every request the :class:`Gateway` classifies the call (service from the SigV4
credential scope, operation from ``Action=``/``X-Amz-Target``/the S3 method and path),
records it in ``Cloud.request_log``, applies faults and then refuses what AWS would refuse
(:mod:`tests.cloud.strict`), unless the request carries the harness-internal header (the
harness's own helper clients). Then:

* SSM Run Command operations are answered by :class:`tests.cloud.ssm.SsmService`, IAM's
  SimulatePrincipalPolicy by :func:`tests.cloud.iam_authz.simulate_principal_policy`,
  DescribeSpotPriceHistory for seeded histories by :mod:`tests.cloud.spot_prices`, Service
  Quotas' GetServiceQuota for quotas a test set by :mod:`tests.cloud.quotas`;
* EC2 calls go to moto and, when moto answers 2xx, ``Cloud.reconcile`` boots instances
  that are now running and powers off those that stopped or terminated (so RunInstances,
  StartInstances, StopInstances, TerminateInstances, CreateFleet, ... all drive the
  sandboxes); RebootInstances reboots the sandboxes (processes killed, no user data);
* ECR answers are rewritten to name the linked local registry (``Cloud.link_ecr``);
* everything else goes to moto untouched.

The S3 cut fault reads ``after_bytes`` of the request body, then shuts the connection
down (and makes its final close a TCP reset): the client sees a dropped connection
without a response (botocore: ``ConnectionClosedError``/``ConnectionError``, which it
retries). The S3 hold fault lets moto answer a GetObject, sends ``after_bytes`` of the body,
blocks until the test releases it, then drops the connection the same way.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from tests.cloud import iam_authz, protocol
from tests.cloud.faults import S3Hold
from tests.cloud.protocol import EC2, Request, Response, WsgiEnviron, classify, error_response
from tests.cloud.ssm import HANDLED as SSM_HANDLED

if TYPE_CHECKING:
    from tests.cloud.harness import Cloud

INTERNAL_HEADER = "x-runctl-harness"
StartResponse = Callable[..., Any]
WsgiApp = Callable[[WsgiEnviron, StartResponse], Iterable[bytes]]


class Gateway:
    """The harness's WSGI app: wraps moto's ``DomainDispatcherApplication``."""

    def __init__(self, cloud: Cloud, moto_app: WsgiApp) -> None:
        self.cloud = cloud
        self.moto_app = moto_app

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        req = classify(environ, INTERNAL_HEADER)
        if req.service == "moto-api":
            return self.moto_app(environ, start_response)
        if not req.internal:
            self.cloud.record(req)
            fault = self._fault(req, environ)
            if fault is not None:
                return fault(start_response)
            refusal = self.cloud.strict.refuse(req, environ)
            if refusal is not None:
                return refusal(start_response)
            hold = self._hold(req)
            if hold is not None:
                return self._held(environ, start_response, hold)
        if req.service == "iam" and req.operation == "SimulatePrincipalPolicy":
            return iam_authz.simulate_principal_policy(self.cloud, req.params)(start_response)
        if req.service == "ssm" and req.operation in SSM_HANDLED:
            return self.cloud.ssm.handle(req.operation, req.json_body or {})(start_response)
        if (
            req.service == "ec2"
            and req.operation == "DescribeSpotPriceHistory"
            and self.cloud.spot_prices.answers(req)
        ):
            return self.cloud.spot_prices.describe(req)(start_response)
        if self.cloud.service_quotas.answers(req):
            return self.cloud.service_quotas.describe(req)(start_response)
        if req.service == "ec2":
            return self._buffered(environ, start_response, lambda body: self._after_ec2(req, body))
        if req.service == "ecr" and self.cloud.ecr_registry:
            return self._buffered(environ, start_response, self._rewrite_ecr)
        return self.moto_app(environ, start_response)

    # -- faults --------------------------------------------------------------------------

    def _fault(self, req: Request, environ: WsgiEnviron) -> Response | None:
        faults = self.cloud.faults
        if faults.take_throttle(req.service, req.operation):
            return protocol.throttling_response(req.protocol)
        if req.service == "ec2" and req.operation == "RunInstances":
            return self._capacity(req)
        if (
            req.service == "s3"
            and req.operation in ("PutObject", "UploadPart")
            and req.bucket
            and req.key
        ):
            after = faults.take_s3_cut(req.bucket, req.key)
            if after is not None:
                self._cut(environ, after)
        return None

    def _hold(self, req: Request) -> S3Hold | None:
        if req.service == "s3" and req.operation == "GetObject" and req.bucket and req.key:
            return self.cloud.faults.find_s3_hold(req.bucket, req.key)
        return None

    def _held(
        self, environ: WsgiEnviron, start_response: StartResponse, hold: S3Hold
    ) -> Iterable[bytes]:
        result = self.moto_app(environ, start_response)

        def body() -> Iterable[bytes]:
            sent = 0
            try:
                for chunk in result:
                    room = hold.after_bytes - sent
                    if len(chunk) < room:
                        sent += len(chunk)
                        yield chunk
                        continue
                    yield chunk[:room]
                    hold.reached.set()
                    hold.released.wait()
                    self._drop_connection(environ)
                    raise ConnectionResetError("runctl harness: S3 download held, then dropped")
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

        return body()

    def _capacity(self, req: Request) -> Response | None:
        params = req.params
        template = self._template_data(params)
        market = params.get("InstanceMarketOptions.MarketType") or (
            template.get("InstanceMarketOptions", {}).get("MarketType")
        )
        spot = market == "spot"
        instance_type = params.get("InstanceType") or template.get("InstanceType") or "m1.small"
        az = params.get("Placement.AvailabilityZone") or template.get("Placement", {}).get(
            "AvailabilityZone"
        )
        subnet = params.get("SubnetId") or params.get("NetworkInterface.1.SubnetId")
        if not az and subnet:
            try:
                az = self.cloud.ec2_backend().get_subnet(subnet).availability_zone
            except Exception:
                az = None
        az = az or self.cloud.region + "a"
        if not self.cloud.faults.take_capacity(az, spot, instance_type):
            return None
        if spot:
            message = "There is no Spot capacity available that matches your request."
        else:
            others = [z for z in self.cloud.availability_zones() if z != az]
            message = (
                f"We currently do not have sufficient {instance_type} capacity in the "
                f"Availability Zone you requested ({az}). Our system will be working on "
                f"provisioning additional capacity. You can currently get {instance_type} "
                "capacity by not specifying an Availability Zone in your request or choosing "
                f"{', '.join(others)}."
            )
        return error_response(EC2, "InsufficientInstanceCapacity", message, 500)

    def _template_data(self, params: dict[str, str]) -> dict[str, Any]:
        ident = params.get("LaunchTemplate.LaunchTemplateId")
        name = params.get("LaunchTemplate.LaunchTemplateName")
        if not ident and not name:
            return {}
        arg = {
            "LaunchTemplateId": ident,
            "LaunchTemplateName": name,
            "Version": params.get("LaunchTemplate.Version"),
        }
        try:
            data = self.cloud.ec2_backend()._get_template_from_args(arg).data
        except Exception:
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _cut(environ: WsgiEnviron, after: int) -> None:
        stream = environ["wsgi.input"]
        remaining = after
        while remaining > 0:
            chunk = stream.read(min(65536, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
        Gateway._drop_connection(environ)
        raise ConnectionResetError("runctl harness: S3 upload cut")

    @staticmethod
    def _drop_connection(environ: WsgiEnviron) -> None:
        """Shut the client's connection down, its final close a TCP reset."""
        sock = environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- buffered responses ------------------------------------------------------------

    def _buffered(
        self,
        environ: WsgiEnviron,
        start_response: StartResponse,
        after: Callable[[bytes], bytes | None],
    ) -> Iterable[bytes]:
        """Run moto, then ``after(body)`` on a 2xx answer (it may return a new body)."""
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        result = self.moto_app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status: str = captured.get("status", "500 Internal Server Error")
        headers: list[tuple[str, str]] = list(captured.get("headers", []))
        if status.startswith("2"):
            replaced = after(body)
            if replaced is not None and replaced != body:
                body = replaced
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    def _after_ec2(self, req: Request, body: bytes) -> None:
        self.cloud.after_ec2(req)

    def _rewrite_ecr(self, body: bytes) -> bytes:
        """Point ECR registry URLs at the linked local registry (``Cloud.link_ecr``)."""
        address = self.cloud.ecr_registry or ""
        host = f"{self.cloud.account_id}.dkr.ecr.{self.cloud.region}.amazonaws.com"
        return body.replace(f"https://{host}".encode(), f"http://{address}".encode()).replace(
            host.encode(), address.encode()
        )
