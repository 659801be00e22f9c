"""A training script as careless as a well-known third-party one: it writes its checkpoint
straight onto ``ckpt.pt`` (no temporary file, no rename) and has no SIGTERM handler.

``ckpt.pt`` is a JSON header line (step, running total, body size and sha256) and a body written
slowly in chunks, so a copy taken mid-write is torn in a way the script itself detects when it
loads it (as ``torch.load`` would fail with ``EOFError``). ``progress.json`` beside it is written
the careful way (temporary file, rename). Arguments: ``--steps N --mb SIZE --write-seconds S
--pause-seconds P [--stall-at STEP]`` (at that step, stop writing half-way, file open, forever).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

INPLACE_TRAINER = """
import argparse, hashlib, json, os, sys, time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--mb", type=float, default=1.0)
parser.add_argument("--write-seconds", type=float, default=0.2)
parser.add_argument("--pause-seconds", type=float, default=0.0)
parser.add_argument("--stall-at", type=int, default=0)
args = parser.parse_args()
ckpt_dir = os.environ.get("RUNCTL_CHECKPOINT_DIR", "checkpoints")
os.makedirs(ckpt_dir, exist_ok=True)
ckpt = os.path.join(ckpt_dir, "ckpt.pt")


def load():
    if not os.path.exists(ckpt):
        return {"step": 0, "total": 0}
    with open(ckpt, "rb") as f:
        header, _, body = f.read().partition(b"\\n")
    state = json.loads(header)
    if len(body) != state["size"] or hashlib.sha256(body).hexdigest() != state["sha256"]:
        raise EOFError(f"{ckpt} is torn: {len(body)} of {state['size']} bytes")
    return state


state = load()
print(f"attempt {os.environ.get('RUNCTL_ATTEMPT')} resumed={os.environ.get('RUNCTL_RESUMED')} "
      f"from step {state['step']}", flush=True)
size = int(args.mb * 1024 * 1024)
chunks = 16
while state["step"] < args.steps:
    state["step"] += 1
    state["total"] += state["step"]
    body = (b"%08d" % state["step"]) * (size // 8)
    header = {"step": state["step"], "total": state["total"], "size": len(body),
              "sha256": hashlib.sha256(body).hexdigest()}
    with open(ckpt, "wb") as f:  # straight onto the file, like torch.save(state, "ckpt.pt")
        f.write(json.dumps(header).encode() + b"\\n")
        piece = len(body) // chunks
        for i in range(chunks):
            f.write(body[i * piece : (i + 1) * piece if i < chunks - 1 else len(body)])
            f.flush()
            if state["step"] == args.stall_at and i == chunks // 2:
                print(f"step {state['step']}: stalled half-way through ckpt.pt", flush=True)
                time.sleep(3600)
            time.sleep(args.write_seconds / chunks)
    state = header
    progress = os.path.join(ckpt_dir, "progress.json")
    with open(progress + ".tmp", "w") as f:
        json.dump({"step": state["step"]}, f)
    os.replace(progress + ".tmp", progress)
    print(f"step {state['step']}/{args.steps} saved", flush=True)
    time.sleep(args.pause_seconds)

out = os.environ.get("RUNCTL_OUTPUT_DIR", "outputs")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "result.json"), "w") as f:
    json.dump({"step": state["step"], "total": state["total"]}, f)
print(f"done: total {state['total']}", flush=True)
"""


def expected(steps: int) -> dict[str, int]:
    """The result of an uninterrupted run of ``steps`` steps."""
    return {"step": steps, "total": steps * (steps + 1) // 2}


def intact_state(data: bytes) -> dict[str, Any] | None:
    """The state a ``ckpt.pt`` holds, or None when it is torn."""
    header, _, body = data.partition(b"\n")
    try:
        state: dict[str, Any] = json.loads(header)
    except ValueError:
        return None
    if len(body) != state.get("size") or hashlib.sha256(body).hexdigest() != state.get("sha256"):
        return None
    return state
