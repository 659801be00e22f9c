"""Helpers for the job CLI tests: a project on disk, a bucket, a ready instance."""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path

from runctl.services.tags import current_user
from tests.cloud.harness import Cloud

BUCKET = "runctl-test-bucket"


def make_project(root: Path, files: dict[str, str]) -> Path:
    """A project directory (with a pyproject.toml marker) holding ``files``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    (root / ".runctl.toml").write_text(
        f'[aws]\ns3_bucket = "{BUCKET}"\nproject_name = "demo"\n'
        "[checkpoint]\nsync_interval_seconds = 1\n"
    )
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def ready_instance(cloud: Cloud, **kwargs: object) -> str:
    """A running runctl instance with an instance profile (SSM online) and the job bucket."""
    s3 = cloud.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    # What `aws create` tags an instance with: runctl stops or terminates only its own.
    owned = {"runctl:managed": "true", "runctl:project": "demo", "runctl:user": current_user()}
    kwargs.setdefault("tags", owned)
    instance_id = cloud.run_instance(**kwargs)  # type: ignore[arg-type]
    cloud.wait_state(instance_id, "running")
    return instance_id
