"""What goes to the job's outputs when the script ends: ``RUNCTL_OUTPUT_DIR`` and ``--outputs``.

``RUNCTL_OUTPUT_DIR`` is synced to the job's output URI (``--output-s3``, else the job's
``outputs/``). Each ``--outputs`` path is relative to the project root -- the code directory on
an instance, as under ``runctl local`` -- and lands under the same relative path:
``--outputs out`` puts the script's ``out/ckpt.pt`` at ``<output URI>out/ckpt.pt``. A path the
script never made, or an upload that fails, is said in the log; neither changes the job's
verdict, which is the script's exit code. Python 3.9-safe: this runs on the instance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runctl.errors import RunctlError
from runctl.job.layout import project_path


def output_targets(
    uri: str, output_dir: Path, workdir: Path, outputs: Sequence[str]
) -> tuple[list[tuple[Path, str]], list[str]]:
    """What to upload where, as (local path, S3 URI) pairs, and the ``--outputs`` paths that
    do not exist (or are not allowed)."""
    base = uri if uri.endswith("/") else uri + "/"
    targets: list[tuple[Path, str]] = []
    if output_dir.is_dir() and any(output_dir.iterdir()):
        targets.append((output_dir, base))
    missing = []
    for relative in outputs:
        try:
            path = project_path(relative, workdir)
        except ValueError:
            missing.append(relative)
            continue
        if not path.exists():
            missing.append(relative)
            continue
        name = Path(relative).as_posix().strip("/")
        targets.append((path, base + name + ("/" if path.is_dir() else "")))
    return targets, missing


def upload_outputs(
    s3: Callable[[], Any],
    uri: str,
    output_dir: Path,
    workdir: Path,
    outputs: Sequence[str],
    say: Callable[[str], None],
) -> None:
    """Upload ``output_dir`` and the ``outputs`` paths under ``uri`` (see the module)."""
    targets, missing = output_targets(uri, output_dir, workdir, outputs)
    for relative in missing:
        say(f"--outputs {relative}: not found in {workdir} when the script ended; not uploaded")
    for source, destination in targets:
        try:
            files, size = _upload(s3(), source, destination)
            say(f"outputs uploaded to {destination}: {files} files, {size} bytes")
        except (RunctlError, OSError) as exc:
            say(f"uploading outputs to {destination} failed: {exc}")


def _upload(client: Any, source: Path, destination: str) -> tuple[int, int]:
    from runctl.aws.s3 import S3Uri
    from runctl.aws.s3_copy import upload_path
    from runctl.aws.s3_sync import sync

    if source.is_dir():
        report = sync(client, str(source), destination).transfer
    else:
        report = upload_path(client, source, S3Uri.parse(destination))
    return report.files, report.bytes
