"""``runctl aws train --docker`` end to end: the image is built and pushed to ECR (the test
registry), and the harness instance's runner logs in with its role, pulls it, and runs the script
in a container on the test dockerd, through a spot interruption and a resume on a replacement.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.aws_helpers import ok_json, run
from tests.cli.jobs_helpers import BUCKET, make_project, ready_instance
from tests.cli.spot_helpers import (
    TRAINER,
    finish,
    live_instance_ids,
    log_text,
    manifests,
    read_json,
    spawn,
    wait_for_step,
    wait_until,
)
from tests.cli.torn_helpers import INPLACE_TRAINER, intact_state
from tests.cloud.harness import RUNCTL_ROLE_DOCUMENT, RUNCTL_ROLE_POLICY, Cloud
from tests.cloud.images import BaseImages
from tests.cloud.services import DockerDaemon, Registry

CONTRACT = """
import json, os, sys
names = ["RUNCTL_JOB_ID", "RUNCTL_ATTEMPT", "RUNCTL_INSTANCE_ID", "RUNCTL_DATA_DIR",
         "RUNCTL_CHECKPOINT_DIR", "RUNCTL_RESUMED", "RUNCTL_OUTPUT_DIR", "RUNCTL_GRACE_SECONDS",
         "LR", "AWS_REGION", "AWS_SECRET_ACCESS_KEY"]
print("contract", json.dumps({n: os.environ.get(n) for n in names}, sort_keys=True))
print("in a container:", os.path.exists("/.dockerenv"), "cwd", os.getcwd())
print("argv", json.dumps(sys.argv[1:]))
print("data", sorted(os.listdir(os.environ["RUNCTL_DATA_DIR"])))
with open(os.path.join(os.environ["RUNCTL_CHECKPOINT_DIR"], "model.txt"), "w") as f:
    f.write("weights of " + os.environ["RUNCTL_JOB_ID"])
with open(os.path.join(os.environ["RUNCTL_OUTPUT_DIR"], "result.txt"), "w") as f:
    f.write("trained in a container")
