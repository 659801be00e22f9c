"""IAM for instance-role credentials: which action on which resource a request is, and whether
the role's policies allow it.

moto can enforce IAM only for the whole server (``INITIAL_NO_AUTH_ACTION_COUNT``), which would
also bind the tests' own ``testing`` keys, and it does not evaluate conditions such as
``s3:prefix``. The harness therefore checks, in the gateway, only requests signed with the
credentials an instance got from its IMDS (:attr:`Cloud.role_keys`), against the role's inline
and attached managed policies, the way AWS evaluates identity policies: an explicit Deny wins,
otherwise some Allow must match action, resource and every condition. Supported conditions:
``StringEquals``, ``StringNotEquals``, ``StringLike``, ``StringNotLike`` (and their ``IfExists``
forms); any other operator does not match (so its statement does not allow).

Request -> (action, resources, context): S3 object operations map to their IAM actions
(HeadObject is ``s3:GetObject``, UploadPart ``s3:PutObject``, ...) on
``arn:aws:s3:::bucket/key``; listings are ``s3:ListBucket`` on the bucket with ``s3:prefix``;
EC2 instance actions name each ``InstanceId.N`` with ``aws:ResourceTag/*`` from its tags;
RunInstances needs ``ec2:RunInstances`` on the instance (``aws:RequestTag/*`` from its tag
specification) and on the image, ``ec2:CreateTags`` with ``ec2:CreateAction=RunInstances`` when
it tags, and ``iam:PassRole`` (``iam:PassedToService=ec2.amazonaws.com``) of the profile's role; STS
GetCallerIdentity needs no permission; anything else is ``<service>:<Operation>`` on ``*``.

:func:`simulate_principal_policy` serves IAM's SimulatePrincipalPolicy (which moto lacks) with the
same evaluator, so runctl's pre-start permission check meets the policies the instance will.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from tests.cloud.protocol import QUERY, Request, Response, error_response, request_id

if TYPE_CHECKING:
    from tests.cloud.harness import Cloud

S3_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "DeleteObject": "s3:DeleteObject",
    "GetObjectTagging": "s3:GetObjectTagging",
    "PutObjectTagging": "s3:PutObjectTagging",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "GetBucketLocation": "s3:GetBucketLocation",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "ListObjectVersions": "s3:ListBucketVersions",
}
EC2_INSTANCE_ACTIONS = frozenset(
    {"StopInstances", "StartInstances", "TerminateInstances", "RebootInstances"}
)
FREE_ACTIONS = frozenset({"sts:GetCallerIdentity"})
_KEY_RE = re.compile(r"<Key>(.*?)</Key>", re.DOTALL)


@dataclass
class Check:
    """One (action, resource) pair a request needs, with its condition context."""

    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)


def checks_for(cloud: Cloud, req: Request, environ: dict[str, Any]) -> list[Check]:
    """What the request needs permission for (empty: nothing)."""
    if req.service == "s3":
        return _s3_checks(req, environ)
    action = f"{req.service}:{req.operation}"
    if action in FREE_ACTIONS:
        return []
    if req.service == "ec2" and req.operation == "RunInstances":
        return _run_instances_checks(cloud, req.params)
    if req.service == "ec2" and req.operation in EC2_INSTANCE_ACTIONS:
        ids = [v for k, v in sorted(req.params.items()) if k.startswith("InstanceId.")]
        return [_instance_check(cloud, action, i) for i in ids]
    return [Check(action, "*")]


def _run_instances_checks(cloud: Cloud, params: dict[str, str]) -> list[Check]:
    """RunInstances as EC2 authorizes it: the new instance (with ``aws:RequestTag/*`` from its
    tag specification), the image, tagging at launch (``ec2:CreateTags`` with
    ``ec2:CreateAction``) and ``iam:PassRole`` of the profile's role to EC2."""
    region, account = cloud.region, cloud.account_id
    tags: dict[str, str] = {}
    for key, value in params.items():
        match = re.fullmatch(r"TagSpecification\.(\d+)\.ResourceType", key)
        if match and value == "instance":
            n = match.group(1)
            for tag_key, name in params.items():
                tag = re.fullmatch(rf"TagSpecification\.{n}\.Tag\.(\d+)\.Key", tag_key)
                if tag:
                    tags[name] = params.get(f"TagSpecification.{n}.Tag.{tag.group(1)}.Value", "")
    request_tags = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    instance = f"arn:aws:ec2:{region}:{account}:instance/*"
    checks = [
        Check("ec2:RunInstances", instance, request_tags),
        Check("ec2:RunInstances", f"arn:aws:ec2:{region}::image/{params.get('ImageId', '')}"),
    ]
    if tags:
        checks.append(Check("ec2:CreateTags", instance, {"ec2:CreateAction": "RunInstances"}))
    profile = params.get("IamInstanceProfile.Arn") or params.get("IamInstanceProfile.Name")
    if profile:
        name = profile.rsplit("/", 1)[-1]
        try:
            found = cloud.iam_backend().get_instance_profile(name)
            roles = [role.arn for role in found.roles]
        except Exception:
            roles = []
        checks += [
            Check("iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"})
            for role in roles
        ]
    return checks


def _s3_checks(req: Request, environ: dict[str, Any]) -> list[Check]:
    bucket, key = req.bucket or "", req.key
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if req.operation in ("CopyObject", "UploadPartCopy"):
        source = unquote(environ.get("HTTP_X_AMZ_COPY_SOURCE", "")).lstrip("/").split("?")[0]
        return [
            Check("s3:GetObject", f"arn:aws:s3:::{source}"),
            Check("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}"),
        ]
    if req.operation == "DeleteObjects":
        body = _peek_body(environ)
        return [
            Check("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k}")
            for k in _KEY_RE.findall(body.decode("utf-8", "replace"))
        ]
    action = S3_ACTIONS.get(req.operation, f"s3:{req.operation}")
    if key is not None:
        return [Check(action, f"arn:aws:s3:::{bucket}/{key}")]
    context = {}
    if action == "s3:ListBucket" and "prefix" in query:
        context["s3:prefix"] = query["prefix"][0]
    return [Check(action, f"arn:aws:s3:::{bucket}", context)]


def _peek_body(environ: dict[str, Any]) -> bytes:
    import io

    stream = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body: bytes = stream.read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _instance_check(cloud: Cloud, action: str, instance_id: str) -> Check:
    arn = f"arn:aws:ec2:{cloud.region}:{cloud.account_id}:instance/{instance_id}"
    context: dict[str, str] = {}
    try:
        tags = cloud.ec2_backend().get_instance(instance_id).get_tags()
    except Exception:
        tags = []
    for tag in tags:
        context[f"aws:ResourceTag/{tag['key']}"] = tag["value"]
        context[f"ec2:ResourceTag/{tag['key']}"] = tag["value"]
    return Check(action, arn, context)


# -- policy evaluation ---------------------------------------------------------------------------


def role_documents(cloud: Cloud, role_name: str) -> list[dict[str, Any]]:
    """The role's inline and attached managed policy documents (default versions)."""
    try:
        role = cloud.iam_backend().get_role(role_name)
    except Exception:
        return []
    raw: list[Any] = list(getattr(role, "policies", {}).values())
    for policy in getattr(role, "managed_policies", {}).values():
        raw.extend(
            v.document for v in getattr(policy, "versions", []) or [] if getattr(v, "is_default", 0)
        )
    documents = []
    for item in raw:
        try:
            loaded = json.loads(item) if isinstance(item, str) else item
        except ValueError:
            continue
        if isinstance(loaded, dict):
            documents.append(loaded)
    return documents


def decide(documents: list[dict[str, Any]], check: Check) -> str:
    """AWS's identity-policy verdict, in SimulatePrincipalPolicy's words: ``explicitDeny`` when
    a Deny matches, else ``allowed`` when an Allow does, else ``implicitDeny``."""
    allow = False
    for document in documents:
        statements = document.get("Statement", [])
        for statement in [statements] if isinstance(statements, dict) else statements:
            if not isinstance(statement, dict) or not _applies(statement, check):
                continue
            if statement.get("Effect") == "Deny":
                return "explicitDeny"
            if statement.get("Effect") == "Allow":
                allow = True
    return "allowed" if allow else "implicitDeny"


def allowed(documents: list[dict[str, Any]], check: Check) -> bool:
    """No explicit Deny and at least one Allow."""
    return decide(documents, check) == "allowed"


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def _matches(patterns: list[str], value: str, *, case: bool) -> bool:
    if case:
        return any(fnmatch.fnmatchcase(value, p) for p in patterns)
    return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)


def _applies(statement: dict[str, Any], check: Check) -> bool:
    if "Action" in statement:
        if not _matches(_listed(statement["Action"]), check.action, case=False):
            return False
    elif "NotAction" in statement and _matches(
        _listed(statement["NotAction"]), check.action, case=False
    ):
        return False
    if "Resource" in statement:
        if not _matches(_listed(statement["Resource"]), check.resource, case=True):
            return False
    elif "NotResource" in statement and _matches(
        _listed(statement["NotResource"]), check.resource, case=True
    ):
        return False
    return _conditions_hold(statement.get("Condition") or {}, check.context)


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, pairs in conditions.items():
        base = operator.removesuffix("IfExists")
        if_exists = operator.endswith("IfExists")
        for key, expected in (pairs or {}).items():
            actual = context.get(key)
            if actual is None:
                if if_exists or base.startswith("StringNot"):
                    continue
                return False
            patterns = _listed(expected)
            if base == "StringEquals":
                ok = actual in patterns
            elif base == "StringNotEquals":
                ok = actual not in patterns
            elif base == "StringLike":
                ok = _matches(patterns, actual, case=True)
            elif base == "StringNotLike":
                ok = not _matches(patterns, actual, case=True)
            else:
                ok = False
            if not ok:
                return False
    return True


# -- SimulatePrincipalPolicy (moto lacks it) -------------------------------------------------------


def simulate_principal_policy(cloud: Cloud, params: dict[str, str]) -> Response:
    """IAM's SimulatePrincipalPolicy for a role ARN, with the evaluator above: every action
    against every resource, with the context entries given (IAM query protocol, XML)."""
    source = params.get("PolicySourceArn", "")
    role_name = source.rsplit("/", 1)[-1] if ":role/" in source else ""
    if not role_name:
        return error_response(QUERY, "InvalidInput", f"{source} is not a role ARN", 400)
    try:
        cloud.iam_backend().get_role(role_name)
    except Exception:
        return error_response(QUERY, "NoSuchEntity", f"The role {role_name} cannot be found", 404)
    actions = _members(params, "ActionNames")
    resources = _members(params, "ResourceArns") or ["*"]
    context: dict[str, str] = {}
    for index in range(1, 100):
        key = params.get(f"ContextEntries.member.{index}.ContextKeyName")
        if key is None:
            break
        value = params.get(f"ContextEntries.member.{index}.ContextKeyValues.member.1", "")
        context[key] = value
    documents = role_documents(cloud, role_name)
    members = []
    for action in actions:
        for resource in resources:
            decision = decide(documents, Check(action, resource, dict(context)))
            members.append(
                f"<member><EvalActionName>{escape(action)}</EvalActionName>"
                f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
                f"<EvalDecision>{decision}</EvalDecision>"
                "<MatchedStatements/><MissingContextValues/></member>"
            )
    body = (
        '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        "<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated>"
        f"<EvaluationResults>{''.join(members)}</EvaluationResults>"
        "</SimulatePrincipalPolicyResult>"
        f"<ResponseMetadata><RequestId>{request_id()}</RequestId></ResponseMetadata>"
        "</SimulatePrincipalPolicyResponse>"
    )
    return Response(200, [("Content-Type", "text/xml")], body.encode())


def _members(params: dict[str, str], name: str) -> list[str]:
    found = []
    for index in range(1, 1000):
        value = params.get(f"{name}.member.{index}")
        if value is None:
            break
        found.append(value)
    return found
