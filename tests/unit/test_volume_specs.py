"""What a volume may be, checked before any AWS call (runctl.services.volumes.specs), and what it
costs (runctl.services.volumes.costs)."""

from __future__ import annotations

import pytest

from runctl.errors import UsageError
from runctl.services.volumes.costs import snapshot_month_usd, volume_month_usd
from runctl.services.volumes.specs import (
    check_device,
    check_mount,
    check_placement,
    check_prewarm,
    check_volume_option,
    free_device,
    volume_shape,
)


def test_presets_size_gp3_for_their_use() -> None:
    dataset = volume_shape("gp3", 500, preset="dataset")
    assert (dataset.iops, dataset.throughput) == (4000, 500)
    checkpoints = volume_shape("gp3", 500, preset="checkpoints")
    assert (checkpoints.iops, checkpoints.throughput) == (3000, 250)


def test_a_small_volume_gets_what_its_size_allows_of_a_preset() -> None:
    small = volume_shape("gp3", 6, preset="dataset")  # 500 IOPS/GiB: at most 3000 IOPS
    assert small.iops == 3000 and small.throughput == 500
    assert small.throughput <= small.iops * 0.25


def test_explicit_settings_win_over_the_preset() -> None:
    shape = volume_shape("gp3", 100, preset="dataset", iops=8000, throughput=1000)
    assert (shape.iops, shape.throughput) == (8000, 1000)


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        (("gp3", 0), {}, "1-16384"),
        (("st1", 100), {}, "125-16384"),
        (("gp3", None), {}, "--size is required"),
        (("gp2", 10), {"iops": 3000}, "no IOPS"),
        (("io2", 10), {}, "--iops is required"),
        (("io2", 10), {"iops": 6000}, "500 IOPS per GiB"),
        (("gp3", 10), {"throughput": 900}, "at most 750"),
        (("gp3", 10), {"throughput": 2000}, "125-1000"),
        (("st1", 200), {"throughput": 200}, "only gp3"),
        (("gp2", 10), {"preset": "dataset"}, "sizes gp3"),
        (("gp3", 10), {"preset": "fast"}, "dataset, checkpoints"),
        (("sc1", 10), {}, "gp3, gp2, io2, st1"),
    ],
)
def test_shapes_ebs_refuses_are_refused_first(
    args: tuple[str, int | None], kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(UsageError, match=words):
        volume_shape(*args, **kwargs)  # type: ignore[arg-type]


def test_a_volume_from_a_snapshot_may_leave_out_its_size() -> None:
    assert volume_shape("gp3", None, from_snapshot=True).size_gb is None


@pytest.mark.parametrize("mount", ["/", "/etc", "/opt/runctl", "relative", "/mnt/../etc",
                                   "/mnt/da ta", "/mnt/$(reboot)"])  # fmt: skip
def test_mount_points_that_would_hide_the_system_or_break_a_shell_are_refused(
    mount: str,
) -> None:
    with pytest.raises(UsageError):
        check_mount(mount)


def test_good_mount_points_and_devices_pass() -> None:
    assert check_mount("/mnt/data/") == "/mnt/data"
    assert check_device("/dev/sdg") == "/dev/sdg"
    with pytest.raises(UsageError):
        check_device("/dev/nvme1n1")


def test_the_first_free_device_name_is_chosen() -> None:
    assert free_device({"/dev/xvda"}) == "/dev/sdf"
    assert free_device({"/dev/sdf", "/dev/xvdg"}) == "/dev/sdh"
    with pytest.raises(UsageError):
        free_device({f"/dev/sd{c}" for c in "fghijklmnop"})


def test_placement_and_prewarm_options() -> None:
    with pytest.raises(UsageError, match="not both"):
        check_placement("us-east-1a", "i-0123456789abcdef0", None)
    with pytest.raises(UsageError, match="zone name"):
        check_placement("us-east-1-1a", None, None)
    check_placement("eu-central-1b", None, "snap-0123456789abcdef0")
    vol = "vol-0123456789abcdef0"
    assert check_prewarm(vol, None, "s3://b/d/", None, "/mnt/data") == "s3://b/d/"
    assert check_prewarm(vol, "s3://b/d/", "s3://b/d/", None, "/mnt/data") == "s3://b/d/"
    with pytest.raises(UsageError, match="once"):
        check_prewarm(vol, "s3://b/d/", "s3://b/e/", None, "/mnt/data")
    with pytest.raises(UsageError):
        check_volume_option(vol, 20)


def test_monthly_costs() -> None:
    assert volume_month_usd("gp3", 100) == 8.0
    assert volume_month_usd("gp3", 100, 4000, 500) == pytest.approx(8.0 + 5.0 + 15.0)
    assert volume_month_usd("gp2", 10) == 1.0
    assert volume_month_usd("io2", 10, 1000) == pytest.approx(1.25 + 65.0)
    assert volume_month_usd("unknown", 10) is None
    assert snapshot_month_usd(100) == 5.0
