#!/usr/bin/env bash
# runctl adapter for train.py, which knows nothing of runctl: map the job contract onto its flags.
#   runctl aws train ID training/third_party/runctl_adapter.sh -- --max_iters 5000
# Checkpoints go where runctl commits and restores them; a resumed attempt (spot interruption,
# aws start, --resume-from) continues from the restored checkpoint; data comes from --data-s3.
set -euo pipefail
args=(--out_dir "$RUNCTL_CHECKPOINT_DIR" --data_dir "$RUNCTL_DATA_DIR")
if [ "${RUNCTL_RESUMED:-0}" = 1 ]; then
  args+=(--init_from resume)
fi
# exec: the trainer takes this process's place, so runctl's SIGTERM reaches it directly.
exec python3 "$(dirname "$0")/train.py" "${args[@]}" "$@"
