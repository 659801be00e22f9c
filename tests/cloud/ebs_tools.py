"""The block-device commands of a harness instance: ``blkid``, ``mkfs.ext4``, ``mkfs.xfs``,
``mount``, ``umount`` and ``findmnt``, acting on the volume model of :mod:`tests.cloud.volumes`.

The toolbox installs one script under each name (:func:`install`); it runs this module's
:func:`main` with the toolbox's bare Python. Only harness device files (``dev/nvme<N>n1`` in a
sandbox) are accepted: anything else is refused, so a real disk is never touched. The options are
the ones runctl's scripts use, with the real tools' exit codes (blkid 2 = nothing found, mount and
umount 32, findmnt 1 = nothing found).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path

from tests.cloud.volumes import (
    attach_mount,
    detach_mount,
    load_mounts,
    read_device,
)

NAMES = ("blkid", "mkfs.ext4", "mkfs.xfs", "mount", "umount", "findmnt")
REPO = Path(__file__).resolve().parents[2]


def install(bin_dir: Path, python: Path) -> None:
    """Write the commands into ``bin_dir`` (first on every instance's PATH after usr/local/bin)."""
    text = (
        f"#!{python}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from tests.cloud.ebs_tools import main\n"
        "sys.exit(main(sys.argv))\n"
    )
    for name in NAMES:
        path = bin_dir / name
        path.write_text(text)
        path.chmod(0o755)


def _sandbox() -> Path:
    return Path(os.environ["RUNCTL_SYSTEM_ROOT"])


def _device(arg: str) -> tuple[Path, str, Path] | None:
    path = Path(os.path.realpath(arg))
    named = read_device(path)
    return None if named is None else (path, named[0], named[1])


def _fs(volume_dir: Path) -> dict[str, str] | None:
    try:
        data = json.loads((volume_dir / "fs.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _options(args: list[str], with_value: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    options: dict[str, str] = {}
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg in with_value:
            options[arg] = next(it, "")
        elif arg.startswith("-") and len(arg) > 1:
            for flag in arg[1:] if not arg.startswith("--") else [arg]:
                options[f"-{flag}" if not flag.startswith("--") else flag] = ""
        else:
            rest.append(arg)
    return options, rest


def blkid(args: list[str]) -> int:
    options, rest = _options(args, ("-o", "-s"))
    if not rest:
        return 2
    found = _device(rest[0])
    fs = _fs(found[2]) if found else None
    if fs is None:
        return 2
    tag = options.get("-s")
    if options.get("-o") == "value":
        print(fs.get(tag.lower(), "") if tag else fs["type"])
    else:
        print(f'{rest[0]}: UUID="{fs["uuid"]}" TYPE="{fs["type"]}" LABEL="{fs.get("label", "")}"')
    return 0


def mkfs(fstype: str, args: list[str]) -> int:
    options, rest = _options(args, ("-L",))
    found = _device(rest[-1]) if rest else None
    if found is None:
        print(f"mkfs.{fstype}: {rest[-1] if rest else '?'}: not a block device", file=sys.stderr)
        return 1
    path, _, volume_dir = found
    if any(m["device"] == str(path) for m in load_mounts(_sandbox())):
        print(f"mkfs.{fstype}: {path} contains a mounted filesystem", file=sys.stderr)
        return 1
    data = volume_dir / "data"
    for entry in list(data.iterdir()) if data.exists() else []:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    data.mkdir(parents=True, exist_ok=True)
    fs = {"type": fstype, "uuid": str(uuid.uuid4()), "label": options.get("-L", "")}
    (volume_dir / "fs.json").write_text(json.dumps(fs))
    return 0


def mount(args: list[str]) -> int:
    _, rest = _options(args, ("-t", "-o"))
    if len(rest) != 2:
        print("mount: harness mount takes DEVICE TARGET", file=sys.stderr)
        return 1
    found = _device(rest[0])
    if found is None or _fs(found[2]) is None:
        print(f"mount: {rest[1]}: wrong fs type, bad option, bad superblock", file=sys.stderr)
        return 32
    target = Path(os.path.normpath(rest[1]))
    if any(m["target"] == str(target) for m in load_mounts(_sandbox())):
        print(f"mount: {target}: already mounted", file=sys.stderr)
        return 32
    if not target.is_dir() or target.is_symlink():
        print(f"mount: {target}: mount point does not exist", file=sys.stderr)
        return 32
    attach_mount(_sandbox(), found[0], target, found[2])
    return 0


def _holders(directory: str) -> list[int]:
    """Pids with a file (or their working directory) under ``directory``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        links = [f"/proc/{pid}/cwd"]
        try:
            links += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target == directory or target.startswith(directory + "/"):
                found.append(int(pid))
                break
    return found


def umount(args: list[str]) -> int:
    options, rest = _options(args, ())
    if not rest:
        return 1
    target = str(Path(os.path.normpath(rest[0])))
    sandbox = _sandbox()
    entry = next((m for m in load_mounts(sandbox) if m["target"] == target), None)
    if entry is None:
        print(f"umount: {target}: not mounted.", file=sys.stderr)
        return 32
    if "-l" not in options and _holders(os.path.realpath(target)):
        print(f"umount: {target}: target is busy.", file=sys.stderr)
        return 32
    detach_mount(sandbox, entry)
    return 0


def findmnt(args: list[str]) -> int:
    options, _ = _options(args, ("-o", "--source", "--mountpoint"))
    column = options.get("-o", "TARGET")
    mounts = load_mounts(_sandbox())
    if "--source" in options:
        device = os.path.realpath(options["--source"])
        chosen = [m for m in mounts if m["device"] == device]
    elif "--mountpoint" in options:
        where = os.path.normpath(options["--mountpoint"])
        chosen = [m for m in mounts if m["target"] == where]
    else:
        chosen = mounts
    for entry in chosen:
        print(entry["device"] if column == "SOURCE" else entry["target"])
    return 0 if chosen else 1


def main(argv: list[str]) -> int:
    name = Path(argv[0]).name
    args = argv[1:]
    if name == "blkid":
        return blkid(args)
    if name.startswith("mkfs."):
        return mkfs(name.split(".", 1)[1], args)
    if name == "mount":
        return mount(args)
    if name == "umount":
        return umount(args)
    if name == "findmnt":
        return findmnt(args)
    print(f"{name}: not a harness command", file=sys.stderr)
    return 1
