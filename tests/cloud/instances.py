"""The running half of an EC2 instance: sandbox disk, power state, user data, IMDS, notices.

An :class:`InstanceRuntime` exists for every instance the harness has seen running. Its
sandbox directory (``<harness root>/instances/<instance-id>``) is the instance's disk:
``HOME`` and ``RUNCTL_REMOTE_ROOT`` of everything run there, with ``tmp/`` (``TMPDIR``),
``var/log/cloud-init-output.log``, ``var/lib/cloud/instance/`` (user data, its script,
``boot-finished``) and ``var/lib/amazon/ssm/<id>/document/orchestration/<command-id>/``
(each SSM command's ``_script.sh``, ``stdout`` and ``stderr``, as the SSM agent keeps
them). Stop kills every process of the instance and keeps the disk; terminate kills them
and deletes it. User data runs once, at the first boot, in the background, like
cloud-init: a ``#!`` script is executed as is (gzip-compressed user data is unpacked);
``#cloud-config`` and other formats are saved but not acted on.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import os
import shutil
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

from tests.cloud.imds import ImdsServer
from tests.cloud.sandbox import INSTANCE_VAR, SESSION_VAR, kill_marked, marked_pids

if TYPE_CHECKING:
    from tests.cloud.harness import Cloud

_ISO = "%Y-%m-%dT%H:%M:%SZ"


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime(_ISO)
    return str(value)


def _zone_id(region: str, az: str) -> str:
    """``us-east-1`` + ``us-east-1c`` -> ``use1-az3`` (an approximation of AWS's ids)."""
    parts = region.split("-")
    prefix = parts[0] + "".join(p[0] for p in parts[1:-1]) + parts[-1]
    return f"{prefix}-az{'abcdef'.find(az[-1]) + 1}"


def iso_now(offset_seconds: float = 0.0) -> str:
    """UTC time as IMDS writes it (``2025-01-15T12:34:56Z``)."""
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_seconds)).strftime(_ISO)


