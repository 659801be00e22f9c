"""Where a job's outputs go when the script ends: RUNCTL_OUTPUT_DIR and ``--outputs`` paths."""

from __future__ import annotations

from pathlib import Path

from runctl.remote.outputs import output_targets


def test_outputs_paths_land_under_their_own_name(tmp_path: Path) -> None:
    code, output_dir = tmp_path / "code", tmp_path / "outputs"
    (code / "out").mkdir(parents=True)
    (code / "out" / "ckpt.pt").write_bytes(b"x")
    (code / "metrics.json").write_text("{}")
    output_dir.mkdir()
    (output_dir / "result.json").write_text("{}")

    targets, missing = output_targets(
        "s3://b/runctl/p/jobs/j/outputs", output_dir, code, ["out/", "metrics.json", "never"]
    )

    assert targets == [
        (output_dir, "s3://b/runctl/p/jobs/j/outputs/"),
        (code / "out", "s3://b/runctl/p/jobs/j/outputs/out/"),
        (code / "metrics.json", "s3://b/runctl/p/jobs/j/outputs/metrics.json"),
    ]
    assert missing == ["never"]


def test_an_empty_output_dir_and_paths_leaving_the_project_upload_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "outputs").mkdir()
    targets, missing = output_targets("s3://b/o/", tmp_path / "outputs", tmp_path, ["../x"])
    assert targets == []
    assert missing == ["../x"]
