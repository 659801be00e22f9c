"""Real servers for tests that need more than moto: Ceph RGW (S3), dockerd, a Docker registry.

Each ``start_*`` function skips the calling test (``pytest.skip``) with the reason when
the Debian packages it needs are not installed (``.ci/services.sh`` installs them), and
raises with the tail of the daemon's log when they are installed but it fails to start.
Everything listens on 127.0.0.1 on free ports and lives under the given directory; the
daemons are this process's children and are stopped (SIGTERM, then SIGKILL) by ``stop()``.

Ceph RGW
    Debian 12 ships Ceph 16 (Pacific), whose radosgw has no standalone ``dbstore``
    backend (``rgw_backend_store`` arrived in Quincy): it needs a RADOS cluster. So
    :func:`start_rgw` runs a one-node cluster: one ``ceph-mon`` (msgr v1, auth none)
    and one ``ceph-osd`` on ``memstore`` (objects live in the OSD's memory, up to
    ``memstore_gib``), pool size 1, then ``radosgw`` (beast frontend) and an S3 user
    made with ``radosgw-admin``. Needs packages ``ceph-mon ceph-osd radosgw``.
    :class:`RgwServer` has ``endpoint``, ``access_key``, ``secret_key``, ``region``,
    ``env()`` (AWS_* variables for a CLI) and ``client()`` (a boto3 S3 client).
dockerd
    :func:`start_dockerd` runs ``dockerd`` with its own socket, data root and exec root
    (containerd is started by dockerd), without a bridge network and without touching
    iptables: containers run with ``--network host`` or ``none``. Nothing can be pulled
    from a public registry here; build ``FROM scratch`` or ``docker import`` a rootfs.
    :class:`DockerDaemon` has ``host`` (``unix://...``), ``env()`` (``DOCKER_HOST``) and
    ``docker(*args)``. Needs package ``docker.io``.
registry
    :func:`start_registry` runs ``docker-registry serve`` (Distribution 2.8, filesystem
    storage, deletes enabled, no auth). :class:`Registry` has ``address``
    (``127.0.0.1:<port>``, which dockerd treats as an insecure registry) and ``url``.
    Needs package ``docker-registry``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

RGW_BINARIES = (
    "ceph-mon",
    "ceph-osd",
    "radosgw",
    "radosgw-admin",
    "ceph",
    "monmaptool",
    "ceph-authtool",
)
DOCKER_BINARIES = ("dockerd", "containerd", "runc", "docker")
REGISTRY_BINARIES = ("docker-registry",)
SERVICES_HINT = "run `bash .ci/services.sh` (apt-get installs {packages})"


def _require(binaries: tuple[str, ...], packages: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed; " + SERVICES_HINT.format(packages=packages)
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_block(size: int) -> int:
    """The first port of ``size`` consecutive free ports."""
    for _ in range(200):
        base = 20000 + int.from_bytes(os.urandom(2), "big") % 30000
        try:
            socks = []
            for port in range(base, base + size):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no block of free ports found")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return int(resp.status) < 500
    except urllib.error.HTTPError as err:
        return err.code < 500
    except OSError:
        return False


@dataclass
class _Daemons:
    """Child daemons and the directory they live in."""

    root: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.root / f"{name}.out", "ab")  # noqa: SIM115 - the child keeps it
        self.processes.append(
            subprocess.Popen(
                argv,
                cwd=str(self.root),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        )
        log.close()

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for proc in self.processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"{what}: {proc.args!r} exited\n{self.logs()}")
            time.sleep(0.1)
        raise RuntimeError(f"{what}: not ready after {timeout} s\n{self.logs()}")

    def logs(self, lines: int = 15) -> str:
        out = []
        for path in [*sorted(self.root.glob("*.out")), *sorted(self.root.glob("log/*.log"))]:
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self, grace: float = 10.0) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()
        self.unmount()
        shutil.rmtree(self.root, ignore_errors=True)

    def unmount(self) -> None:
        """Unmount what the daemons left mounted under the root (dockerd's network namespace
        file stays mounted when it is stopped), deepest first, so the root can be removed."""
        prefix = str(self.root).rstrip("/") + "/"
        try:
            with open("/proc/self/mounts", encoding="utf-8") as handle:
                points = [line.split()[1] for line in handle if len(line.split()) > 1]
        except OSError:
            return
        for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


# -- Ceph RGW -----------------------------------------------------------------------------


@dataclass
class RgwServer:
    """A running radosgw on a one-node memstore Ceph cluster."""

    endpoint: str
    access_key: str
    secret_key: str
    daemons: _Daemons
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def client(self, **kwargs: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=kwargs.pop("config", Config(s3={"addressing_style": "path"})),
            **kwargs,
        )

    def stop(self) -> None:
        # The cluster is throwaway (memstore): no need to wait for a clean shutdown.
        self.daemons.stop(grace=1.0)


_CEPH_CONF = """[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
mon initial members = a
public addr = 127.0.0.1
ms bind ipv6 = false
ms bind port min = {port_min}
ms bind port max = {port_max}
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
mon data avail warn = 1
mon data avail crit = 0
mon allow pool size one = true
paxos propose interval = 0.05
paxos min wait = 0.01
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
run dir = {root}/run
admin socket = {root}/run/$name.asok
pid file = {root}/run/$name.pid
log file = {root}/log/$name.log
keyring = {root}/keyring
[mon.a]
mon data = {root}/mon
[osd.0]
osd data = {root}/osd0
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
osd max object size = 134217728
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {root}/rgw
rgw dns name = localhost
rgw enable usage log = false
"""


def start_rgw(root: Path, memstore_gib: int = 8, timeout: float = 90.0) -> RgwServer:
    """Start mon + memstore OSD + radosgw under ``root``; see the module docstring."""
    _require(RGW_BINARIES, "ceph-mon ceph-osd radosgw")
    daemons = _Daemons(root)
    for sub in ("run", "log", "mon", "osd0", "rgw"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    base = _port_block(24)
    mon_port, rgw_port = base, base + 1
    conf = root / "ceph.conf"
    fsid = str(uuid.uuid4())
    conf.write_text(
        _CEPH_CONF.format(
            fsid=fsid,
            mon_port=mon_port,
            rgw_port=rgw_port,
            port_min=base + 2,
            port_max=base + 23,
            root=root,
            memstore_bytes=memstore_gib * 1024**3,
        )
    )
    ceph = ["-c", str(conf)]

    def run(*argv: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [*argv[:1], *ceph, *argv[1:]],
            cwd=str(root),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv!r} failed: {done.stderr}\n{daemons.logs()}")
        return done.stdout

    try:
        subprocess.run(
            [
                *("ceph-authtool", "--create-keyring", str(root / "keyring")),
                *("--gen-key", "-n", "mon.", "--cap", "mon", "allow *"),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *("monmaptool", "--create", "--add", "a", f"v1:127.0.0.1:{mon_port}"),
                *("--fsid", fsid, str(root / "monmap")),
            ],
            check=True,
            capture_output=True,
        )
        run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(root / "monmap"))
        daemons.spawn("ceph-mon", ["ceph-mon", *ceph, "-f", "-i", "a"])
        osd_uuid = str(uuid.uuid4())
        osd_id = run("ceph", "--connect-timeout", "30", "osd", "new", osd_uuid).strip()
        run("ceph-osd", "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        daemons.spawn("ceph-osd", ["ceph-osd", *ceph, "-f", "-i", osd_id])

        def osd_up() -> bool:
            try:
                stat = json.loads(run("ceph", "osd", "stat", "-f", "json"))
            except (RuntimeError, ValueError):
                return False  # the mon may refuse commands for a moment after startup
            return int(stat.get("num_up_osds", 0)) >= 1

        # A fresh mon sometimes refuses the OSD's first boot commands ("wrong fsid")
        # and the OSD exits; starting it again then works.
        for attempt in range(5):
            try:
                daemons.wait(osd_up, timeout, "ceph-osd")
                break
            except RuntimeError:
                osd = daemons.processes[-1]
                if attempt == 4 or osd.poll() is None:
                    raise
                daemons.processes.remove(osd)
                time.sleep(0.5)
                daemons.spawn("ceph-osd", ["ceph-osd", *ceph, "-f", "-i", osd_id])
        daemons.spawn("radosgw", ["radosgw", *ceph, "-f", "-n", "client.rgw.a"])
        endpoint = f"http://127.0.0.1:{rgw_port}"
        daemons.wait(lambda: _http_ok(endpoint + "/"), timeout, "radosgw")
        access_key = "RUNCTLTEST" + uuid.uuid4().hex[:10].upper()
        secret_key = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        run(
            "radosgw-admin",
            "-n",
            "client.rgw.a",
            "user",
            "create",
            "--uid=runctl",
            "--display-name=runctl tests",
            f"--access-key={access_key}",
            f"--secret={secret_key}",
        )
        server = RgwServer(endpoint, access_key, secret_key, daemons)
        _warm_up(server)
    except BaseException:
        daemons.stop()
        raise
    return server


def _warm_up(server: RgwServer) -> None:
    """Make radosgw create its data pools now (the first object and the first multipart
    upload each take ~2 s while it does), so tests measure throughput, not setup."""
    s3 = server.client()
    bucket = "runctl-warm-up"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="object", Body=b"warm")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="multipart")["UploadId"]
    part = s3.upload_part(
        Bucket=bucket, Key="multipart", UploadId=upload, PartNumber=1, Body=b"w" * 1024
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="multipart",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    for key in ("object", "multipart"):
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)


# -- Docker -------------------------------------------------------------------------------


@dataclass
class DockerDaemon:
    """A running dockerd with its own socket and data root."""

    host: str
    daemons: _Daemons

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host}

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        """Run the docker CLI against this daemon; returns stdout."""
        done = subprocess.run(
            ["docker", *args],
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def stop(self) -> None:
        self.daemons.stop()


def start_dockerd(root: Path, timeout: float = 60.0) -> DockerDaemon:
    """Start dockerd under ``root`` (no bridge, no iptables changes)."""
    _require(DOCKER_BINARIES, "docker.io")
    daemons = _Daemons(root)
    root.mkdir(parents=True, exist_ok=True)
    # dockerd and containerd put unix sockets under these; keep the paths short.
    sock = root / "docker.sock"
    host = f"unix://{sock}"
    daemons.spawn(
        "dockerd",
        [
            "dockerd",
            "--host",
            host,
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "docker.pid"),
            "--bridge",
            "none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
        ],
    )
    daemon = DockerDaemon(host, daemons)

    def ready() -> bool:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env={**os.environ, "DOCKER_HOST": host},
            capture_output=True,
            timeout=10,
        )
        return done.returncode == 0

    try:
        daemons.wait(ready, timeout, "dockerd")
    except BaseException:
        daemons.stop()
        raise
    return daemon


@dataclass
class Registry:
    """A running Docker registry (Distribution) on 127.0.0.1."""

    address: str
    daemons: _Daemons

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        self.daemons.stop()


_REGISTRY_CONF = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: runctl-test-registry
"""


def start_registry(root: Path, timeout: float = 30.0) -> Registry:
    """Start ``docker-registry serve`` under ``root``."""
    _require(REGISTRY_BINARIES, "docker-registry")
    daemons = _Daemons(root)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "config.yml"
    config.write_text(_REGISTRY_CONF.format(root=root, port=port))
    daemons.spawn("registry", ["docker-registry", "serve", str(config)])
    registry = Registry(f"127.0.0.1:{port}", daemons)
    try:
        daemons.wait(lambda: _http_ok(registry.url + "/v2/"), timeout, "docker-registry")
    except BaseException:
        daemons.stop()
        raise
    return registry
