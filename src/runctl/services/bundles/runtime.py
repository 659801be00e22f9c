"""The runtime bundle: runctl's instance side and its pure-Python dependencies in one tar.gz.

An instance has only bash and python3 >= 3.9, so runctl ships what its runner imports: the
packages ``runctl/job/`` (the job contract) and ``runctl/remote/`` (the instance program) whole,
``runctl/__init__.py``, ``runctl/errors.py`` and from ``runctl/aws/`` the session factory, its
errors and the S3 engine (:data:`RUNCTL_MODULES`), plus boto3, botocore (its ``data/`` pruned to
s3, ec2 and sts and the few top-level files botocore loads at start), s3transfer, jmespath,
python-dateutil, six, urllib3 and certifi. The archive is deterministic and content-addressed
(``runctl/runtime/<sha256>.tar.gz``), uploaded only when absent, and fetched on the instance by a
presigned URL (see :mod:`runctl.services.jobs.commands`).

The packages come from this machine's site-packages when their ``Requires-Python`` admits the
oldest instance Python (3.9). Otherwise (boto3 >= 1.43 needs 3.10) pip downloads the newest
pure-Python wheels that still support 3.9, once, into ``~/.cache/runctl/runtime/``; if pip cannot
(offline), the local packages are used with a warning and the bundle records the minimum Python
they need, which the start command checks. Built bundles are cached there too, keyed by the
content of runctl's shipped files and the package versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import runctl
from runctl.paths import cache_dir as user_cache_dir
from runctl.services.bundles.tarball import write_deterministic_targz

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TARGET_PYTHON = (3, 9)
DISTRIBUTIONS = {
    "boto3": ("boto3",),
    "botocore": ("botocore",),
    "s3transfer": ("s3transfer",),
    "jmespath": ("jmespath",),
    "python-dateutil": ("dateutil",),
    "six": ("six.py",),
    "urllib3": ("urllib3",),
    "certifi": ("certifi",),
}
BOTOCORE_SERVICES = ("s3", "ec2", "sts", "ecr")
BOTOCORE_DATA_FILES = (
    "_retry.json",
    "endpoints.json",
    "partitions.json",
    "sdk-default-configuration.json",
)
BOTO3_RESOURCES = ("s3", "ec2")
#: What of runctl the instance runs: the job contract and the instance program, whole ...
RUNCTL_PACKAGES = ("job", "remote")
#: ... and the modules they import: the error tree, the session factory (and the name rules it
#: checks regions with), the S3 engine and ECR (a container job's login).
RUNCTL_MODULES = (
    "__init__",
    "errors",
    "naming",
    "aws/__init__",
    "aws/errors",
    "aws/ecr",
    "aws/session",
    "aws/s3",
    "aws/s3_cleanup",
    "aws/s3_copy",
    "aws/s3_digests",
    "aws/s3_integrity",
    "aws/s3_paths",
    "aws/s3_presign",
    "aws/s3_sync",
    "aws/s3_transfer",
    "aws/s3_uploads",
)
MANIFEST_NAME = "runctl-runtime.json"
#: The runtime bundle's URL is fetched once, by the start command, seconds after it is made: it
#: lives minutes, not hours (it is the only credential-bearing text in an SSM command).
PRESIGN_SECONDS = 15 * 60
_LOWER_BOUND = re.compile(r">=?\s*(\d+)\.(\d+)")


@dataclass(frozen=True)
class Package:
    """One shipped distribution: name, version and the directory its top-level entries are in."""

    name: str
    version: str
    site: Path
    requires_python: str | None = None


@dataclass
class RuntimeBundle:
    """A built runtime bundle on disk."""

    path: Path
    sha256: str
    size: int
    min_python: tuple[int, int]
    packages: dict[str, str] = field(default_factory=dict)
    source: str = "local"
    warnings: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        from runctl.job.spec import runtime_key

        return runtime_key(self.sha256)


@dataclass(frozen=True)
class RuntimeRef:
    """An uploaded runtime bundle: its key, sha256, a presigned GET URL, whether we uploaded."""

    key: str
    sha256: str
    size: int
    url: str
    uploaded: bool


def min_python_of(requires_python: str | None) -> tuple[int, int]:
    """The lowest Python ``Requires-Python`` admits (only ``>=X.Y`` bounds matter here)."""
    bounds = [(int(a), int(b)) for a, b in _LOWER_BOUND.findall(requires_python or "")]
    return max(bounds) if bounds else (3, 0)


def local_packages() -> list[Package]:
    """The runtime's distributions as installed here; NotFound-style RuntimeError if missing."""
    found = []
    for name in DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name == "certifi":
                continue  # optional: botocore carries its own CA bundle
            raise RuntimeError(f"{name} is not installed; reinstall runctl") from None
        site = Path(str(dist.locate_file("")))
        found.append(Package(name, dist.version, site, _requires_python(dist)))
    return found


