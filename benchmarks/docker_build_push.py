"""``runctl docker build-push`` wall time: a first push, an unchanged image, one changed layer.

Usage: python benchmarks/docker_build_push.py [--rounds 5] [--layer-mb 64] [--weights-in-code]

Starts the cloud harness (moto's ECR), a Docker daemon and a registry standing in for ECR's
(tests/cloud/services.py, ``Cloud.link_ecr``), and the test base images (tests/cloud/images.py: no
image can be pulled here). The project's Dockerfile copies ``--layer-mb`` of model weights into
one layer and the code into the last::

    FROM runctl-test/python:1
    COPY weights/ /weights/
    COPY train.py /app/

The weights are in ``.gitignore``, as data and weights usually are, so they are not part of the
code bundle whose sha256 is the tag; ``--weights-in-code`` leaves them in it, and then a changed
file costs packing them again to learn the new tag (gzip, about a second per 50 MB).

Each round runs ``runctl docker build-push`` as a subprocess, as a user would: once with nothing
changed, and once after ``train.py`` changed (a new code tag; only the last layer is new). The
same two steps are timed with the Docker CLI for comparison (``docker build`` then ``docker
push``, logged in with the same ECR token). Prints each round and the medians.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cloud.harness import Cloud  # noqa: E402
from tests.cloud.images import build_base_images  # noqa: E402
from tests.cloud.services import DockerDaemon, start_dockerd, start_registry  # noqa: E402

DOCKERFILE = "FROM runctl-test/python:1\nCOPY weights/ /weights/\nCOPY train.py /app/\n"


def make_project(root: Path, layer_mb: int, *, weights_in_code: bool) -> Path:
    (root / "weights").mkdir(parents=True)
    if not weights_in_code:
        (root / ".gitignore").write_text("weights/\n")
    (root / "weights" / "model.bin").write_bytes(os.urandom(layer_mb * 1024 * 1024))
    (root / "pyproject.toml").write_text('[project]\nname = "bench"\n')
    (root / ".runctl.toml").write_text('[aws]\nproject_name = "bench"\n')
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "train.py").write_text("print('round 0')\n")
    return root


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def runctl_build_push(env: dict[str, str], project: Path) -> tuple[float, dict[str, object]]:
    argv = [sys.executable, "-m", "runctl", "docker", "build-push", "--output", "json"]
    seconds, out = timed(argv, env, project)
    document: dict[str, object] = json.loads(out)
    return seconds, document


def docker_cli_build_push(
    dockerd: DockerDaemon, env: dict[str, str], project: Path, uri: str
) -> float:
    """``docker build`` then ``docker push``, as one would type them."""
    cli_env = {**env, **dockerd.env()}
    build, _ = timed(["docker", "build", "-q", "-t", uri, "."], cli_env, project)
    push, _ = timed(["docker", "push", "-q", uri], cli_env, project)
    return build + push


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layer-mb", type=int, default=64)
    parser.add_argument("--weights-in-code", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cloud = Cloud(workdir / "cloud")
        cloud.start()
        dockerd = start_dockerd(workdir / "dockerd")
        registry = start_registry(workdir / "registry")
        try:
            build_base_images(dockerd, workdir / "images")
            cloud.begin_test()
            cloud.link_ecr(registry.address)
            env = {
                **cloud.subprocess_env(),
                **dockerd.env(),
                "XDG_CACHE_HOME": str(workdir / "cache"),
            }
            project = make_project(
                workdir / "project", args.layer_mb, weights_in_code=args.weights_in_code
            )
            twin = workdir / "twin"
            shutil.copytree(project, twin)
            token = cloud.client("ecr").get_authorization_token()["authorizationData"][0]
            user, password = base64.b64decode(token["authorizationToken"]).decode().split(":")
            dockerd.docker("login", "-u", user, "-p", password, registry.address)
            rows = run_rounds(dockerd, env, (project, twin), registry.address, args.rounds)
            cloud.end_test()
        finally:
            registry.stop()
            dockerd.stop()
            cloud.stop()
    report(rows, args.layer_mb, args.weights_in_code)
    return 0


Row = tuple[float, float, int, float, float]


def run_rounds(
    dockerd: DockerDaemon,
    env: dict[str, str],
    projects: tuple[Path, Path],
    registry: str,
    rounds: int,
) -> tuple[float, list[Row]]:
    """Rounds on two identical projects: runctl's and the Docker CLI's (each changes its own
    ``train.py``, so neither finds the other's new layer in the build cache)."""
    mine, theirs = projects
    uri = f"{registry}/bench-cli:latest"
    first, doc = runctl_build_push(env, mine)
    assert doc["pushed"] is True, doc
    docker_cli_build_push(dockerd, env, theirs, uri)
    rows: list[Row] = []
    for number in range(1, rounds + 1):
        unchanged, doc = runctl_build_push(env, mine)
        assert doc["pushed"] is False and doc["layers_pushed"] == 0, doc
        cli_unchanged = docker_cli_build_push(dockerd, env, theirs, uri)
        (mine / "train.py").write_text(f"print('runctl, round {number}')\n")
        changed, doc = runctl_build_push(env, mine)
        assert doc["pushed"] is True, doc
        layers = int(str(doc["layers_pushed"]))
        (theirs / "train.py").write_text(f"print('docker CLI, round {number}')\n")
        cli_changed = docker_cli_build_push(dockerd, env, theirs, uri)
        rows.append((unchanged, changed, layers, cli_unchanged, cli_changed))
    return first, rows


def report(found: tuple[float, list[Row]], layer_mb: int, in_code: bool) -> None:
    first, rows = found
    where = "in the code bundle too" if in_code else "in .gitignore"
    print(f"weights layer: {layer_mb} MB ({where}); base image: this host's python (~60 MB)")
    print(f"first build-push (every layer pushed): {first:.2f} s")
    print(
        f"{'round':>5} {'unchanged s':>12} {'1 layer changed s':>18} {'layers pushed':>14} "
        f"{'docker CLI unchanged s':>23} {'docker CLI changed s':>21}"
    )
    for i, (same, changed, layers, cli_same, cli_changed) in enumerate(rows, 1):
        print(
            f"{i:>5} {same:>12.2f} {changed:>18.2f} {layers:>14} {cli_same:>23.2f} "
            f"{cli_changed:>21.2f}"
        )
    print(
        f"{'median':>5} {statistics.median(r[0] for r in rows):>12.2f} "
        f"{statistics.median(r[1] for r in rows):>18.2f} {'':>14} "
        f"{statistics.median(r[3] for r in rows):>23.2f} "
        f"{statistics.median(r[4] for r in rows):>21.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
