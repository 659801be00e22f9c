"""How ``runctl aws ebs`` results look: the same result objects as JSON (stable keys, pinned by
tests/cli/test_ebs.py) or as tables and lines for people."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runctl.cli.output import Output, format_bytes
from runctl.cli.units import monthly

if TYPE_CHECKING:
    from runctl.aws.ebs import Snapshot, Volume
    from runctl.services.account.resources import Scope
    from runctl.services.volumes.manage import SnapshotRow, VolumeRow
    from runctl.services.volumes.mounts import AttachResult, DetachResult
    from runctl.services.volumes.prewarm import PrewarmResult


def volume_table(out: Output, rows: list[VolumeRow]) -> None:
    out.table(
        ["id", "name", "state", "size", "type", "zone", "attached to", "cost"],
        [
            [
                r.volume_id,
                r.name,
                r.state + (" (protected)" if r.protected else ""),
                f"{r.size_gb} GiB",
                r.volume_type,
                r.availability_zone,
                f"{r.attached_to} {r.device or ''}".strip() if r.attached_to else "-",
                monthly(r.month_usd),
            ]
            for r in rows
        ],
    )


def snapshot_table(out: Output, rows: list[SnapshotRow]) -> None:
    out.table(
        ["id", "volume", "state", "size", "started", "cost (at most)", "description"],
        [
            [
                s.snapshot_id,
                s.volume_id,
                s.state,
                f"{s.size_gb} GiB",
                s.started.strftime("%Y-%m-%d %H:%M") if s.started else None,
                monthly(s.month_usd),
                s.description,
            ]
            for s in rows
        ],
    )


def volumes(out: Output, rows: list[VolumeRow], scope: Scope) -> None:
    def text(o: Output) -> None:
        volume_table(o, rows)
        total = sum(r.month_usd or 0.0 for r in rows)
        o.info(f"{len(rows)} volume(s), about {monthly(total)}; scope: {scope.describe()}")

    out.document(
        {"volumes": rows, "month_usd": round(sum(r.month_usd or 0 for r in rows), 2)}, text
    )


def snapshots(out: Output, rows: list[SnapshotRow], scope: Scope) -> None:
    def text(o: Output) -> None:
        snapshot_table(o, rows)
        o.info(f"{len(rows)} snapshot(s); scope: {scope.describe()}")

    out.document({"snapshots": rows}, text)


def created(out: Output, volume: Volume, why: str) -> None:
    from runctl.services.volumes.manage import volume_row

    row = volume_row(volume)
    out.success(f"created {volume.volume_id} in {volume.availability_zone} ({why})")
    out.document({**_plain(row), "zone_source": why}, lambda o: volume_table(o, [row]))


def attached(out: Output, result: AttachResult) -> None:
    verb = "attached" if result.attached_now else "already attached"
    out.success(f"{result.volume_id} {verb} to {result.instance_id} as {result.device}")
    mount = result.mount
    if mount is not None:
        how = "already mounted" if mount.already_mounted else "mounted"
        made = f", new {mount.filesystem} filesystem" if mount.formatted else ""
        out.info(f"{how} at {mount.mount} ({mount.device}{made}); in /etc/fstab with nofail")
    out.document(
        result,
        lambda o: o.fields(
            [
                ("volume", result.volume_id),
                ("instance", result.instance_id),
                ("device", result.device),
                ("mount", mount.mount if mount else None),
            ]
        ),
    )


def detached(out: Output, result: DetachResult) -> None:
    if not result.detached:
        out.info(f"{result.volume_id} is {result.note}; nothing to do")
    else:
        unmounted = ", ".join(result.unmounted) or "nothing mounted"
        forced = " (forced)" if result.forced else ""
        out.success(
            f"detached {result.volume_id} from {result.instance_id}{forced}; unmounted: {unmounted}"
        )
    out.document(result, lambda o: None)


def deleted(out: Output, volume: Volume, dry_run: bool) -> None:
    verb = "would delete" if dry_run else "deleted"
    out.success(f"{verb} {volume.volume_id} ({volume.size_gb} GiB {volume.volume_type})")
    out.document(
        {"volume_id": volume.volume_id, "deleted": not dry_run, "dry_run": dry_run}, lambda o: None
    )


def snapshot_taken(out: Output, snapshot: Snapshot) -> None:
    from runctl.services.volumes.manage import snapshot_row

    row = snapshot_row(snapshot)
    out.success(f"snapshot {snapshot.snapshot_id} of {snapshot.volume_id}: {snapshot.state}")
    out.document(row, lambda o: snapshot_table(o, [row]))


def prewarmed(out: Output, result: PrewarmResult) -> None:
    where = "a temporary instance" if result.temporary else result.instance_id
    out.success(
        f"filled {result.volume_id} from {result.source} on {where}: {result.files} files, "
        f"{format_bytes(result.bytes)} in {result.copy_seconds:.1f}s ({result.mb_per_s:.1f} MB/s); "
        f"{result.wall_seconds:.1f}s in all"
    )
    if result.snapshot_id:
        out.info(f"snapshot {result.snapshot_id} taken after the fill")
    out.document(
        result,
        lambda o: o.fields(
            [
                ("volume", result.volume_id),
                ("files", result.files),
                ("bytes", result.bytes),
                ("mb_per_s", result.mb_per_s),
            ]
        ),
    )


def _plain(row: Any) -> dict[str, Any]:
    from runctl.cli.output import to_jsonable

    data: dict[str, Any] = to_jsonable(row)
    return data
