"""The shortest complete example of runctl's job contract (standard library only).

- Read ``RUNCTL_CHECKPOINT_DIR``: when ``RUNCTL_RESUMED`` is 1 (or a checkpoint is there),
  continue from it.
- Write checkpoints there atomically (a temporary name, then ``os.replace``); runctl uploads what
  is there every ``checkpoint.sync_interval_seconds`` and when the script ends.
- On SIGTERM (spot interruption, ``runctl aws stop``) save and exit within
  ``RUNCTL_GRACE_SECONDS``; exit 143 so the run does not look finished.
- Put results in ``RUNCTL_OUTPUT_DIR``; runctl uploads it at the end.
- Exit 0 on success: the exit code is the job's verdict.

Usage: ``python training/train_with_checkpoints.py [--steps 20] [--step-seconds 0.1]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

stop = False


def on_sigterm(signum: int, frame: object) -> None:
    global stop  # noqa: PLW0603 -- a signal handler can only set a flag
    stop = True


def save(path: Path, state: dict[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(state))
    os.replace(temp, path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--step-seconds", type=float, default=0.1)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)

    checkpoint = Path(os.environ.get("RUNCTL_CHECKPOINT_DIR", "checkpoints")) / "state.json"
    state = json.loads(checkpoint.read_text()) if checkpoint.exists() else {"step": 0, "total": 0}
    print(
        f"job {os.environ.get('RUNCTL_JOB_ID')} attempt {os.environ.get('RUNCTL_ATTEMPT')} "
        f"resumed={os.environ.get('RUNCTL_RESUMED')} from step {state['step']}",
        flush=True,
    )

    while state["step"] < args.steps:
        time.sleep(args.step_seconds)  # the "training"
        state["step"] += 1
        state["total"] += state["step"]
        save(checkpoint, state)
        print(f"step {state['step']}/{args.steps}", flush=True)
        if stop:
            print(f"SIGTERM: saved step {state['step']}", flush=True)
            return 143

    output = Path(os.environ.get("RUNCTL_OUTPUT_DIR", "outputs"))
    output.mkdir(parents=True, exist_ok=True)
    (output / "result.json").write_text(json.dumps(state) + "\n")
    print(f"done: total {state['total']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
