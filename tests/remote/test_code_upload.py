"""Identical code is uploaded once: the bundle is content-addressed under ``code/<sha256>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runctl.services.bundles.code import build_code_bundle, upload_code_bundle


def test_unchanged_code_is_not_uploaded_twice(s3: Any, bucket: str, tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "train.py").write_text("print('hi')\n")

    first = build_code_bundle(project, tmp_path / "cache")
    uploaded = upload_code_bundle(s3, first, bucket, "My Project")
    again = build_code_bundle(project, tmp_path / "cache")
    reuploaded = upload_code_bundle(s3, again, bucket, "My Project")

    assert uploaded is True and reuploaded is False
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"runctl/my-project/code/{first.sha256}.tar.gz"]
