"""Wire-level helpers: recognise an AWS request and build AWS-shaped responses.

``classify`` turns a WSGI environ into a :class:`Request` (service, operation, protocol,
parsed parameters, S3 bucket/key) without consuming a streaming body it does not need.
The ``*_response`` helpers build complete WSGI responses in the exact shape botocore
parses for each protocol (EC2 query, AWS query, JSON 1.1, S3 REST-XML, REST-JSON).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

WsgiEnviron = dict[str, Any]
Headers = list[tuple[str, str]]

_CREDENTIAL_RE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")

#: Protocol names used by the harness (botocore's names, with EC2 split out of "query").
EC2 = "ec2"
QUERY = "query"
JSON = "json"
REST_XML = "rest-xml"
REST_JSON = "rest-json"


@dataclass
class Request:
    """What one HTTP request to the endpoint asks for."""

    service: str
    operation: str
    protocol: str
    region: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    json_body: dict[str, Any] | None = None
    bucket: str | None = None
    key: str | None = None
    method: str = "GET"
    content_length: int = 0
    internal: bool = False


@dataclass
class Response:
    """A complete, buffered WSGI response."""

    status: int
    headers: Headers
    body: bytes

    def __call__(self, start_response: Any) -> Iterable[bytes]:
        start_response(f"{self.status} {_REASONS.get(self.status, 'Unknown')}", self.headers)
        return [self.body]


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def request_id() -> str:
    """A fresh AWS-style request id."""
    return str(uuid.uuid4())


def _read_body(environ: WsgiEnviron) -> bytes:
    """Read the whole request body and put it back so moto can read it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    body: bytes = stream.read(length) if length else stream.read()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("wsgi.input_terminated", None)
    return body


def _s3_operation(
    method: str, bucket: str | None, key: str | None, query: dict[str, Any], copy: bool
) -> str:
    """Name the S3 operation of a path-style request."""
    if bucket is None:
        return "ListBuckets" if method == "GET" else f"{method}Service"
    if key is None:
        subresources = {
            "location": "GetBucketLocation",
            "versioning": "BucketVersioning",
            "uploads": "ListMultipartUploads",
            "delete": "DeleteObjects",
            "policy": "BucketPolicy",
            "lifecycle": "BucketLifecycle",
            "tagging": "BucketTagging",
            "acl": "BucketAcl",
            "cors": "BucketCors",
            "encryption": "BucketEncryption",
            "notification": "BucketNotification",
            "versions": "ListObjectVersions",
            "publicAccessBlock": "PublicAccessBlock",
            "ownershipControls": "BucketOwnershipControls",
        }
        for sub, name in subresources.items():
            if sub in query:
                if name.startswith(("Get", "List", "Delete")):
                    return name
                prefix = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, method)
                return prefix + name
        return {
            "GET": "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects",
            "PUT": "CreateBucket",
            "HEAD": "HeadBucket",
            "DELETE": "DeleteBucket",
            "POST": "PostBucket",
        }.get(method, method)
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if "tagging" in query:
            return "PutObjectTagging"
        if "acl" in query:
            return "PutObjectAcl"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "PostObject"
    if method == "GET":
        if "uploadId" in query:
            return "ListParts"
        if "tagging" in query:
            return "GetObjectTagging"
        return "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return method