def _requires_python(dist: metadata.Distribution) -> str | None:
    values = dist.metadata.get_all("Requires-Python") or []
    return str(values[0]) if values else None


def _packages_min_python(packages: list[Package]) -> tuple[int, int]:
    return max((min_python_of(p.requires_python) for p in packages), default=(3, 0))


def _pip_site(cache_dir: Path, target: tuple[int, int], packages: list[Package]) -> Path:
    """Download wheels that support ``target`` and unpack them into a cached site directory."""
    boto3 = next(p for p in packages if p.name == "boto3")
    request = [f"boto3<={boto3.version}", "certifi"]
    tag = hashlib.sha256(json.dumps([target, request]).encode()).hexdigest()[:16]
    site = cache_dir / f"site-py{target[0]}.{target[1]}-{tag}"
    if (site / ".complete").is_file():
        return site
    wheels = cache_dir / f"wheels-{tag}"
    wheels.mkdir(parents=True, exist_ok=True)
    version = f"{target[0]}.{target[1]}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--python-version",
            version,
            "--dest",
            str(wheels),
            *request,
        ],
        check=True,
        capture_output=True,
    )
    site.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    (site / ".complete").write_text("ok\n")
    return site


def _site_packages(site: Path) -> list[Package]:
    found = []
    for name in DISTRIBUTIONS:
        dist_name = name.replace("-", "_")
        infos = sorted(site.glob(f"{dist_name}-*.dist-info"))
        if not infos:
            continue
        meta = metadata.PathDistribution(infos[-1])
        found.append(Package(name, meta.version, site, _requires_python(meta)))
    return found


def resolve_packages(
    cache_dir: Path, target: tuple[int, int]
) -> tuple[list[Package], str, list[str]]:
    """The packages to ship for ``target``: local ones if they support it, else pip's.

    Returns (packages, source "local" or "pip", warnings).
    """
    local = local_packages()
    if _packages_min_python(local) <= target:
        return local, "local", []
    try:
        site = _pip_site(cache_dir, target, local)
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = (
            exc.stderr.decode(errors="replace").strip()[-300:]
            if isinstance(exc, subprocess.CalledProcessError) and exc.stderr
            else str(exc)
        )
        need = ".".join(map(str, _packages_min_python(local)))
        return (
            local,
            "local",
            [
                f"could not fetch Python {target[0]}.{target[1]}-compatible boto3 with pip "
                f"({detail}); the runtime bundle needs python3 >= {need} on the instance"
            ],
        )
    return _site_packages(site), "pip", []


def runctl_files() -> list[tuple[str, Path]]:
    """The runctl modules the bundle ships: ``(archive name, source path)``, sorted."""
    return sorted(_runctl_entries())


def _runctl_entries() -> Iterator[tuple[str, Path]]:
    package_dir = Path(runctl.__file__).resolve().parent
    paths = [package_dir / f"{module}.py" for module in RUNCTL_MODULES]
    for package in RUNCTL_PACKAGES:
        paths.extend((package_dir / package).rglob("*.py"))
    for path in paths:
        yield f"runctl/{path.relative_to(package_dir).as_posix()}", path


def _tree(site: Path, top: str) -> Iterator[tuple[str, Path]]:
    start = site / top
    if start.is_file():
        yield top, start
        return
    for directory, dirnames, filenames in os.walk(start):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        rel_dir = Path(directory).relative_to(site).as_posix()
        if not _keep_dir(rel_dir, Path(directory)):
            dirnames[:] = []
            continue
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")) or name == "examples-1.json":
                continue
            if rel_dir == "botocore/data" and name not in BOTOCORE_DATA_FILES:
                continue
            yield f"{rel_dir}/{name}", Path(directory) / name


