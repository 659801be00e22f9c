"""The S3 checkpoint store, on top of runctl's S3 transfer engine (``runctl.aws.s3*``).

Every byte goes through the engine: listing (one paginated LIST rather than a HEAD per file),
small documents as checksummed PUTs, files through one s3transfer manager in parallel (given up
at a deadline), downloads verified and renamed into place only when complete, and the multipart
uploads a killed commit left behind found and aborted (:mod:`runctl.aws.s3_uploads`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from runctl.aws.s3 import S3Object, S3Uri, delete_objects, get_bytes, iter_objects, put_bytes
from runctl.aws.s3 import stat_object as _stat_object
from runctl.aws.s3_transfer import DownloadItem, UploadItem, download_objects, upload_files
from runctl.aws.s3_uploads import abort_incomplete_uploads
from runctl.job.stores import CheckpointStore, StoredObject


class S3Store(CheckpointStore):
    """A checkpoint store under an ``s3://bucket/prefix/``."""

    def __init__(self, client: Any, uri: str) -> None:
        self.client = client
        self.base = S3Uri.parse(uri).as_prefix()
        self.uri = str(self.base)
        self._listed: dict[str, S3Object] = {}

    def _uri(self, key: str) -> S3Uri:
        return self.base.join(key)

    def list(self, prefix: str) -> dict[str, StoredObject]:
        found: dict[str, StoredObject] = {}
        root = len(self.base.key)
        for obj in iter_objects(self.client, self._uri(prefix)):
            key = obj.key[root:]
            self._listed[key] = obj
            found[key] = StoredObject(key, obj.size, obj.last_modified)
        return found

    def read(self, key: str) -> bytes:
        return get_bytes(self.client, self._uri(key))

    def write(self, key: str, data: bytes) -> None:
        content_type = "application/json" if key.endswith(".json") else None
        put_bytes(self.client, self._uri(key), data, content_type=content_type)

    def upload(
        self, items: Sequence[tuple[Path, str]], *, stop: Callable[[], bool] | None = None
    ) -> Sequence[str]:
        if not items:
            return []
        report = upload_files(
            self.client,
            [UploadItem(path, self._uri(key), path.stat().st_size) for path, key in items],
            stop=stop,
        )
        abandoned = set(report.abandoned)
        return [key for _path, key in items if str(self._uri(key)) not in abandoned]

    def download(self, items: Sequence[tuple[str, Path]]) -> None:
        if not items:
            return
        objects = []
        for key, dest in items:
            obj = self._listed.get(key) or _stat_object(self.client, self._uri(key))
            objects.append(DownloadItem(obj, dest))
        download_objects(self.client, objects)

    def delete(self, keys: Iterable[str]) -> int:
        wanted = list(keys)
        for key in wanted:
            self._listed.pop(key, None)
        return delete_objects(self.client, self.base.bucket, [self._uri(k).key for k in wanted])

    def abort_incomplete_uploads(self, prefix: str) -> Sequence[str]:
        report = abort_incomplete_uploads(self.client, self._uri(prefix))
        root = len(self.base.key)
        return [upload.key[root:] for upload in report.aborted]
