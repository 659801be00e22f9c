"""Train a small MNIST classifier with numpy, following runctl's job contract.

Usage: ``python training/train_mnist.py [--epochs 5] [--lr 0.1] [--batch-size 64] [--seed 0]``

Data: ``$RUNCTL_DATA_DIR/mnist.npz`` when it exists, in the Keras layout (``x_train`` uint8
(N, 28, 28) or (N, 784), ``y_train`` int labels 0-9, ``x_test``, ``y_test``). Without it, a
deterministic synthetic MNIST-like set is generated from ``--seed`` (ten noisy, shifted
prototype images), so the script runs anywhere with numpy alone.

Model: a one-hidden-layer MLP (784 -> --hidden -> 10, ReLU, softmax cross-entropy), plain SGD.

Checkpoints: ``$RUNCTL_CHECKPOINT_DIR/mnist-ckpt.npz`` (weights, epoch, next batch), written
atomically (temporary file + rename) after every epoch, and on SIGTERM after the current batch.
A run that finds the checkpoint resumes from it. Every epoch's shuffle comes from
``(seed, epoch)``, so an interrupted-and-resumed run ends with exactly the weights of an
uninterrupted one.

SIGTERM: the script writes a checkpoint and exits with 143 (128 + SIGTERM), saying "did not
finish"; runctl marks the job interrupted or stopped whenever it sent the signal.

Outputs: ``$RUNCTL_OUTPUT_DIR/model.npz`` and ``metrics.json`` (per-epoch loss and accuracy, the
final test accuracy, and the sha256 of the final weights).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

# A model this small is fastest on one BLAS thread (threads only contend); set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

CHECKPOINT = "mnist-ckpt.npz"
EXIT_TERMINATED = 143
_stop_requested = False


def _on_sigterm(signum: int, frame: Any) -> None:
    global _stop_requested  # noqa: PLW0603 -- a signal handler can only set a flag
    _stop_requested = True


def synthetic_mnist(seed: int, n_train: int = 6000, n_test: int = 1000) -> dict[str, np.ndarray]:
    """Ten 28x28 prototype digits plus noise and small shifts: learnable, not trivial."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((10, 7, 7))
    prototypes = np.kron(coarse, np.ones((4, 4)))  # blocky 28x28 "digits"

    def sample(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, size=count)
        images = prototypes[labels]
        shifts = rng.integers(-3, 4, size=(count, 2))
        for i, (dy, dx) in enumerate(shifts):
            images[i] = np.roll(images[i], (int(dy), int(dx)), axis=(0, 1))
        images = images + rng.normal(0.0, 0.9, size=images.shape)
        return np.clip(images * 255, 0, 255).astype(np.uint8), labels

    x_train, y_train = sample(n_train)
    x_test, y_test = sample(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def load_data(seed: int) -> tuple[dict[str, np.ndarray], str]:
    data_dir = os.environ.get("RUNCTL_DATA_DIR")
    if data_dir and (Path(data_dir) / "mnist.npz").is_file():
        with np.load(Path(data_dir) / "mnist.npz") as npz:
            return {
                key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")
            }, "mnist.npz"
    return synthetic_mnist(seed), "synthetic"


def prepare(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float64) / 255.0


def init_params(seed: int, hidden: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 1_000_003])
    return {
        "w1": rng.normal(0.0, np.sqrt(2.0 / 784), size=(784, hidden)),
        "b1": np.zeros(hidden),
        "w2": rng.normal(0.0, np.sqrt(2.0 / hidden), size=(hidden, 10)),
        "b2": np.zeros(10),
    }


