"""What AWS refuses and moto accepts: the gateway's refusals, on by default for every test.

For every request that is not harness-internal, :meth:`Strict.refuse` answers with AWS's error
(shape and status of the service's protocol) when AWS would refuse it:

* **SigV2** S3 requests (``AWSAccessKeyId``/``Signature`` query or ``Authorization: AWS ...``):
  ``InvalidRequest`` 400, "Please use AWS4-HMAC-SHA256", as for buckets and regions that only
  take SigV4 (every region opened since 2014, buckets since June 2020, SSE-KMS objects).
* A **SigV4 presigned** S3 URL signed for another region than the bucket's:
  ``AuthorizationQueryParametersError`` 400 ("the region 'x' is wrong; expecting 'y'").
* **Instance-role credentials** (the keys an instance got from its IMDS) outside the role's
  policies: ``AccessDenied`` 403 (S3), ``UnauthorizedOperation`` 403 (EC2), ``AccessDenied``
  (others); see :mod:`tests.cloud.iam_authz`.
* **StopInstances** of a spot instance of a one-time request: ``UnsupportedOperation`` 400.
* **RunInstances** with user data over 16 KB (raw, before base64): ``InvalidParameterValue``.
* **RunInstances** naming an instance profile created (``CreateInstanceProfile``) or given its
  role (``AddRoleToInstanceProfile``) less than ``Cloud.profile_propagation_delay`` seconds ago
  (default 0: set it to test propagation): ``InvalidParameterValue`` with EC2's two wordings,
  "Invalid IAM Instance Profile name" / "... has no associated IAM Roles".
* **AttachVolume** of a volume that is attached already (``VolumeInUse``), in another zone
  than the instance (``InvalidVolume.ZoneMismatch``), to an instance neither running nor stopped
  (``IncorrectState``), or as a device name the instance uses (``InvalidParameterValue``).
* **SendCommand** whose parameters with the ``AWS-RunShellScript`` document exceed SSM's 64 KB
  document limit: ``InvalidParameters`` 400.

What the harness still cannot refuse: bucket policies, SCPs and permission boundaries, KMS key
policies, IAM for the tests' own ``testing`` keys, quotas other than the injected faults, and
AWS's per-key partial failures of DeleteObjects (a denied key fails the whole request here).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from tests.cloud import iam_authz
from tests.cloud.protocol import EC2, JSON, QUERY, REST_XML, Request, Response, error_response

if TYPE_CHECKING:
    from tests.cloud.harness import Cloud

USER_DATA_LIMIT = 16 * 1024
SSM_DOCUMENT_LIMIT = 64 * 1024
#: The AWS-RunShellScript document itself counts against the 64 KB (its JSON is ~1.4 KB).
RUN_SHELL_SCRIPT_DOCUMENT_BYTES = 1_400
_ACCESS_KEY_RE = re.compile(r"Credential=([^/,\s]+)/")


class Strict:
    """The refusals, and the little state they need (profile creation times)."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self._lock = threading.Lock()
        self._profile_changed: dict[str, tuple[float, str]] = {}

    def reset(self) -> None:
        with self._lock:
            self._profile_changed.clear()

    def refuse(self, req: Request, environ: dict[str, Any]) -> Response | None:
        """AWS's error for this request, or None when AWS would take it."""
        if req.service == "s3" or not req.service:
            refusal = self._signature(req, environ)
            if refusal is not None:
                return refusal
        refusal = self._iam(req, environ)
        if refusal is not None:
            return refusal
        if req.service == "ec2" and req.operation == "RunInstances":
            return self._user_data(req) or self._profile_visible(req)
        if req.service == "ec2" and req.operation == "StopInstances":
            return self._one_time_spot(req)
        if req.service == "ec2" and req.operation == "AttachVolume":
            return self._attach_volume(req)
        if req.service == "ssm" and req.operation == "SendCommand":
            return self._command_size(req)
        if req.service == "iam" and req.operation in (
            "CreateInstanceProfile",
            "AddRoleToInstanceProfile",
        ):
            self._note_profile(req)
        return None

    # -- signatures ----------------------------------------------------------------------------

    def _signature(self, req: Request, environ: dict[str, Any]) -> Response | None:
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if ("Signature" in query and "AWSAccessKeyId" in query) or auth.startswith("AWS "):
            return error_response(
                REST_XML,
                "InvalidRequest",
                "The authorization mechanism you have provided is not supported. "
                "Please use AWS4-HMAC-SHA256.",
                400,
            )
        credential = (query.get("X-Amz-Credential") or [""])[0].split("/")
        if len(credential) >= 3 and req.bucket:
            expected = self._bucket_region(req.bucket)
            if expected is not None and credential[2] != expected:
                return error_response(
                    REST_XML,
                    "AuthorizationQueryParametersError",
                    "Error parsing the X-Amz-Credential parameter; the region "
                    f"'{credential[2]}' is wrong; expecting '{expected}'",
                    400,
                )
        return None

    def _bucket_region(self, bucket: str) -> str | None:
        try:
            return str(self.cloud.s3_backend().get_bucket(bucket).region_name)
        except Exception:
            return None

    # -- IAM for instance roles ----------------------------------------------------------------

    def _iam(self, req: Request, environ: dict[str, Any]) -> Response | None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        match = _ACCESS_KEY_RE.search(auth)
        key = match.group(1) if match else None
        if key is None:
            credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential")
            key = credential[0].split("/")[0] if credential else None
        owner = self.cloud.role_keys.get(key or "")
        if owner is None:
            return None
        instance_id, role_name = owner
        documents = iam_authz.role_documents(self.cloud, role_name)
        for check in iam_authz.checks_for(self.cloud, req, environ):
            if not iam_authz.allowed(documents, check):
                return _denied(req, self.cloud, role_name, instance_id, check)
        return None

    # -- EC2 ------------------------------------------------------------------------------------

    def _user_data(self, req: Request) -> Response | None:
        encoded = req.params.get("UserData")
        if not encoded:
            return None
        try:
            size = len(base64.b64decode(encoded))
        except (binascii.Error, ValueError):
            size = len(encoded)
        if size <= USER_DATA_LIMIT:
            return None
        return error_response(
            EC2,
            "InvalidParameterValue",
            f"User data is limited to {USER_DATA_LIMIT} bytes (got {size})",
            400,
        )

    def _attach_volume(self, req: Request) -> Response | None:
        """What EC2 refuses of AttachVolume and moto lets through (moto moves an attached volume
        and overwrites a used device name silently)."""
        backend = self.cloud.ec2_backend()
        volume_id, instance_id = req.params.get("VolumeId", ""), req.params.get("InstanceId", "")
        device = req.params.get("Device", "")
        try:
            volume = backend.get_volume(volume_id)
            instance = backend.get_instance(instance_id)
        except Exception:
            return None  # moto answers the not-found errors itself
        if volume.attachment is not None:
            return error_response(
                EC2, "VolumeInUse", f"{volume_id} is already attached to an instance", 400
            )
        if volume.zone.name != instance._placement.zone:
            return error_response(
                EC2,
                "InvalidVolume.ZoneMismatch",
                f"The volume '{volume_id}' is not in the same availability zone as instance "
                f"'{instance_id}'",
                400,
            )
        if instance.state not in ("running", "stopped"):
            return error_response(
                EC2,
                "IncorrectState",
                f"Instance '{instance_id}' is not 'running' or 'stopped'.",
                400,
            )
        if device in instance.block_device_mapping:
            return error_response(
                EC2,
                "InvalidParameterValue",
                f"Invalid value '{device}' for unixDevice. Attachment point {device} is already "
                "in use",
                400,
            )
        return None

    def _note_profile(self, req: Request) -> None:
        name = req.params.get("InstanceProfileName")
        if not name:
            return
        what = "role" if req.operation == "AddRoleToInstanceProfile" else "profile"
        with self._lock:
            self._profile_changed[name] = (time.monotonic(), what)

    def _profile_visible(self, req: Request) -> Response | None:
        delay = self.cloud.profile_propagation_delay
        name = req.params.get("IamInstanceProfile.Name")
        arn = req.params.get("IamInstanceProfile.Arn")
        if delay <= 0 or not (name or arn):
            return None
        profile = name or str(arn).rsplit("/", 1)[-1]
        with self._lock:
            changed = self._profile_changed.get(profile)
        if changed is None or time.monotonic() - changed[0] >= delay:
            return None
        if changed[1] == "role":
            shown = arn or f"arn:aws:iam::{self.cloud.account_id}:instance-profile/{profile}"
            message = f'IAM Instance Profile "{shown}" has no associated IAM Roles'
        else:
            field_name = "iamInstanceProfile.name" if name else "iamInstanceProfile.arn"
            kind = "name" if name else "ARN"
            message = (
                f"Value ({name or arn}) for parameter {field_name} is invalid. "
                f"Invalid IAM Instance Profile {kind}"
            )
        return error_response(EC2, "InvalidParameterValue", message, 400)

    def _one_time_spot(self, req: Request) -> Response | None:
        backend = self.cloud.ec2_backend()
        for key, instance_id in sorted(req.params.items()):
            if not key.startswith("InstanceId."):
                continue
            try:
                instance = backend.get_instance(instance_id)
            except Exception:
                continue
            if instance.lifecycle != "spot" or _spot_request_type(backend, instance) != "one-time":
                continue
            return error_response(
                EC2,
                "UnsupportedOperation",
                f"You can't stop the Spot Instance '{instance_id}' because it is associated "
                "with a one-time Spot Instance request. You can only stop Spot Instances "
                "associated with persistent Spot Instance requests.",
                400,
            )
        return None

    # -- SSM ------------------------------------------------------------------------------------

    def _command_size(self, req: Request) -> Response | None:
        parameters = (req.json_body or {}).get("Parameters") or {}
        size = RUN_SHELL_SCRIPT_DOCUMENT_BYTES + len(json.dumps(parameters).encode())
        if size <= SSM_DOCUMENT_LIMIT:
            return None
        return error_response(
            JSON,
            "InvalidParameters",
            f"The document with its parameters is {size} bytes; the limit is "
            f"{SSM_DOCUMENT_LIMIT} bytes.",
            400,
        )


def _spot_request_type(backend: Any, instance: Any) -> str:
    """``one-time`` unless moto knows the instance's spot request as persistent."""
    for request in getattr(backend, "spot_instance_requests", {}).values():
        if getattr(request, "instance", None) is instance:
            return str(getattr(request, "type", "one-time") or "one-time")
    return "one-time"


def _denied(req: Request, cloud: Cloud, role: str, instance_id: str, check: Any) -> Response:
    user = f"arn:aws:sts::{cloud.account_id}:assumed-role/{role}/{instance_id}"
    message = (
        f"User: {user} is not authorized to perform: {check.action} on resource: "
        f'"{check.resource}" because no identity-based policy allows the {check.action} action'
    )
    if req.service == "s3":
        return error_response(REST_XML, "AccessDenied", message, 403)
    if req.service == "ec2":
        return error_response(EC2, "UnauthorizedOperation", message, 403)
    protocol = req.protocol if req.protocol in (JSON, QUERY) else QUERY
    code = "AccessDeniedException" if protocol == JSON else "AccessDenied"
    return error_response(protocol, code, message, 403 if protocol == QUERY else 400)
