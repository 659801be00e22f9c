"""Machine and job process snapshot for ``runctl aws processes`` (stdlib only, Python 3.9).

Run on the instance as ``python3 - ROOT`` with this file on stdin (it needs no runtime bundle);
prints one JSON object: CPU, memory, disk, GPUs (when ``nvidia-smi`` exists) and the process
tree of the current job's runner.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def cpu_times() -> list[int]:
    """Aggregate jiffies from /proc/stat: [busy, total]."""
    fields = _read("/proc/stat").splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return [total - idle, total]


def cpu_percent(interval: float = 0.3) -> float:
    first = cpu_times()
    time.sleep(interval)
    second = cpu_times()
    total = second[1] - first[1]
    return round(100.0 * (second[0] - first[0]) / total, 1) if total > 0 else 0.0


def memory() -> dict[str, int]:
    info: dict[str, int] = {}
    for line in _read("/proc/meminfo").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            info[name] = int(parts[0]) * 1024
    total = info.get("MemTotal", 0)
    available = info.get("MemAvailable", info.get("MemFree", 0))
    return {"total_bytes": total, "used_bytes": total - available, "available_bytes": available}


def disk(path: str) -> dict[str, Any]:
    target = path if os.path.exists(path) else "/"
    usage = shutil.disk_usage(target)
    return {"path": target, "total_bytes": usage.total, "used_bytes": usage.used}


def gpus() -> list[dict[str, Any]]:
    if shutil.which("nvidia-smi") is None:
        return []
    query = "index,name,utilization.gpu,memory.used,memory.total,temperature.gpu"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 6:
            found.append(
                {
                    "index": int(cells[0]),
                    "name": cells[1],
                    "utilization_percent": _number(cells[2]),
                    "memory_used_mb": _number(cells[3]),
                    "memory_total_mb": _number(cells[4]),
                    "temperature_c": _number(cells[5]),
                }
            )
    return found


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def processes() -> dict[int, dict[str, Any]]:
    """Every process: pid -> ppid, rss, cpu seconds, command line."""
    table: dict[int, dict[str, Any]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _read(f"/proc/{name}/stat")
        if not stat:
            continue
        after = stat.rpartition(")")[2].split()
        if len(after) < 22:
            continue
        cmdline = _read(f"/proc/{name}/cmdline").replace("\0", " ").strip()
        table[int(name)] = {
            "pid": int(name),
            "ppid": int(after[1]),
            "state": after[0],
            "cpu_seconds": round((int(after[11]) + int(after[12])) / CLOCK_TICKS, 2),
            "rss_bytes": int(after[21]) * PAGE_SIZE,
            "command": cmdline or stat.partition("(")[2].rpartition(")")[0],
        }
    return table


def tree(table: dict[int, dict[str, Any]], root_pid: int) -> list[dict[str, Any]]:
    """``root_pid`` and its descendants, depth first, each with its depth."""
    children: dict[int, list[int]] = {}
    for pid, proc in table.items():
        children.setdefault(proc["ppid"], []).append(pid)
    ordered: list[dict[str, Any]] = []
    stack = [(root_pid, 0)]
    while stack:
        pid, depth = stack.pop()
        if pid not in table:
            continue
        ordered.append(dict(table[pid], depth=depth))
        for child in sorted(children.get(pid, []), reverse=True):
            stack.append((child, depth + 1))
    return ordered


def snapshot(root: str) -> dict[str, Any]:
    job_id = _read(os.path.join(root, "current-job")).strip() or None
    runner_pid = None
    if job_id:
        text = _read(os.path.join(root, "jobs", job_id, "runner.pid")).strip()
        runner_pid = int(text) if text.isdigit() else None
    table = processes()
    if runner_pid is not None and runner_pid not in table:
        runner_pid = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "time": time.time(),
        "cpu": {
            "count": os.cpu_count() or 1,
            "percent": cpu_percent(),
            "load_average": [round(x, 2) for x in load],
        },
        "memory": memory(),
        "disk": disk(root),
        "gpus": gpus(),
        "job_id": job_id,
        "runner_pid": runner_pid,
        "processes": tree(table, runner_pid) if runner_pid is not None else [],
    }


def main(argv: list[str]) -> int:
    root = argv[1] if len(argv) > 1 else os.environ.get("RUNCTL_REMOTE_ROOT", "/opt/runctl")
    sys.stdout.write(json.dumps(snapshot(root), sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
