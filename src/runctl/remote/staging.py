"""Getting a job ready on the instance: its code and its data.

The code bundle (``code/<sha256>.tar.gz``) is downloaded through the S3 engine, checked against
its sha256 and extracted into ``jobs/<id>/code`` (kept across attempts on the same machine: a
``.runctl-code-sha256`` marker says which bundle it holds). ``--data-s3`` is synced into
``RUNCTL_DATA_DIR``. The requirements venv is :mod:`runctl.remote.venvs`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

from runctl.remote.process import JobLog

CODE_MARKER = ".runctl-code-sha256"


class StagingError(Exception):
    """The job could not be prepared (its message says what failed)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar.gz into ``dest``, refusing links, devices and paths that leave ``dest``."""
    root = dest.resolve()
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        for member in members:
            target = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()):
                raise StagingError(f"{archive.name}: refusing {member.name!r} (not a file)")
            if target != root and root not in target.parents:
                raise StagingError(f"{archive.name}: refusing {member.name!r} (leaves the dir)")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, members=members, filter="data")
        else:  # Python < 3.9.17 has no extraction filters; members were checked above
            tar.extractall(root, members=members)  # noqa: S202


def fetch_code(
    client: Any, bucket: str, key: str, sha256: str | None, code_dir: Path, log: JobLog
) -> None:
    """Download and extract the code bundle into ``code_dir`` unless it already holds it."""
    from runctl.aws.s3 import S3Uri
    from runctl.aws.s3_copy import download_path

    marker = code_dir / CODE_MARKER
    if sha256 and marker.is_file() and marker.read_text().strip() == sha256:
        log.note(f"code {sha256[:12]} already extracted")
        return
    archive = code_dir.parent / "code.tar.gz"
    log.note(f"fetching code s3://{bucket}/{key}")
    download_path(client, S3Uri(bucket, key), archive)
    actual = sha256_of(archive)
    if sha256 and actual != sha256:
        raise StagingError(f"code bundle sha256 {actual} does not match the job's {sha256}")
    staging = code_dir.with_name(code_dir.name + ".extracting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    safe_extract(archive, staging)
    (staging / CODE_MARKER).write_text(actual + "\n")
    shutil.rmtree(code_dir, ignore_errors=True)
    os.replace(staging, code_dir)
    archive.unlink()


def fetch_data(client: Any, data_s3: str, data_dir: Path, log: JobLog) -> None:
    """Sync ``data_s3`` (a prefix or one object) into ``data_dir``.

    Keys that cannot be files are logged one by one; when some could not be written (a key that
    is also another key's directory) everything else is staged first, then StagingError is
    raised, as ``runctl s3 sync`` exits non-zero.
    """
    log.note(f"staging data {data_s3} -> {data_dir}")
    report = download_into(client, data_s3, data_dir, retry="train again")
    log.note(f"data: {report.files} files, {report.bytes} bytes in {report.seconds:.1f}s")
    for issue in report.skipped:
        log.note(f"data: skipped {issue.uri}: {issue.reason}")
    for issue in report.failed:
        log.note(f"data: not written: {issue.uri}: {issue.reason}")
    if report.failed:
        first = report.failed[0]
        raise StagingError(
            f"staging {data_s3}: {len(report.failed)} object(s) could not be written "
            f"(first: {first.uri}: {first.reason}); everything else was staged"
        )


def download_into(client: Any, uri_text: str, directory: Path, *, retry: str) -> Any:
    """Sync an S3 prefix (or download one object) into ``directory``; the TransferReport.

    Raises StagingError saying how to grant the instance role read access when it may not read
    the URI (``retry`` says what to do after granting it).
    """
    from runctl.aws.s3 import S3Uri
    from runctl.aws.s3_copy import download_path
    from runctl.aws.s3_sync import sync
    from runctl.errors import AuthError

    directory.mkdir(parents=True, exist_ok=True)
    uri = S3Uri.parse(uri_text)
    try:
        if uri.is_prefix:
            return sync(client, str(uri), str(directory)).transfer
        return download_path(client, uri, directory / uri.name)
    except AuthError as exc:
        # On an instance the identity is the instance role, not the user: say how to grant it.
        raise StagingError(
            f"{exc.message}: the instance role may not read {uri_text}; on your machine run "
            f"`runctl aws setup --grant {uri_text} --read-only`, then {retry}"
        ) from exc


def helper_env() -> dict[str, str]:
    """The environment for pip and venv: ours, without the runtime bundle on PYTHONPATH."""
    env = dict(os.environ)
    cleaned = without_runtime_path(env.get("PYTHONPATH", ""))
    if cleaned:
        env["PYTHONPATH"] = cleaned
    else:
        env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def runtime_dir() -> Path:
    """The directory this copy of runctl was imported from (the runtime bundle on an instance)."""
    return Path(__file__).resolve().parent.parent.parent


def without_runtime_path(pythonpath: str) -> str:
    """``PYTHONPATH`` minus the runtime bundle, so a script never imports runctl's boto3."""
    bundle = runtime_dir()
    kept = [
        entry for entry in pythonpath.split(os.pathsep) if entry and Path(entry).resolve() != bundle
    ]
    return os.pathsep.join(kept)