class InstanceRuntime:
    """Sandbox, processes, IMDS and notices of one instance."""

    def __init__(self, cloud: Cloud, instance_id: str) -> None:
        self.cloud = cloud
        self.instance_id = instance_id
        self.sandbox = cloud.root / "instances" / instance_id
        self.powered = False
        self.terminated = False
        self.boot_id = 0
        self.boot_monotonic = 0.0
        self.booted_once = False
        self.spot_action: dict[str, str] | None = None
        self.rebalance_notice: dict[str, str] | None = None
        self.timers: list[threading.Timer] = []
        self.boot_thread: threading.Thread | None = None
        self._credentials: dict[str, Any] | None = None
        self._credentials_role: str | None = None
        self._lock = threading.Lock()
        for sub in ("tmp", "var/log", "var/lib/cloud/instance/scripts", "usr/local/bin"):
            (self.sandbox / sub).mkdir(parents=True, exist_ok=True)
        self.imds = ImdsServer(self)

    # -- moto view -------------------------------------------------------------------

    def instance(self) -> Any:
        """moto's Instance object (raises if moto no longer knows it)."""
        return self.cloud.ec2_backend().get_instance(self.instance_id)

    def role(self) -> tuple[Any, Any] | None:
        """(instance profile, role) attached to the instance, or None."""
        backend = self.cloud.ec2_backend()
        association = backend.iam_instance_profile_associations.get(self.instance_id)
        if association is None:
            return None
        profile = association.iam_instance_profile
        roles = list(getattr(profile, "roles", []) or [])
        if not roles:
            return None
        return profile, roles[0]

    # -- environment -------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment of every process run on this instance."""
        home = str(self.sandbox)
        return {
            "HOME": home,
            "RUNCTL_REMOTE_ROOT": home,
            # As on a real AMI, /usr/local/bin comes first (Cloud.install_executable).
            "PATH": os.pathsep.join([str(self.sandbox / "usr/local/bin"), self.cloud.toolbox.path]),
            "TMPDIR": str(self.sandbox / "tmp"),
            "LANG": "C.UTF-8",
            "USER": "root",
            "LOGNAME": "root",
            "SHELL": "/bin/bash",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds.endpoint,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv4",
            # This IMDS is a thread of the test process: on a loaded machine it can take more
            # than the 2 s a real one is given (the runner then logs a timeout in the job's log).
            "AWS_METADATA_SERVICE_TIMEOUT": "60",
            "AWS_ENDPOINT_URL": self.cloud.endpoint,
            "AWS_DEFAULT_REGION": self.cloud.region,
            "AWS_REGION": self.cloud.region,
            # Where runctl looks for system paths: /dev, /etc/fstab, a DLAMI's /opt/pytorch.
            "RUNCTL_SYSTEM_ROOT": home,
            SESSION_VAR: self.cloud.session_token,
            INSTANCE_VAR: self.instance_id,
            **({"DOCKER_HOST": self.cloud.docker_host} if self.cloud.docker_host else {}),
        }

    # -- power -------------------------------------------------------------------------

    def power_on(self) -> None:
        """Boot: the first boot runs user data in the background."""
        with self._lock:
            if self.powered or self.terminated:
                return
            self.powered = True
            self.boot_id += 1
            self.boot_monotonic = time.monotonic()
            first = not self.booted_once
            self.booted_once = True
        self.cloud.volumes.power_on(self)
        if first:
            self.boot_thread = threading.Thread(target=self._run_user_data, daemon=True)
            self.boot_thread.start()

    def power_off(self, terminate: bool) -> None:
        """Kill everything the instance runs; on terminate also drop its disk and IMDS."""
        with self._lock:
            was_powered = self.powered
            self.powered = False
            if terminate:
                self.terminated = True
        if was_powered or terminate:
            kill_marked(self.cloud.session_token, self.instance_id, self.cloud.shutdown_grace)
            self.cloud.remove_containers([self.instance_id])
            self.cloud.ssm.on_power_off(self.instance_id)
        if was_powered and not terminate:
            self.cloud.volumes.power_off(self)
        if terminate:
            for timer in self.timers:
                timer.cancel()
            self.timers.clear()
            self.imds.close()
            shutil.rmtree(self.sandbox, ignore_errors=True)

    def reboot(self) -> None:
        """Kill everything, then come back up (user data does not run again)."""
        if not self.powered:
            return
        self.power_off(terminate=False)
        self.power_on()

    def harness_action(self, action: str) -> None:
        """The sandbox's ``shutdown``/``reboot`` commands land here (via IMDS)."""
        try:
            self._harness_action(action)
        except Exception:
            if not self.terminated:  # after a reset moto no longer knows the instance
                raise

    def _harness_action(self, action: str) -> None:
        if action == "reboot":
            self.cloud.ec2_backend().reboot_instances([self.instance_id])
            self.reboot()
            return
        instance = self.instance()
        behaviour = instance.instance_initiated_shutdown_behavior or "stop"
        backend = self.cloud.ec2_backend()
        if behaviour == "terminate":
            backend.terminate_instances([self.instance_id])
        else:
            backend.stop_instances([self.instance_id])
        self.cloud.reconcile()

    # -- user data ---------------------------------------------------------------------

    def user_data(self) -> bytes | None:
        encoded = getattr(self.instance(), "user_data", None)
        if encoded is None:
            return None
        raw = encoded.as_bytes() if hasattr(encoded, "as_bytes") else str(encoded).encode()
        try:
            return base64.b64decode(raw)
        except ValueError:
            return raw

    def _run_user_data(self) -> None:
        cloud_dir = self.sandbox / "var/lib/cloud"
        log_path = self.sandbox / "var/log/cloud-init-output.log"
        try:
            data = self.user_data()
        except Exception:
            data = None
        errors: list[str] = []
        if data:
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            (cloud_dir / "instance/user-data.txt").write_bytes(data)
            if data.startswith(b"#!"):
                script = cloud_dir / "instance/scripts/part-001"
                script.write_bytes(data)
                script.chmod(0o700)
                with open(log_path, "ab") as log:
                    log.write(
                        f"Cloud-init v. 24.1 running 'modules:final' at {iso_now()}\n".encode()
                    )
                    log.flush()
                    try:
                        proc = subprocess.Popen(
                            [str(script)],
                            cwd=str(self.sandbox),
                            env=self.env(),
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                        code = proc.wait()
                    except OSError as exc:
                        code = 1
                        log.write(f"{exc}\n".encode())
                    if code != 0:
                        errors.append(f"runcmd failed: {script} exit status {code}")
                        log.write(
                            f"{iso_now()} - cc_scripts_user.py[WARNING]: Failed to run module "
                            f"scripts-user (scripts in {cloud_dir}/instance/scripts)\n".encode()
                        )
        if not self.powered or self.terminated:
            return
        try:
            (cloud_dir / "data").mkdir(parents=True, exist_ok=True)
            (cloud_dir / "data/result.json").write_text(
                json.dumps({"v1": {"datasource": "DataSourceEc2Local", "errors": errors}})
            )
            uptime = time.monotonic() - self.boot_monotonic
            (cloud_dir / "instance/boot-finished").write_text(f"{uptime:.2f} 0.00\n{iso_now()}\n")
            with open(log_path, "ab") as log:
                finished = f"Cloud-init v. 24.1 finished at {iso_now()}. Up {uptime:.2f} seconds\n"
                log.write(finished.encode())
        except OSError:
            pass

    # -- IMDS ----------------------------------------------------------------------------

    def credentials(self) -> tuple[str, dict[str, Any]] | None:
        """(role name, IMDS credential JSON) of the attached role, or None."""
        attached = self.role()
        if attached is None:
            return None
        _, role = attached
        with self._lock:
            if self._credentials is None or self._credentials_role != role.name:
                sts = self.cloud.sts_backend()
                assumed = sts.assume_role(
                    region_name=self.cloud.region,
                    role_session_name=self.instance_id,
                    role_arn=role.arn,
                    policy="",
                    duration=21600,
                    external_id="",
                )
                self._credentials = {
                    "Code": "Success",
                    "LastUpdated": iso_now(),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": assumed.access_key_id,
                    "SecretAccessKey": assumed.secret_access_key,
                    "Token": assumed.session_token,
                    "Expiration": iso_now(6 * 3600),
                }
                self._credentials_role = role.name
                self.cloud.role_keys[assumed.access_key_id] = (self.instance_id, role.name)
            return role.name, self._credentials

    def metadata(self) -> dict[str, Any]:
        instance = self.instance()
        az = instance._placement.zone
        region = az[:-1]
        private_ip = instance.private_ip or "10.0.0.10"
        hostname = f"ip-{private_ip.replace('.', '-')}.ec2.internal"
        iam: dict[str, Any] | None = None
        creds = self.credentials()
        attached = self.role()
        if creds is not None and attached is not None:
            role_name, body = creds
            profile, _ = attached
            iam = {
                "info": json.dumps(
                    {
                        "Code": "Success",
                        "LastUpdated": iso_now(),
                        "InstanceProfileArn": profile.arn,
                        "InstanceProfileId": getattr(profile, "id", "AIPA0000000000000000"),
                    },
                    indent=2,
                ),
                "security-credentials": {role_name: json.dumps(body, indent=2)},
            }
        spot: dict[str, Any] | None = None
        if self.spot_action is not None:
            spot = {
                "instance-action": json.dumps(self.spot_action),
                "termination-time": self.spot_action["time"],
            }
        events: dict[str, Any] | None = None
        if self.rebalance_notice is not None:
            events = {"recommendations": {"rebalance": json.dumps(self.rebalance_notice)}}
        groups = " ".join(getattr(g, "name", "default") for g in instance.security_groups)
        return {
            "ami-id": instance.image_id,
            "ami-launch-index": str(instance.ami_launch_index),
            "hostname": hostname,
            "local-hostname": hostname,
            "local-ipv4": private_ip,
            "public-ipv4": instance.public_ip,
            "instance-id": self.instance_id,
            "instance-type": instance.instance_type,
            "instance-life-cycle": "spot" if instance.lifecycle == "spot" else "on-demand",
            "mac": "0e:00:00:00:00:01",
            "security-groups": groups or "default",
            "placement": {
                "availability-zone": az,
                "availability-zone-id": _zone_id(region, az),
                "region": region,
            },
            "iam": iam,
            "spot": spot,
            "events": events,
        }

    def identity_document(self) -> dict[str, Any]:
        instance = self.instance()
        return {
            "accountId": self.cloud.account_id,
            "architecture": instance.architecture,
            "availabilityZone": instance._placement.zone,
            "imageId": instance.image_id,
            "instanceId": self.instance_id,
            "instanceType": instance.instance_type,
            "pendingTime": _iso(instance.launch_time),
            "privateIp": instance.private_ip,
            "region": self.cloud.region,
            "version": "2017-09-30",
        }

    # -- notices -----------------------------------------------------------------------

    def schedule(self, delay: float, action: Any) -> None:
        timer = threading.Timer(max(delay, 0.0), action)
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def processes(self) -> list[int]:
        return marked_pids(self.cloud.session_token, self.instance_id)

    def cleanup(self) -> None:
        """Harness reset: stop timers and IMDS (processes are killed session-wide)."""
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        self.powered = False
        self.terminated = True
        self.imds.close()
