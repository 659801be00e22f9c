"""Presigned S3 GET URLs that work on real AWS: SigV4, signed for the bucket's own region.

botocore presigns with SigV2 by default in the regions that still take it, and buckets made after
June 2020 (and SSE-KMS objects) refuse SigV2; and it signs for the client's region, so a bucket in
another region answers the URL with an error. A client in the bucket's region would do, but a
botocore client does not hand out its credentials to build one. So this module teaches the given
client, through three documented botocore events, to presign for a bucket the way botocore's own
region redirector sends normal requests there: ``before-endpoint-resolution`` puts the bucket's
region into the endpoint, ``choose-signer`` picks SigV4, and ``before-sign`` signs for that
region. Only presign requests for buckets whose region was given are affected.
See https://docs.aws.amazon.com/AmazonS3/latest/userguide/ShareObjectPreSignedURL.html
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runctl.aws.errors import aws_errors

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SIGV4_PRESIGN = "s3v4"
_CONTEXT_KEY = "runctl_presign_region"


class _PresignInRegion:
    """Event handlers that make presign requests for ``bucket`` SigV4, signed for ``region``."""

    def __init__(self, bucket: str, region: str) -> None:
        self.bucket = bucket
        self.region = region

    def endpoint(self, builtins: dict[str, Any], params: dict[str, Any], **kwargs: Any) -> None:
        context = kwargs.get("context") or {}
        if context.get("is_presign_request") and params.get("Bucket") == self.bucket:
            builtins["AWS::Region"] = self.region
            builtins["AWS::S3::UseGlobalEndpoint"] = False
            context[_CONTEXT_KEY] = self.region

    @staticmethod
    def signer(context: dict[str, Any] | None = None, **_: Any) -> str | None:
        return SIGV4_PRESIGN if (context or {}).get("is_presign_request") else None

    @staticmethod
    def before_sign(request: Any, **_: Any) -> None:
        region = request.context.get(_CONTEXT_KEY)
        if region:
            request.context.setdefault("signing", {})["region"] = region


def presign_get_object(
    client: S3Client, bucket: str, key: str, *, region: str, expires: int
) -> str:
    """A SigV4 GET URL for ``s3://bucket/key``, signed for ``region`` (the bucket's), valid for
    ``expires`` seconds. The endpoint is the client's own (``AWS_ENDPOINT_URL`` included).

    The handlers live only for this call (each call has its own, so concurrent presigns on one
    client do not disturb each other) and act only on this bucket's presign requests.
    """
    handlers = _PresignInRegion(bucket, region)
    unique = f"runctl-presign-{uuid.uuid4().hex}"
    registrations: tuple[tuple[str, Callable[..., Any]], ...] = (
        ("before-endpoint-resolution.s3", handlers.endpoint),
        ("choose-signer.s3.GetObject", handlers.signer),
        ("before-sign.s3.GetObject", handlers.before_sign),
    )
    events = client.meta.events
    for event, handler in registrations:
        events.register(event, handler, unique_id=f"{unique}-{event}")
    try:
        with aws_errors("presign GetObject", f"s3://{bucket}/{key}"):
            url: str = client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
            )
    finally:
        for event, _ in registrations:
            events.unregister(event, unique_id=f"{unique}-{event}")
    return url
