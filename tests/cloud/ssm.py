"""SSM Run Command that really runs: SendCommand, invocations, managed-instance registry.

Served by the gateway in place of moto for ``SendCommand``, ``GetCommandInvocation``,
``ListCommands``, ``ListCommandInvocations``, ``CancelCommand`` and
``DescribeInstanceInformation`` (JSON 1.1, ``X-Amz-Target: AmazonSSM.<Op>``); every
other SSM operation (parameters, documents, ...) is moto's.

``AWS-RunShellScript`` (parameters ``commands``, ``executionTimeout`` [default 3600,
1..172800], ``workingDirectory``) runs once per targeted instance, as the SSM agent does:
the commands, joined by newlines, are written to
``var/lib/amazon/ssm/<id>/document/orchestration/<command-id>/awsrunShellScript/0.awsrunShellScript/_script.sh``
in the instance's sandbox and run with ``bash`` in their own process group, with that
directory as working directory unless ``workingDirectory`` names another (absolute, or
relative to the sandbox root; a missing one fails the invocation). Semantics:

* Status ``Pending`` (for ``Cloud.ssm_delivery_delay``) -> ``InProgress`` -> ``Success``
  | ``Failed`` | ``TimedOut`` | ``Cancelled`` (``Cancelling`` in between);
  ``ResponseCode`` is the exit code, -1 until the script has finished (and for a script
  killed by a signal); 137 after a timeout or cancel (the process group is SIGKILLed,
  so a plain ``nohup cmd &`` dies with it; ``setsid`` escapes it, as on a real agent).
  A non-zero exit appends ``failed to run commands: exit status N`` to stderr, as the
  agent does. If the instance stops or terminates mid-command the invocation ends
  ``Failed`` with 137 (the agent is shut down with the instance).
* Output arrives when the invocation ends: ``StandardOutputContent`` is the first 24,000
  characters, ``StandardErrorContent`` the first 8,000; ListCommandInvocations' plugin
  ``Output`` is stdout, ``----------ERROR-------`` and stderr, cut at 2,500. With
  ``OutputS3BucketName`` the full stdout/stderr are also written to S3 under
  ``<prefix>/<command-id>/<instance-id>/awsrunShellScript/0.awsrunShellScript/``.
* ``GetCommandInvocation`` raises ``InvocationDoesNotExist`` for
  ``Cloud.ssm_invocation_delay`` seconds after SendCommand (ListCommandInvocations does
  not list the invocation then either), like the real race.
* The delays are read when they matter, not when the command is sent: a test holds
  invocations invisible (or ``Pending``) by setting a delay of an hour and releases them
  by setting it back to 0, so it never races a short delay on a busy machine.
* Only *managed* instances take commands: running, with an instance profile whose role
  may call SSM (an AWS managed SSM policy such as ``AmazonSSMManagedInstanceCore``, or a
  policy allowing ``ssm:UpdateInstanceInformation``/``ssm:*``/``*``; turn the policy check
  off with ``Cloud.require_ssm_policy = False``), ``Cloud.ssm_registration_delay``
  seconds after boot. Anything else given in ``InstanceIds`` is rejected with
  ``InvalidInstanceId`` ("Instances [[i-...]] not in a valid state for account ...").
  ``Targets`` (``InstanceIds``, ``tag:<key>``, ``tag-key``) select managed instances only.
* ``DescribeInstanceInformation`` lists managed instances: ``Online`` while running,
  ``ConnectionLost`` while stopped; terminated or unmanaged instances are absent. Filters:
  ``InstanceInformationFilterList`` (``InstanceIds``, ``PingStatus``, ``PlatformTypes``)
  and ``Filters`` (the same keys plus ``tag:<key>``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.cloud.protocol import JSON, Response, error_response, json_response

if TYPE_CHECKING:
    from tests.cloud.harness import Cloud
    from tests.cloud.instances import InstanceRuntime

PLUGIN = "aws:runShellScript"
STDOUT_LIMIT = 24_000
STDERR_LIMIT = 8_000
PLUGIN_OUTPUT_LIMIT = 2_500
STOPPED_EXIT_CODE = 137
TERMINAL = frozenset({"Success", "Failed", "TimedOut", "Cancelled"})
ACTIVE = frozenset({"Pending", "InProgress", "Cancelling", "Delayed"})
HANDLED = frozenset(
    {
        "SendCommand",
        "GetCommandInvocation",
        "ListCommands",
        "ListCommandInvocations",
        "CancelCommand",
        "DescribeInstanceInformation",
    }
)
SSM_MANAGED_POLICIES = frozenset(
    {
        "AmazonSSMManagedInstanceCore",
        "AmazonEC2RoleforSSM",
        "AmazonSSMFullAccess",
        "AmazonSSMManagedEC2InstanceDefaultPolicy",
        "AdministratorAccess",
    }
)
_SIGNALS: dict[int, str] = {
    int(signal.SIGKILL): "killed",
    int(signal.SIGTERM): "terminated",
    int(signal.SIGINT): "interrupt",
}


class SsmError(Exception):
    """An SSM API error (JSON protocol, HTTP 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _epoch(value: dt.datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _iso_ms(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _strip_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


@dataclass
class Command:
    """One SendCommand."""

    command_id: str
    document_name: str
    commands: list[str]
    parameters: dict[str, list[str]]
    execution_timeout: int
    working_directory: str
    instance_ids: list[str]
    targets: list[dict[str, Any]]
    comment: str
    requested: dt.datetime
    timeout_seconds: int
    output_bucket: str | None
    output_prefix: str | None
    output_region: str | None
    max_concurrency: str
    max_errors: str
    service_role: str | None
    notification: dict[str, Any] | None
    cloudwatch: dict[str, Any]
    invocations: dict[str, Invocation] = field(default_factory=dict)

    def status(self) -> tuple[str, str]:
        statuses = [inv.status for inv in self.invocations.values()]
        if not statuses:
            return "Success", "Success"
        if all(s == "Pending" for s in statuses):
            return "Pending", "Pending"
        if any(s in ACTIVE for s in statuses):
            return "InProgress", "InProgress"
        if all(s == "Success" for s in statuses):
            return "Success", "Success"
        for status in ("Failed", "TimedOut", "Cancelled"):
            if status in statuses:
                return status, status
        return "Failed", "Failed"

    def to_json(self) -> dict[str, Any]:
        status, details = self.status()
        invocations = list(self.invocations.values())
        return _strip_none(
            {
                "CommandId": self.command_id,
                "DocumentName": self.document_name,
                "DocumentVersion": "$DEFAULT",
                "Comment": self.comment,
                "ExpiresAfter": self.requested.timestamp() + self.timeout_seconds,
                "Parameters": self.parameters,
                "InstanceIds": self.instance_ids,
                "Targets": self.targets,
                "RequestedDateTime": self.requested.timestamp(),
                "Status": status,
                "StatusDetails": details,
                "OutputS3Region": self.output_region,
                "OutputS3BucketName": self.output_bucket or "",
                "OutputS3KeyPrefix": self.output_prefix or "",
                "MaxConcurrency": self.max_concurrency,
                "MaxErrors": self.max_errors,
                "TargetCount": len(invocations),
                "CompletedCount": sum(inv.status in TERMINAL for inv in invocations),
                "ErrorCount": sum(inv.status in ("Failed", "TimedOut") for inv in invocations),
                "DeliveryTimedOutCount": 0,
                "ServiceRole": self.service_role or "",
                "NotificationConfig": self.notification
                or {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""},
                "CloudWatchOutputConfig": self.cloudwatch,
                "TimeoutSeconds": self.timeout_seconds,
            }
        )


@dataclass
class Invocation:
    """One command on one instance."""

    command: Command
    instance_id: str
    instance_name: str
    sent: float  # time.monotonic() at SendCommand
    status: str = "Pending"
    details: str = "Pending"
    response_code: int = -1
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    stdout: str = ""
    stderr: str = ""
    process: subprocess.Popen[bytes] | None = None
    boot_id: int = 0
    cancel_requested: bool = False
    thread: threading.Thread | None = None

    def output_url(self, stream: str, region: str) -> str:
        cmd = self.command
        if not cmd.output_bucket:
            return ""
        return f"https://s3.{cmd.output_region or region}.amazonaws.com/{cmd.output_bucket}/" + (
            self.s3_key(stream)
        )

    def s3_key(self, stream: str) -> str:
        prefix = (self.command.output_prefix or "").strip("/")
        plugin_dir = "awsrunShellScript/0.awsrunShellScript"
        key = f"{self.command.command_id}/{self.instance_id}/{plugin_dir}/{stream}"
        return f"{prefix}/{key}" if prefix else key

    def plugin_output(self) -> str:
        out = self.stdout
        if self.stderr:
            out += "\n----------ERROR-------\n" + self.stderr
        return out[:PLUGIN_OUTPUT_LIMIT]


def _policy_documents(role: Any) -> list[Any]:
    docs: list[Any] = list(getattr(role, "policies", {}).values())
    for policy in getattr(role, "managed_policies", {}).values():
        for version in getattr(policy, "versions", []) or []:
            if getattr(version, "is_default", False):
                docs.append(getattr(version, "document", ""))
    return docs


def _document_allows_ssm(document: Any) -> bool:
    try:
        doc = json.loads(document) if isinstance(document, str) else document
    except ValueError:
        return False
    if not isinstance(doc, dict):
        return False
    statements = doc.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        if isinstance(actions, str):
            actions = [actions]
        if any(a in ("*", "ssm:*", "ssm:UpdateInstanceInformation") for a in actions):
            return True
    return False


def role_allows_ssm(role: Any) -> bool:
    """Whether an IAM role lets the SSM agent register (policy names or documents)."""
    for arn in getattr(role, "managed_policies", {}):
        if str(arn).rsplit("/", 1)[-1] in SSM_MANAGED_POLICIES:
            return True
    return any(_document_allows_ssm(doc) for doc in _policy_documents(role))


class SsmService:
    """Commands, invocations and the managed-instance view of one harness."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.lock = threading.RLock()
        self.commands: dict[str, Command] = {}

    def reset(self) -> None:
        with self.lock:
            invocations = [i for c in self.commands.values() for i in c.invocations.values()]
            self.commands.clear()
        for inv in invocations:
            if inv.process is not None and inv.process.poll() is None:
                _killpg(inv.process)
        for inv in invocations:
            if inv.thread is not None:
                inv.thread.join(timeout=5)

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, operation: str, body: dict[str, Any]) -> Response:
        handler = {
            "SendCommand": self.send_command,
            "GetCommandInvocation": self.get_command_invocation,
            "ListCommands": self.list_commands,
            "ListCommandInvocations": self.list_command_invocations,
            "CancelCommand": self.cancel_command,
            "DescribeInstanceInformation": self.describe_instance_information,
        }[operation]
        try:
            return json_response(handler(body))
        except SsmError as exc:
            return error_response(JSON, exc.code, exc.message, 400)

    # -- managed instances ---------------------------------------------------------------

    def ping_status(self, instance_id: str) -> str | None:
        """``Online``, ``ConnectionLost`` or None (not a managed instance)."""
        runtime = self.cloud.runtimes.get(instance_id)
        if runtime is None or runtime.terminated:
            return None
        try:
            instance = runtime.instance()
        except Exception:
            return None
        if instance.state == "terminated":
            return None
        attached = runtime.role()
        if attached is None:
            return None
        if self.cloud.require_ssm_policy and not role_allows_ssm(attached[1]):
            return None
        if not runtime.booted_once:
            return None
        if instance.state == "running" and runtime.powered:
            waited = time.monotonic() - runtime.boot_monotonic
            if waited < self.cloud.ssm_registration_delay:
                return None if runtime.boot_id == 1 else "ConnectionLost"
            return "Online"
        return "ConnectionLost"

    def _not_valid(self, instance_ids: list[str]) -> SsmError:
        ids = ", ".join(instance_ids)
        return SsmError(
            "InvalidInstanceId",
            f"Instances [[{ids}]] not in a valid state for account {self.cloud.account_id}",
        )

    def _resolve_targets(self, targets: list[dict[str, Any]]) -> list[str]:
        backend = self.cloud.ec2_backend()
        chosen: list[str] = []
        for target in targets:
            key = str(target.get("Key", ""))
            values = [str(v) for v in target.get("Values", [])]
            if key == "InstanceIds":
                candidates = values
            elif key.startswith("tag:") or key == "tag-key":
                candidates = []
                for instance in backend.all_instances():
                    tags = {t["key"]: t["value"] for t in instance.get_tags()}
                    if key == "tag-key":
                        if any(v in tags for v in values):
                            candidates.append(instance.id)
                    elif tags.get(key[4:]) in values:
                        candidates.append(instance.id)
            else:
                raise SsmError("InvalidTarget", f"Target key {key} is not supported")
            chosen.extend(c for c in candidates if self.ping_status(c) == "Online")
        return list(dict.fromkeys(chosen))

    # -- SendCommand ---------------------------------------------------------------------

    def send_command(self, body: dict[str, Any]) -> dict[str, Any]:
        document = str(body.get("DocumentName", ""))
        if document.rsplit("/", 1)[-1] != "AWS-RunShellScript":
            raise SsmError("InvalidDocument", f"Document with name {document} does not exist.")
        params: dict[str, list[str]] = {
            str(k): [str(x) for x in v] for k, v in (body.get("Parameters") or {}).items()
        }
        unknown = set(params) - {"commands", "executionTimeout", "workingDirectory"}
        if unknown:
            raise SsmError("InvalidParameters", f"Unknown parameters: {sorted(unknown)}")
        commands = params.get("commands") or []
        if not commands:
            raise SsmError("InvalidParameters", 'Parameter "commands" is required.')
        try:
            execution_timeout = int((params.get("executionTimeout") or ["3600"])[0])
        except ValueError:
            execution_timeout = 0
        if not 1 <= execution_timeout <= 172800:
            raise SsmError(
                "InvalidParameters",
                "Parameter executionTimeout must be an integer between 1 and 172800.",
            )
        instance_ids = [str(i) for i in body.get("InstanceIds") or []]
        targets = list(body.get("Targets") or [])
        if not instance_ids and not targets:
            raise SsmError("InvalidParameters", "Either InstanceIds or Targets must be given.")
        if len(instance_ids) > 50:
            raise SsmError("ValidationException", "InstanceIds has more than 50 items.")
        bad = [i for i in instance_ids if self.ping_status(i) != "Online"]
        if bad:
            raise self._not_valid(bad)
        chosen = list(dict.fromkeys(instance_ids + self._resolve_targets(targets)))
        now = _now()
        cloudwatch = body.get("CloudWatchOutputConfig") or {
            "CloudWatchLogGroupName": "",
            "CloudWatchOutputEnabled": False,
        }
        command = Command(
            command_id=str(uuid.uuid4()),
            document_name="AWS-RunShellScript",
            commands=commands,
            parameters=params,
            execution_timeout=execution_timeout,
            working_directory=(params.get("workingDirectory") or [""])[0],
            instance_ids=instance_ids,
            targets=targets,
            comment=str(body.get("Comment", "")),
            requested=now,
            timeout_seconds=int(body.get("TimeoutSeconds") or 3600),
            output_bucket=body.get("OutputS3BucketName"),
            output_prefix=body.get("OutputS3KeyPrefix"),
            output_region=body.get("OutputS3Region"),
            max_concurrency=str(body.get("MaxConcurrency") or "50"),
            max_errors=str(body.get("MaxErrors") or "0"),
            service_role=body.get("ServiceRoleArn"),
            notification=body.get("NotificationConfig"),
            cloudwatch=cloudwatch,
        )
        sent = time.monotonic()
        for instance_id in chosen:
            runtime = self.cloud.runtimes[instance_id]
            private_ip = runtime.instance().private_ip or "10.0.0.10"
            command.invocations[instance_id] = Invocation(
                command=command,
                instance_id=instance_id,
                instance_name=f"ip-{private_ip.replace('.', '-')}.ec2.internal",
                sent=sent,
            )
        with self.lock:
            self.commands[command.command_id] = command
            for inv in command.invocations.values():
                inv.thread = threading.Thread(target=self._run, args=(inv,), daemon=True)
                inv.thread.start()
        return {"Command": command.to_json()}

    # -- execution -----------------------------------------------------------------------

    def _workdir(self, runtime: InstanceRuntime, orchestration: Path, requested: str) -> Path:
        if not requested:
            return orchestration
        path = Path(requested)
        return path if path.is_absolute() else runtime.sandbox / path

    def _visible(self, inv: Invocation, now: float) -> bool:
        return now >= inv.sent + self.cloud.ssm_invocation_delay

    def _run(self, inv: Invocation) -> None:
        while (
            inv.status == "Pending" and time.monotonic() < inv.sent + self.cloud.ssm_delivery_delay
        ):
            time.sleep(0.01)
        runtime = self.cloud.runtimes.get(inv.instance_id)
        cmd = inv.command
        with self.lock:
            if inv.status != "Pending":
                return
            if runtime is None or not runtime.powered:
                self._finish(inv, "Failed", "Undeliverable", -1)
                return
            orchestration = (
                runtime.sandbox
                / "var/lib/amazon/ssm"
                / inv.instance_id
                / "document/orchestration"
                / cmd.command_id
                / "awsrunShellScript/0.awsrunShellScript"
            )
            try:
                orchestration.mkdir(parents=True, exist_ok=True)
                script = orchestration / "_script.sh"
                script.write_text("\n".join(cmd.commands) + "\n")
                workdir = self._workdir(runtime, orchestration, cmd.working_directory)
            except OSError as exc:
                inv.stderr = f"failed to run commands: {exc}"
                self._finish(inv, "Failed", "Failed", 1)
                return
            inv.start = _now()
            if not workdir.is_dir():
                inv.stderr = (
                    f"failed to run commands: working directory {cmd.working_directory} "
                    "does not exist"
                )
                self._finish(inv, "Failed", "Failed", 1)
                return
            with (
                open(orchestration / "stdout", "wb") as out,
                open(orchestration / "stderr", "wb") as err,
            ):
                inv.process = subprocess.Popen(
                    ["bash", str(script)],
                    cwd=str(workdir),
                    env=runtime.env(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            inv.boot_id = runtime.boot_id
            inv.status = inv.details = "InProgress"
        timed_out = False
        try:
            code = inv.process.wait(timeout=cmd.execution_timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _killpg(inv.process)
            code = inv.process.wait()
        stdout = _read(orchestration / "stdout")
        stderr = _read(orchestration / "stderr")
        with self.lock:
            inv.stdout, inv.stderr = stdout, stderr
            powered_off = not runtime.powered or runtime.boot_id != inv.boot_id
            if inv.cancel_requested:
                self._finish(inv, "Cancelled", "Cancelled", STOPPED_EXIT_CODE)
            elif timed_out:
                self._finish(inv, "TimedOut", "ExecutionTimedOut", STOPPED_EXIT_CODE)
            elif powered_off:
                self._finish(inv, "Failed", "Failed", STOPPED_EXIT_CODE)
            elif code == 0:
                self._finish(inv, "Success", "Success", 0)
            else:
                if code > 0:
                    reason = f"exit status {code}"
                else:
                    reason = "signal: " + _SIGNALS.get(-code, f"signal {-code}")
                sep = "" if not inv.stderr or inv.stderr.endswith("\n") else "\n"
                inv.stderr += f"{sep}failed to run commands: {reason}"
                self._finish(inv, "Failed", "Failed", code if code > 0 else -1)
        self._upload_output(inv, stdout, inv.stderr)

    def _finish(self, inv: Invocation, status: str, details: str, code: int) -> None:
        inv.status, inv.details, inv.response_code = status, details, code
        inv.end = _now()
        if inv.start is None:
            inv.start = inv.end

    def _upload_output(self, inv: Invocation, stdout: str, stderr: str) -> None:
        bucket = inv.command.output_bucket
        if not bucket:
            return
        try:
            backend = self.cloud.s3_backend()
            for stream, text in (("stdout", stdout), ("stderr", stderr)):
                if text:
                    backend.put_object(bucket, inv.s3_key(stream), text.encode())
        except Exception:
            pass  # the agent logs and carries on when it cannot upload

    def on_power_off(self, instance_id: str) -> None:
        """Wait until the runners of this instance's killed commands have finished."""
        with self.lock:
            threads = [
                inv.thread
                for cmd in self.commands.values()
                for inv in cmd.invocations.values()
                if inv.instance_id == instance_id and inv.status in ACTIVE and inv.thread
            ]
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    # -- queries -------------------------------------------------------------------------

    def _command(self, command_id: str) -> Command:
        command = self.commands.get(command_id)
        if command is None:
            raise SsmError("InvalidCommandId", "")
        return command

    def get_command_invocation(self, body: dict[str, Any]) -> dict[str, Any]:
        plugin = body.get("PluginName")
        with self.lock:
            command = self.commands.get(str(body.get("CommandId", "")))
            inv = command.invocations.get(str(body.get("InstanceId", ""))) if command else None
            if inv is None or not self._visible(inv, time.monotonic()):
                raise SsmError("InvocationDoesNotExist", "")
            if plugin is not None and plugin != PLUGIN:
                raise SsmError("InvalidPluginName", "")
            region = self.cloud.region
            elapsed = ""
            if inv.start is not None and inv.end is not None:
                elapsed = f"PT{(inv.end - inv.start).total_seconds():.3f}S"
            return {
                "CommandId": inv.command.command_id,
                "InstanceId": inv.instance_id,
                "Comment": inv.command.comment,
                "DocumentName": inv.command.document_name,
                "DocumentVersion": "$DEFAULT",
                "PluginName": PLUGIN,
                "ResponseCode": inv.response_code,
                "ExecutionStartDateTime": _iso_ms(inv.start),
                "ExecutionElapsedTime": elapsed,
                "ExecutionEndDateTime": _iso_ms(inv.end),
                "Status": inv.status,
                "StatusDetails": inv.details,
                "StandardOutputContent": inv.stdout[:STDOUT_LIMIT],
                "StandardOutputUrl": inv.output_url("stdout", region),
                "StandardErrorContent": inv.stderr[:STDERR_LIMIT],
                "StandardErrorUrl": inv.output_url("stderr", region),
                "CloudWatchOutputConfig": inv.command.cloudwatch,
            }

    @staticmethod
    def _page(items: list[Any], body: dict[str, Any], limit: int = 50) -> tuple[list[Any], str]:
        try:
            start = int(body.get("NextToken") or 0)
        except ValueError as exc:
            raise SsmError("InvalidNextToken", "The specified token is not valid.") from exc
        size = int(body.get("MaxResults") or limit)
        page = items[start : start + size]
        token = str(start + size) if start + size < len(items) else ""
        return page, token

    @staticmethod
    def _match_filters(cmd: Command, status: str, filters: list[dict[str, Any]]) -> bool:
        for flt in filters:
            key, value = str(flt.get("key", "")), str(flt.get("value", ""))
            if key == "Status" and status != value:
                return False
            if key == "DocumentName" and cmd.document_name != value:
                return False
            if key == "ExecutionStage":
                done = status in TERMINAL
                if (value == "Complete") != done:
                    return False
            if key in ("InvokedAfter", "InvokedBefore"):
                when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                if when.tzinfo is None:
                    when = when.replace(tzinfo=dt.UTC)
                if key == "InvokedAfter" and cmd.requested < when:
                    return False
                if key == "InvokedBefore" and cmd.requested > when:
                    return False
        return True

    def list_commands(self, body: dict[str, Any]) -> dict[str, Any]:
        filters = list(body.get("Filters") or [])
        with self.lock:
            if body.get("CommandId"):
                commands = [self._command(str(body["CommandId"]))]
            else:
                commands = sorted(self.commands.values(), key=lambda c: c.requested, reverse=True)
            instance_id = body.get("InstanceId")
            if instance_id:
                commands = [c for c in commands if instance_id in c.invocations]
            commands = [c for c in commands if self._match_filters(c, c.status()[0], filters)]
            page, token = self._page(commands, body)
            result: dict[str, Any] = {"Commands": [c.to_json() for c in page]}
        if token:
            result["NextToken"] = token
        return result

    def list_command_invocations(self, body: dict[str, Any]) -> dict[str, Any]:
        filters = list(body.get("Filters") or [])
        details = bool(body.get("Details"))
        now = time.monotonic()
        with self.lock:
            commands = sorted(self.commands.values(), key=lambda c: c.requested, reverse=True)
            if body.get("CommandId"):
                commands = [c for c in commands if c.command_id == body["CommandId"]]
            invocations = [
                inv
                for cmd in commands
                for inv in cmd.invocations.values()
                if self._visible(inv, now)
                and (not body.get("InstanceId") or inv.instance_id == body["InstanceId"])
                and self._match_filters(cmd, inv.status, filters)
            ]
            page, token = self._page(invocations, body)
            result: dict[str, Any] = {
                "CommandInvocations": [self._invocation_json(inv, details) for inv in page]
            }
        if token:
            result["NextToken"] = token
        return result

    def _invocation_json(self, inv: Invocation, details: bool) -> dict[str, Any]:
        cmd = inv.command
        region = self.cloud.region
        plugins: list[dict[str, Any]] = []
        if details:
            plugins.append(
                _strip_none(
                    {
                        "Name": PLUGIN,
                        "Status": inv.status,
                        "StatusDetails": inv.details,
                        "ResponseCode": inv.response_code,
                        "ResponseStartDateTime": _epoch(inv.start),
                        "ResponseFinishDateTime": _epoch(inv.end),
                        "Output": inv.plugin_output(),
                        "StandardOutputUrl": inv.output_url("stdout", region),
                        "StandardErrorUrl": inv.output_url("stderr", region),
                        "OutputS3Region": cmd.output_region or region,
                        "OutputS3BucketName": cmd.output_bucket or "",
                        "OutputS3KeyPrefix": cmd.output_prefix or "",
                    }
                )
            )
        return {
            "CommandId": cmd.command_id,
            "InstanceId": inv.instance_id,
            "InstanceName": inv.instance_name,
            "Comment": cmd.comment,
            "DocumentName": cmd.document_name,
            "DocumentVersion": "$DEFAULT",
            "RequestedDateTime": cmd.requested.timestamp(),
            "Status": inv.status,
            "StatusDetails": inv.details,
            "TraceOutput": "",
            "StandardOutputUrl": inv.output_url("stdout", region),
            "StandardErrorUrl": inv.output_url("stderr", region),
            "CommandPlugins": plugins,
            "ServiceRole": cmd.service_role or "",
            "NotificationConfig": cmd.notification
            or {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""},
            "CloudWatchOutputConfig": cmd.cloudwatch,
        }

    def cancel_command(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            command = self._command(str(body.get("CommandId", "")))
            wanted = body.get("InstanceIds") or list(command.invocations)
            for instance_id in wanted:
                inv = command.invocations.get(instance_id)
                if inv is None:
                    raise SsmError("InvalidInstanceId", "")
                if inv.status == "Pending":
                    self._finish(inv, "Cancelled", "Cancelled", -1)
                elif inv.status == "InProgress" and inv.process is not None:
                    inv.cancel_requested = True
                    inv.status = inv.details = "Cancelling"
                    _killpg(inv.process)
        return {}

    def describe_instance_information(self, body: dict[str, Any]) -> dict[str, Any]:
        wanted: dict[str, set[str]] = {}
        for flt in body.get("InstanceInformationFilterList") or []:
            wanted.setdefault(str(flt.get("key")), set()).update(flt.get("valueSet") or [])
        for flt in body.get("Filters") or []:
            wanted.setdefault(str(flt.get("Key")), set()).update(flt.get("Values") or [])
        entries: list[dict[str, Any]] = []
        for instance_id, runtime in list(self.cloud.runtimes.items()):
            ping = self.ping_status(instance_id)
            if ping is None:
                continue
            entry = self._information(runtime, ping)
            if "InstanceIds" in wanted and instance_id not in wanted["InstanceIds"]:
                continue
            if "PingStatus" in wanted and ping not in wanted["PingStatus"]:
                continue
            if "PlatformTypes" in wanted and entry["PlatformType"] not in wanted["PlatformTypes"]:
                continue
            tags = {t["key"]: t["value"] for t in runtime.instance().get_tags()}
            if any(
                key.startswith("tag:") and tags.get(key[4:]) not in values
                for key, values in wanted.items()
            ):
                continue
            entries.append(entry)
        page, token = self._page(entries, body)
        result: dict[str, Any] = {"InstanceInformationList": page}
        if token:
            result["NextToken"] = token
        return result

    def _information(self, runtime: InstanceRuntime, ping: str) -> dict[str, Any]:
        instance = runtime.instance()
        image = self.cloud.ec2_backend().amis.get(instance.image_id)
        name = (getattr(image, "name", "") or "").lower()
        if "ubuntu" in name:
            platform, version = "Ubuntu", "24.04" if "24.04" in name else "22.04"
        else:
            platform, version = "Amazon Linux", "2023"
        attached = runtime.role()
        private_ip = instance.private_ip or "10.0.0.10"
        boot = dt.datetime.now(dt.UTC) - dt.timedelta(
            seconds=time.monotonic() - runtime.boot_monotonic
        )
        return {
            "InstanceId": runtime.instance_id,
            "PingStatus": ping,
            "LastPingDateTime": time.time() if ping == "Online" else boot.timestamp(),
            "AgentVersion": "3.3.1142.0",
            "IsLatestVersion": True,
            "PlatformType": "Linux",
            "PlatformName": platform,
            "PlatformVersion": version,
            "IamRole": attached[1].name if attached else "",
            "RegistrationDate": boot.timestamp(),
            "ResourceType": "EC2Instance",
            "IPAddress": private_ip,
            "ComputerName": f"ip-{private_ip.replace('.', '-')}.ec2.internal",
            "SourceId": runtime.instance_id,
            "SourceType": "AWS::EC2::Instance",
        }


def _killpg(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _read(path: Path, limit: int = 64 * 1024 * 1024) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""
