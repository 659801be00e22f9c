"""Checkpoint manifests: what a committed checkpoint is, and finding them in a store.

A store (:mod:`runctl.job.stores`) holds::

    blobs/<sha256>                                           file contents, content-addressed
    manifests/<seq:08d>-<yyyymmddTHHMMSSZ>-a<attempt>.json   one per commit, written LAST

A manifest lists every file of the checkpoint directory (relative path, size, sha256) with the
job id, attempt and time; the file names live only here, so blob keys stay content-addressed.
Its name carries the sequence number and the attempt, so a listing alone orders them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from runctl.errors import NotFoundError
from runctl.job.spec import UTC, utc_now
from runctl.job.stores import CheckpointStore

BLOBS = "blobs/"
MANIFESTS = "manifests/"


@dataclass(frozen=True)
class ManifestFile:
    """One file of a checkpoint."""

    path: str
    size: int
    sha256: str

    @property
    def blob_key(self) -> str:
        return BLOBS + self.sha256


@dataclass
class Manifest:
    """A committed checkpoint: what a resume restores."""

    id: str
    sequence: int
    job_id: str
    attempt: int
    created: str
    files: list[ManifestFile] = field(default_factory=list)
    format: int = 1

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def by_path(self) -> dict[str, ManifestFile]:
        return {f.path: f for f in self.files}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_size"] = self.total_size
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            id=str(data["id"]),
            sequence=int(data["sequence"]),
            job_id=str(data.get("job_id", "")),
            attempt=int(data.get("attempt", 0)),
            created=str(data.get("created", "")),
            files=[
                ManifestFile(str(f["path"]), int(f["size"]), str(f["sha256"]))
                for f in data.get("files", [])
            ],
            format=int(data.get("format", 1)),
        )


@dataclass(frozen=True)
class ManifestRef:
    """A manifest as listed (its name carries sequence and attempt; no GET needed)."""

    id: str
    sequence: int
    attempt: int
    modified: datetime


def _parse_manifest_name(key: str, modified: datetime) -> ManifestRef | None:
    name = key[len(MANIFESTS) :]
    if "/" in name or not name.endswith(".json"):
        return None
    stem = name[: -len(".json")]
    parts = stem.split("-")
    try:
        sequence = int(parts[0])
        attempt = int(parts[-1][1:]) if parts[-1].startswith("a") else 0
    except ValueError:
        return None
    return ManifestRef(stem, sequence, attempt, modified)


def list_manifests(store: CheckpointStore) -> list[ManifestRef]:
    """Every manifest in the store, newest (highest sequence) first."""
    refs = []
    for key, obj in store.list(MANIFESTS).items():
        ref = _parse_manifest_name(key, obj.modified)
        if ref is not None:
            refs.append(ref)
    return sorted(refs, key=lambda r: (r.sequence, r.id), reverse=True)


def read_manifest(store: CheckpointStore, manifest_id: str) -> Manifest:
    """The manifest ``manifest_id``; NotFoundError when it does not exist."""
    data = json.loads(store.read(f"{MANIFESTS}{manifest_id}.json"))
    return Manifest.from_dict(data)


def latest_manifest(store: CheckpointStore) -> Manifest | None:
    """The newest readable manifest, or None when nothing was ever committed."""
    for ref in list_manifests(store):
        try:
            return read_manifest(store, ref.id)
        except (NotFoundError, ValueError, KeyError):
            continue
    return None


def write_manifest(
    store: CheckpointStore,
    files: list[ManifestFile],
    *,
    job_id: str,
    attempt: int,
    after: Manifest | None,
) -> Manifest:
    """Write the next manifest (sequence above every listed one and ``after``); return it."""
    sequence = (after.sequence + 1) if after else 1
    refs = list_manifests(store)
    if refs:
        sequence = max(sequence, refs[0].sequence + 1)
    now = datetime.now(UTC)
    manifest = Manifest(
        id=f"{sequence:08d}-{now:%Y%m%dT%H%M%SZ}-a{attempt}",
        sequence=sequence,
        job_id=job_id,
        attempt=attempt,
        created=utc_now(),
        files=sorted(files, key=lambda f: f.path),
    )
    body = json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode("utf-8")
    store.write(f"{MANIFESTS}{manifest.id}.json", body)
    return manifest