def _keep_dir(rel_dir: str, path: Path) -> bool:
    """Prune botocore's and boto3's data to the services the runner calls (newest API only)."""
    parts = rel_dir.split("/")
    if parts[:2] == ["botocore", "data"] and len(parts) >= 3:
        if parts[2] not in BOTOCORE_SERVICES:
            return False
        if len(parts) == 4:
            versions = sorted(p.name for p in path.parent.iterdir() if p.is_dir())
            return parts[3] == versions[-1]
    if parts[:2] == ["boto3", "data"] and len(parts) >= 3:
        return parts[2] in BOTO3_RESOURCES
    return True


def build_runtime_bundle(
    cache_dir: Path | None = None, *, target: tuple[int, int] = TARGET_PYTHON
) -> RuntimeBundle:
    """Build (or reuse from the cache) the runtime bundle for instances with Python >= target.

    Returns the RuntimeBundle; raises RuntimeError when a required package is not installed.
    """
    cache_dir = cache_dir or user_cache_dir("runtime")
    cache_dir.mkdir(parents=True, exist_ok=True)
    packages, source, warnings = resolve_packages(cache_dir, target)
    entries = list(_runctl_entries())
    for package in packages:
        for top in DISTRIBUTIONS[package.name]:
            entries.extend(_tree(package.site, top))
    min_python = max(target, _packages_min_python(packages))
    versions = {p.name: p.version for p in packages}
    info = {
        "min_python": f"{min_python[0]}.{min_python[1]}",
        "packages": versions,
        "runctl": runctl.__version__,
    }
    key = hashlib.sha256(json.dumps(info, sort_keys=True).encode())
    for name, path in sorted(entries):
        key.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    cached = cache_dir / f"bundle-{key.hexdigest()[:32]}.json"
    meta = _read_meta(cached)
    if meta is not None:
        path, sha256, size = Path(str(meta["path"])), str(meta["sha256"]), int(str(meta["size"]))
        return RuntimeBundle(path, sha256, size, min_python, versions, source, warnings)
    manifest = cache_dir / f".{MANIFEST_NAME}.{os.getpid()}"
    manifest.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    try:
        result = write_deterministic_targz(
            [*entries, (MANIFEST_NAME, manifest)], cache_dir / f"building-{os.getpid()}.tar.gz"
        )
    finally:
        manifest.unlink(missing_ok=True)
    final = cache_dir / f"{result.sha256}.tar.gz"
    os.replace(result.path, final)
    cached.write_text(
        json.dumps({"path": str(final), "sha256": result.sha256, "size": result.size})
    )
    return RuntimeBundle(final, result.sha256, result.size, min_python, versions, source, warnings)


def _read_meta(path: Path) -> dict[str, object] | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if Path(str(meta.get("path"))).is_file() else None


def upload_runtime_bundle(
    client: S3Client,
    bucket: str,
    bundle: RuntimeBundle,
    *,
    expires: int = PRESIGN_SECONDS,
    bucket_region: str | None = None,
) -> RuntimeRef:
    """Upload the bundle unless ``runtime/<sha256>.tar.gz`` exists; return it with a SigV4
    presigned GET URL valid for ``expires`` seconds, signed for the bucket's region (looked up
    unless ``bucket_region`` is given)."""
    from runctl.aws.buckets import get_bucket_region
    from runctl.aws.s3 import S3Uri, head_object
    from runctl.aws.s3_presign import presign_get_object
    from runctl.aws.s3_transfer import UploadItem, upload_files
    from runctl.errors import NotFoundError

    uri = S3Uri(bucket, bundle.key)
    try:
        head_object(client, uri)
        uploaded = False
    except NotFoundError:
        upload_files(client, [UploadItem(bundle.path, uri, bundle.size)])
        uploaded = True
    region = bucket_region or get_bucket_region(client, bucket)
    url = presign_get_object(client, bucket, bundle.key, region=region, expires=expires)
    return RuntimeRef(bundle.key, bundle.sha256, bundle.size, url, uploaded)


def ensure_runtime_bundle(
    client: S3Client, bucket: str, cache_dir: Path | None = None
) -> RuntimeRef:
    """Build (cached) and upload (if absent) the runtime bundle; what the start command needs."""
    return upload_runtime_bundle(client, bucket, build_runtime_bundle(cache_dir))