def forward(params: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hidden = np.maximum(0.0, x @ params["w1"] + params["b1"])
    logits = hidden @ params["w2"] + params["b2"]
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return hidden, probs


def sgd_step(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, lr: float) -> float:
    hidden, probs = forward(params, x)
    n = len(x)
    loss = float(-np.log(probs[np.arange(n), y] + 1e-12).mean())
    grad = probs
    grad[np.arange(n), y] -= 1.0
    grad /= n
    grad_hidden = (grad @ params["w2"].T) * (hidden > 0)
    params["w2"] -= lr * (hidden.T @ grad)
    params["b2"] -= lr * grad.sum(axis=0)
    params["w1"] -= lr * (x.T @ grad_hidden)
    params["b1"] -= lr * grad_hidden.sum(axis=0)
    return loss


def accuracy(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return float((forward(params, x)[1].argmax(axis=1) == y).mean())


def save_checkpoint(path: Path, params: dict[str, np.ndarray], state: dict[str, Any]) -> None:
    """Write atomically: a reader (or runctl's sync) never sees half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    with temp.open("wb") as handle:
        np.savez(handle, state=json.dumps(state), **params)
    os.replace(temp, path)


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    if not path.is_file():
        return None
    with np.load(path) as npz:
        params = {key: npz[key].copy() for key in ("w1", "b1", "w2", "b2")}
        state = json.loads(str(npz["state"]))
    return params, state


def weights_sha256(params: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(params):
        digest.update(np.ascontiguousarray(params[key]).tobytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument(
        "--epoch-delay", type=float, default=0.0, help="sleep after each epoch (demos, tests)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)

    checkpoint_dir = Path(os.environ.get("RUNCTL_CHECKPOINT_DIR", "checkpoints"))
    output_dir = Path(os.environ.get("RUNCTL_OUTPUT_DIR", "outputs"))
    checkpoint = checkpoint_dir / CHECKPOINT

    data, source = load_data(args.seed)
    x_train, y_train = prepare(data["x_train"]), data["y_train"].astype(np.int64)
    x_test, y_test = prepare(data["x_test"]), data["y_test"].astype(np.int64)
    print(f"data: {source}, {len(x_train)} train / {len(x_test)} test", flush=True)

    restored = load_checkpoint(checkpoint)
    if restored is not None:
        params, state = restored
        print(f"resumed from epoch {state['epoch']} batch {state['batch']}", flush=True)
    else:
        params = init_params(args.seed, args.hidden)
        state = {"epoch": 0, "batch": 0, "history": []}

    batches = (len(x_train) + args.batch_size - 1) // args.batch_size
    while state["epoch"] < args.epochs:
        epoch = state["epoch"]
        order = np.random.default_rng([args.seed, epoch]).permutation(len(x_train))
        losses = state.get("epoch_losses", [])
        for batch in range(state["batch"], batches):
            index = order[batch * args.batch_size : (batch + 1) * args.batch_size]
            losses.append(sgd_step(params, x_train[index], y_train[index], args.lr))
            if _stop_requested:
                state.update(batch=batch + 1, epoch_losses=losses)
                save_checkpoint(checkpoint, params, state)
                print(f"SIGTERM: checkpoint saved at epoch {epoch} batch {batch + 1}", flush=True)
                return EXIT_TERMINATED
        loss = float(np.mean(losses))
        acc = accuracy(params, x_test, y_test)
        state["history"].append({"epoch": epoch + 1, "loss": loss, "accuracy": acc})
        state.update(epoch=epoch + 1, batch=0, epoch_losses=[])
        save_checkpoint(checkpoint, params, state)
        print(f"epoch {epoch + 1}/{args.epochs} loss {loss:.4f} accuracy {acc:.4f}", flush=True)
        if args.epoch_delay:
            time.sleep(args.epoch_delay)
        if _stop_requested:
            print(f"SIGTERM: checkpoint saved after epoch {epoch + 1}", flush=True)
            return EXIT_TERMINATED

    output_dir.mkdir(parents=True, exist_ok=True)
    np.savez(output_dir / "model.npz", **params)
    metrics = {
        "epochs": args.epochs,
        "history": state["history"],
        "test_accuracy": accuracy(params, x_test, y_test),
        "weights_sha256": weights_sha256(params),
        "data": source,
    }
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"done: test accuracy {metrics['test_accuracy']:.4f} weights {metrics['weights_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
