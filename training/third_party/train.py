"""A tiny trainer in the style of popular GPT training scripts; it knows nothing of runctl.

It has its own flags (``--out_dir``, ``--data_dir``, ``--init_from scratch|resume``,
``--max_iters``), rewrites its checkpoint ``<out_dir>/ckpt.json`` in place after every iteration
(as ``torch.save(checkpoint, os.path.join(out_dir, "ckpt.pt"))`` does), does not handle SIGTERM,
and with ``--init_from resume`` fails when there is no checkpoint. ``runctl_adapter.sh`` beside it
runs it under runctl unchanged; see docs/script-authors.md.

Usage: ``python training/third_party/train.py --max_iters 20 [--init_from resume]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out_dir", default="out")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--init_from", default="scratch", choices=["scratch", "resume"])
    parser.add_argument("--max_iters", type=int, default=20)
    parser.add_argument("--iter_seconds", type=float, default=0.05)
    args = parser.parse_args()

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "ckpt.json"
    state = {"iter_num": 0, "loss": 10.0}
    if args.init_from == "resume":
        state = json.loads(ckpt.read_text())
        print(f"resuming from iter {state['iter_num']}", flush=True)
    data = Path(args.data_dir)
    tokens = sum(p.stat().st_size for p in data.glob("*.txt")) if data.is_dir() else 0
    print(f"training on {tokens} tokens from {data}", flush=True)

    while state["iter_num"] < args.max_iters:
        time.sleep(args.iter_seconds)  # the "forward and backward pass"
        state["iter_num"] += 1
        state["loss"] = round(state["loss"] * 0.9, 6)
        print(f"iter {state['iter_num']}: loss {state['loss']:.4f}", flush=True)
        with open(ckpt, "w") as handle:  # in place, as many trainers do
            json.dump(state, handle)
    print(f"done: iter {state['iter_num']} loss {state['loss']:.4f} in {os.getcwd()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
