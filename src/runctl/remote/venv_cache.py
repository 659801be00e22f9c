"""Packed requirements venvs in S3, so that a replacement instance unpacks instead of running pip.

::

    s3://<bucket>/runctl/<project>/venvs/<key>.tar.gz   the venv's files
                                        <key>.json     written last: sha256 and size of the
                                                       archive, the venv's identity, its path

The key is the venv's content address (:func:`runctl.remote.venvs.venv_key`). A reader trusts an
archive only when its ``.json`` exists and the bytes match its sha256; anything else is treated as
no cache. The archive holds regular files and directories only: ``python -m venv`` makes the
interpreter links, ``pyvenv.cfg`` and the activate scripts for the machine it runs on, and the
console scripts' ``#!`` lines are rewritten when the venv is unpacked at another path. The
instance role may read and write under ``runctl/`` of the bucket, which is where these live.
Python 3.9-safe: this runs on the instance.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runctl.job.spec import utc_now
from runctl.remote.staging import StagingError, safe_extract, sha256_of

ARCHIVE_SUFFIX = ".tar.gz"
META_SUFFIX = ".json"
#: Made by ``python -m venv`` on the machine that unpacks, never packed.
MADE_BY_VENV = ("pyvenv.cfg", "bin/activate", "bin/activate.csh", "bin/activate.fish",
                "bin/Activate.ps1")  # fmt: skip
COMPRESS_LEVEL = 3  # most of the ratio of level 9 at a fraction of its time
SCRIPT_LIMIT = 1024 * 1024


def pack_venv(venv: Path, archive: Path) -> tuple[str, int]:
    """Pack ``venv``'s regular files and directories into ``archive``; its sha256 and size."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz", compresslevel=COMPRESS_LEVEL) as tar:
        for directory, dirs, files in os.walk(venv):
            here = Path(directory)
            dirs[:] = sorted(d for d in dirs if not (here / d).is_symlink())
            for name in sorted(files):
                path = here / name
                rel = path.relative_to(venv).as_posix()
                if path.is_symlink() or rel in MADE_BY_VENV or name.startswith(".runctl"):
                    continue
                tar.add(str(path), arcname=rel, recursive=False)
    return sha256_of(archive), archive.stat().st_size


def unpack_venv(archive: Path, venv: Path, *, packed_from: str) -> None:
    """Unpack ``archive`` into ``venv`` (made by ``python -m venv`` just before) and point the
    console scripts packed at ``packed_from`` at this venv's python."""
    safe_extract(archive, venv)
    if os.path.normpath(packed_from) != os.path.normpath(str(venv)):
        relocate_scripts(venv / "bin", packed_from, str(venv))


def relocate_scripts(bin_dir: Path, old: str, new: str) -> list[str]:
    """Rewrite the ``#!`` (and pip's ``exec`` line for long paths) of scripts in ``bin_dir``
    that name the old venv; returns the names rewritten."""
    if not bin_dir.is_dir():
        return []
    needle, replacement = (old.rstrip("/") + "/bin/").encode(), (new.rstrip("/") + "/bin/").encode()
    changed = []
    for path in sorted(bin_dir.iterdir()):
        if path.is_symlink() or not path.is_file() or path.stat().st_size > SCRIPT_LIMIT:
            continue
        data = path.read_bytes()
        if not data.startswith(b"#!") or needle not in data:
            continue
        head, sep, rest = data.partition(b"\n")
        second, sep2, tail = rest.partition(b"\n")
        fixed = head.replace(needle, replacement) + sep + second.replace(needle, replacement)
        mode = path.stat().st_mode
        path.write_bytes(fixed + sep2 + tail)
        path.chmod(mode)
        changed.append(path.name)
    return changed


class VenvStore:
    """The packed venvs of one project: ``s3://<bucket>/runctl/<project>/venvs/``."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _uri(self, key: str, suffix: str) -> Any:
        from runctl.aws.s3 import S3Uri

        return S3Uri(self.bucket, f"{self.prefix}{key}{suffix}")

    def fetch(self, key: str, dest: Path) -> dict[str, Any] | None:
        """Download the packed venv ``key`` to ``dest`` and verify it; its metadata, or None
        when none was published. Raises StagingError when the bytes do not match."""
        from runctl.aws.s3 import get_bytes
        from runctl.aws.s3_copy import download_path
        from runctl.errors import NotFoundError

        try:
            meta = json.loads(get_bytes(self.client, self._uri(key, META_SUFFIX)))
        except NotFoundError:
            return None
        if not isinstance(meta, dict):
            raise StagingError(f"{self._uri(key, META_SUFFIX)} is not a JSON object")
        download_path(self.client, self._uri(key, ARCHIVE_SUFFIX), dest)
        actual = sha256_of(dest)
        if actual != meta.get("sha256"):
            raise StagingError(f"{self._uri(key, ARCHIVE_SUFFIX)} does not match its sha256")
        return meta

    def publish(
        self,
        key: str,
        archive: Path,
        meta: dict[str, Any],
        *,
        stop: Callable[[], bool] | None = None,
    ) -> bool:
        """Upload ``archive``, then its metadata (last, so a reader never sees half of it);
        False when ``stop()`` came first."""
        from runctl.aws.s3 import put_bytes
        from runctl.aws.s3_transfer import UploadItem, upload_files

        size = archive.stat().st_size
        item = UploadItem(archive, self._uri(key, ARCHIVE_SUFFIX), size)
        report = upload_files(self.client, [item], stop=stop)
        if report.abandoned:
            return False
        document = {**meta, "key": key, "size": size, "created": utc_now()}
        data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")
        put_bytes(self.client, self._uri(key, META_SUFFIX), data, content_type="application/json")
        return True