"""


@pytest.fixture
def docker_cloud(
    cloud_env: Cloud,
    dockerd: DockerDaemon,
    registry: Registry,
    docker_images: BaseImages,
    monkeypatch: pytest.MonkeyPatch,
) -> Cloud:
    """ECR names the test registry; this machine and the instances use the test dockerd."""
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    cloud_env.link_ecr(registry.address)
    cloud_env.link_docker(dockerd.host)
    return cloud_env


def containers_of(dockerd: DockerDaemon, job_id: str) -> list[str]:
    out = dockerd.docker("ps", "-aq", "--filter", f"label=runctl.job={job_id}")
    return out.split()


def test_train_in_a_container_sees_the_contract_and_commits_its_checkpoint(
    docker_cloud: Cloud, project: Path, dockerd: DockerDaemon, registry: Registry
) -> None:
    cloud = docker_cloud
    make_project(project, {"train.py": CONTRACT, "Dockerfile": "FROM runctl-test/python:1\n"})
    instance_id = ready_instance(cloud)
    s3 = cloud.client("s3")
    s3.put_object(Bucket=BUCKET, Key="runctl/datasets/part-0.npz", Body=b"x" * 10)
    args = ["aws", "train", instance_id, "train.py", "--docker", "--env", "LR=0.1",
            "--data-s3", f"s3://{BUCKET}/runctl/datasets/", "--wait", "--output", "json",
            "--", "a b", "$(whoami)"]  # fmt: skip
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["state"] == "succeeded"
    job_id = doc["job_id"]
    assert doc["docker_image"].startswith(f"{registry.address}/runctl/demo:")
    assert "@sha256:" in doc["docker_image"]
    log = result.stderr
    contract = json.loads(log.split("contract ", 1)[1].splitlines()[0])
    job_dir = cloud.sandbox(instance_id).resolve() / "jobs" / job_id
    assert contract == {
        "RUNCTL_JOB_ID": job_id,
        "RUNCTL_ATTEMPT": "0",
        "RUNCTL_INSTANCE_ID": instance_id,
        "RUNCTL_DATA_DIR": str(job_dir / "data"),
        "RUNCTL_CHECKPOINT_DIR": str(job_dir / "checkpoints"),
        "RUNCTL_RESUMED": "0",
        "RUNCTL_OUTPUT_DIR": str(job_dir / "outputs"),
        "RUNCTL_GRACE_SECONDS": "60",
        "LR": "0.1",
        "AWS_REGION": cloud.region,
        "AWS_SECRET_ACCESS_KEY": None,
    }
    assert f"in a container: True cwd {job_dir / 'code'}" in log
    assert 'argv ["a b", "$(whoami)"]' in log
    assert "data ['part-0.npz']" in log
    assert "logged in to" in log and "with the instance role" in log
    prefix = doc["job_uri"].removeprefix(f"s3://{BUCKET}/")
    status = read_json(cloud, f"{prefix}status.json")
    manifest = read_json(cloud, f"{prefix}checkpoints/manifests/{status['checkpoint_id']}.json")
    assert [f["path"] for f in manifest["files"]] == ["model.txt"]
    out = s3.get_object(Bucket=BUCKET, Key=f"{prefix}outputs/result.txt")["Body"].read()
    assert out == b"trained in a container"
    assert containers_of(dockerd, job_id) == []  # --rm

    again = run(*args)
    assert again.exit_code == 0, again.stderr
    assert "unchanged" in again.stderr  # same code, same image: nothing pushed
    assert json.loads(again.stdout)["docker_image"] == doc["docker_image"]


def test_spot_interruption_in_a_container_commits_and_resumes_in_a_new_container(
    docker_cloud: Cloud, project: Path, shared_cache: Path, dockerd: DockerDaemon
) -> None:
    cloud = docker_cloud
    steps = 120
    make_project(project, {"train.py": TRAINER, "Dockerfile": "FROM runctl-test/python:1\n"})
    first = ready_instance(cloud, spot=True)
    proc = spawn(
        cloud, project, shared_cache,
        "aws", "train", first, "train.py", "--docker", "--auto-resume", "--output", "json",
        "--", "--steps", str(steps), "--step-seconds", "0.1",
    )  # fmt: skip
    wait_for_step(cloud, first, 12, steps)
    # a notice long enough that a loaded machine's container teardown and final commit fit in it
    cloud.interrupt(first, notice_seconds=20)
    code, out, err = finish(proc, timeout=240)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["state"] == "succeeded" and doc["instance_id"] != first
    assert [t["state"] for t in doc["timeline"]] == ["interrupted", "succeeded"]
    # The container got SIGTERM, saved its step and exited; the runner committed that step last
    # (the interrupted attempt's checkpoint), and the new container on the replacement started
    # from exactly it.
    interrupted = doc["timeline"][0]
    assert interrupted["checkpoint_id"] and interrupted["notice_to_commit_seconds"] is not None
    saved = int(err.split("SIGTERM: saved step ")[1].split()[0])
    assert saved >= 12
    resumed = log_text(cloud, doc["instance_id"])
    assert f"restored checkpoint {interrupted['checkpoint_id']} " in resumed
    commits = [line for line in err.splitlines() if "committed" in line or "deadline" in line]
    assert f"attempt 1 resumed=1 from step {saved}" in resumed, commits
    prefix = doc["job_uri"].removeprefix(f"s3://{BUCKET}/")
    assert read_json(cloud, f"{prefix}outputs/result.json") == {
        "step": steps,
        "total": steps * (steps + 1) // 2,
    }
    wait_until(lambda: first not in live_instance_ids(cloud), what="the first instance gone")
    assert containers_of(dockerd, doc["job_id"]) == []


def test_a_data_volume_is_mounted_into_the_container_as_its_data_dir(
    docker_cloud: Cloud, project: Path
) -> None:
    cloud = docker_cloud
    make_project(project, {"train.py": CONTRACT, "Dockerfile": "FROM runctl-test/python:1\n"})
    instance_id = ready_instance(cloud)
    volume_id = ok_json("aws", "ebs", "create", "--size", "2", "--instance-id", instance_id)[
        "volume_id"
    ]
    ok_json("aws", "ebs", "attach", volume_id, instance_id)
    (cloud.sandbox(instance_id) / "mnt/data/shard-0.bin").write_bytes(b"x")
    result = run("aws", "train", instance_id, "train.py", "--docker", "--data-volume", volume_id,
                 "--wait", "--output", "json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    contract = json.loads(result.stderr.split("contract ", 1)[1].splitlines()[0])
    mount = (cloud.sandbox(instance_id) / "mnt/data").resolve()
    assert contract["RUNCTL_DATA_DIR"] == str(mount)
    assert "data ['shard-0.bin']" in result.stderr  # the volume's files, read in the container


def test_bad_docker_options_are_refused_before_any_aws_call(
    docker_cloud: Cloud, project: Path
) -> None:
    make_project(project, {"train.py": CONTRACT})
    bad = run("aws", "train", "i-0123456789abcdef0", "train.py", "--docker-image", "Bad/Image")
    assert bad.exit_code == 2, bad.stderr
    assert "--docker-image" in bad.stderr
    missing = run("aws", "train", "i-0123456789abcdef0", "train.py", "--docker")
    assert missing.exit_code == 6, missing.stderr
    assert "Dockerfile" in missing.stderr and "--docker-image" in missing.stderr
    assert docker_cloud.request_log == []


def test_a_role_that_may_not_pull_the_image_is_refused_naming_aws_setup(
    docker_cloud: Cloud, project: Path, registry: Registry
) -> None:
    cloud = docker_cloud
    make_project(project, {"train.py": CONTRACT})
    profile = cloud.create_instance_profile("no-ecr")
    without_ecr = {
        **RUNCTL_ROLE_DOCUMENT,
        "Statement": [s for s in RUNCTL_ROLE_DOCUMENT["Statement"] if "ecr:" not in json.dumps(s)],
    }
    cloud.client("iam").put_role_policy(
        RoleName=profile.role_name,
        PolicyName=RUNCTL_ROLE_POLICY,
        PolicyDocument=json.dumps(without_ecr),
    )
    instance_id = ready_instance(cloud, profile="no-ecr")
    cloud.client("ecr").create_repository(repositoryName="runctl/demo")
    image = f"{registry.address}/runctl/demo:v1"
    result = run("aws", "train", instance_id, "train.py", "--docker-image", image)
    assert result.exit_code == 4, result.stderr
    assert "may not pull" in result.stderr and "runctl aws setup" in result.stderr
    jobs = cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="runctl/demo/jobs/")
    assert jobs.get("KeyCount", 0) == 0  # refused before anything about the job was written


def test_a_container_stopped_mid_write_keeps_the_previous_checkpoint(
    docker_cloud: Cloud, project: Path, shared_cache: Path
) -> None:
    """The writer watch sees the container's processes: a checkpoint file the script holds open
    for writing when it is stopped is not committed torn (the same test runs without Docker in
    tests/cli/test_torn_checkpoints.py)."""
    cloud = docker_cloud
    dockerfile = "FROM runctl-test/python:1\n"
    make_project(project, {"train.py": INPLACE_TRAINER, "Dockerfile": dockerfile})
    instance_id = ready_instance(cloud)
    script = ["--steps", "8", "--mb", "2", "--write-seconds", "0.2", "--pause-seconds", "0.4"]
    started = spawn(
        cloud, project, shared_cache,
        "aws", "train", instance_id, "train.py", "--docker", "-o", "json",
        "--", *script, "--stall-at", "5",
    )  # fmt: skip
    code, out, err = finish(started)
    assert code == 0, err
    store = json.loads(out)["job_uri"].removeprefix(f"s3://{BUCKET}/") + "checkpoints/"
    wait_until(lambda: "stalled half-way" in log_text(cloud, instance_id), what="the stall")
    wait_until(lambda: _newest_has_ckpt(cloud, store), what="a committed ckpt.pt")
    before = read_json(cloud, manifests(cloud, store)[-1])

    stop = spawn(cloud, project, shared_cache, "aws", "stop", instance_id, "--wait", "-o", "json")
    code, out, err = finish(stop)

    assert code == 0, err
    on_disk = next(cloud.sandbox(instance_id).rglob("checkpoints/ckpt.pt")).read_bytes()
    assert intact_state(on_disk) is None  # the script really was stopped mid-write
    after = read_json(cloud, manifests(cloud, store)[-1])
    (entry,) = [f for f in after["files"] if f["path"] == "ckpt.pt"]
    blob = cloud.client("s3").get_object(Bucket=BUCKET, Key=f"{store}blobs/{entry['sha256']}")
    assert intact_state(blob["Body"].read()) is not None
    assert entry in before["files"]  # its last committed version, not the torn one
    (kept,) = [
        line.split("version: ", 1)[1]
        for line in log_text(cloud, instance_id).splitlines()
        if "keeping ckpt.pt at its last committed version" in line and "ended" in line
    ]
    assert kept.startswith("python3") and "had it open for writing" in kept  # seen in /proc


def _newest_has_ckpt(cloud: Cloud, store: str) -> bool:
    committed = manifests(cloud, store)
    return bool(committed) and "ckpt.pt" in [
        f["path"] for f in read_json(cloud, committed[-1])["files"]
    ]


def test_an_instance_with_nvidia_gpus_asks_docker_for_them(
    docker_cloud: Cloud, project: Path
) -> None:
    """With ``nvidia-smi`` on the instance the container is run with ``--gpus all``; the test
    daemon has no NVIDIA runtime, so Docker itself refuses, and the job fails saying so."""
    cloud = docker_cloud
    make_project(project, {"train.py": CONTRACT, "Dockerfile": "FROM runctl-test/python:1\n"})
    instance_id = ready_instance(cloud)
    cloud.install_executable(instance_id, "nvidia-smi", "#!/bin/sh\necho 'GPU 0: NVIDIA A10G'\n")
    result = run("aws", "train", instance_id, "train.py", "--docker", "--wait", "-o", "json")
    assert result.exit_code == 7, result.stderr
    log = log_text(cloud, instance_id)
    (command,) = [line for line in log.splitlines() if "$ docker run" in line]
    assert " --gpus all " in command
    assert "could not select device driver" in log and "gpu" in log


WORKERS = """
import os, signal, subprocess, sys, time
worker = '''
import os, signal, sys, time
def on_term(*_):
    open(os.path.join(os.environ["RUNCTL_OUTPUT_DIR"], "worker-got-sigterm"), "w").close()
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("worker ready", flush=True)
while True:
    time.sleep(0.1)
'''
child = subprocess.Popen([sys.executable, "-c", worker])
print("main running", flush=True)
def on_term(*_):
    child.wait(timeout=5)
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
while True:
    time.sleep(0.1)
"""


def test_a_stop_reaches_every_process_the_script_started_in_its_container(
    docker_cloud: Cloud, project: Path, shared_cache: Path
) -> None:
    """As ``killpg`` does for a plain script, SIGTERM reaches the script's children too (a
    DataLoader's workers), not only the process ``docker-init`` started."""
    cloud = docker_cloud
    make_project(project, {"train.py": WORKERS, "Dockerfile": "FROM runctl-test/python:1\n"})
    instance_id = ready_instance(cloud)
    started = spawn(
        cloud, project, shared_cache, "aws", "train", instance_id, "train.py", "--docker", "-o",
        "json",
    )  # fmt: skip
    code, out, err = finish(started)
    assert code == 0, err
    outputs = json.loads(out)["job_uri"].removeprefix(f"s3://{BUCKET}/") + "outputs/"
    wait_until(lambda: "worker ready" in log_text(cloud, instance_id), what="the worker")
    stop = spawn(cloud, project, shared_cache, "aws", "stop", instance_id, "--wait", "-o", "json")
    code, _, err = finish(stop)
    assert code == 0, err
    listed = cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=outputs).get("Contents", [])
    assert [o["Key"] for o in listed] == [outputs + "worker-got-sigterm"]