def classify(environ: WsgiEnviron, internal_header: str) -> Request:
    """Work out service, operation and parameters of one request.

    Query-protocol and JSON bodies are read (and put back for moto); S3 bodies are not.
    """
    method = environ.get("REQUEST_METHOD", "GET").upper()
    path = environ.get("PATH_INFO", "/")
    query_string = environ.get("QUERY_STRING", "")
    query = parse_qs(query_string, keep_blank_values=True)
    auth = environ.get("HTTP_AUTHORIZATION", "")
    service = ""
    region: str | None = None
    match = _CREDENTIAL_RE.search(auth)
    if match:
        region, service = match.group(1), match.group(2)
    elif "X-Amz-Credential" in query:
        parts = query["X-Amz-Credential"][0].split("/")
        if len(parts) >= 4:
            region, service = parts[2], parts[3]
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    internal = environ.get("HTTP_" + internal_header.upper().replace("-", "_")) == "1"
    req = Request(
        service=service,
        operation="",
        protocol=REST_JSON,
        region=region,
        method=method,
        content_length=length,
        internal=internal,
    )
    target = environ.get("HTTP_X_AMZ_TARGET")
    content_type = environ.get("CONTENT_TYPE", "")
    if path.startswith("/moto-api"):
        req.service, req.operation = "moto-api", path
        return req
    if target:
        req.protocol = JSON
        req.operation = target.rsplit(".", 1)[-1]
        body = _read_body(environ)
        try:
            loaded = json.loads(body or b"{}")
        except ValueError:
            loaded = {}
        req.json_body = loaded if isinstance(loaded, dict) else {}
        return req
    if service == "s3" or (not service and method in ("PUT", "GET", "HEAD", "DELETE")):
        req.service = "s3"
        req.protocol = REST_XML
        parts = path.lstrip("/").split("/", 1)
        req.bucket = unquote(parts[0]) if parts[0] else None
        req.key = unquote(parts[1]) if len(parts) > 1 and parts[1] else None
        copy = "HTTP_X_AMZ_COPY_SOURCE" in environ
        req.operation = _s3_operation(method, req.bucket, req.key, query, copy)
        return req
    if method == "POST" and "x-www-form-urlencoded" in content_type:
        body = _read_body(environ)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        req.params = {k: v[0] for k, v in form.items()}
    elif "Action" in query:
        req.params = {k: v[0] for k, v in query.items()}
    if "Action" in req.params:
        req.operation = req.params["Action"]
        req.protocol = EC2 if service == "ec2" else QUERY
        return req
    req.operation = f"{method} {path}"
    return req


def json_response(payload: dict[str, Any], status: int = 200) -> Response:
    """A JSON-protocol (``application/x-amz-json-1.1``) response."""
    return Response(
        status,
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-RequestId", request_id()),
        ],
        json.dumps(payload).encode(),
    )


def error_response(protocol: str, code: str, message: str, status: int) -> Response:
    """An error in the shape botocore expects for ``protocol``."""
    rid = request_id()
    msg = escape(message)
    if protocol == JSON:
        return Response(
            status,
            [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("x-amzn-RequestId", rid),
            ],
            json.dumps({"__type": code, "message": message}).encode(),
        )
    if protocol == REST_JSON:
        return Response(
            status,
            [
                ("Content-Type", "application/json"),
                ("x-amzn-RequestId", rid),
                ("x-amzn-ErrorType", code),
            ],
            json.dumps({"message": message}).encode(),
        )
    if protocol == EC2:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{msg}</Message>"
            f"</Error></Errors><RequestID>{rid}</RequestID></Response>"
        )
    elif protocol == QUERY:
        kind = "Receiver" if status >= 500 else "Sender"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>"
            f"<Message>{msg}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
        )
    else:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{msg}</Message>"
            f"<RequestId>{rid}</RequestId></Error>"
        )
    return Response(
        status,
        [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid), ("x-amz-request-id", rid)],
        body.encode(),
    )


#: (code, HTTP status, message) of a throttling error per protocol.
THROTTLING: dict[str, tuple[str, int, str]] = {
    EC2: ("RequestLimitExceeded", 503, "Request limit exceeded."),
    QUERY: ("Throttling", 400, "Rate exceeded"),
    JSON: ("ThrottlingException", 400, "Rate exceeded"),
    REST_XML: ("SlowDown", 503, "Please reduce your request rate."),
    REST_JSON: ("ThrottlingException", 429, "Rate exceeded"),
}


def throttling_response(protocol: str) -> Response:
    """The throttling error of ``protocol`` (RequestLimitExceeded for EC2, ...)."""
    code, status, message = THROTTLING[protocol]
    return error_response(protocol, code, message, status)
