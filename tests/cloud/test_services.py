"""Tests of the real-server fixtures: Ceph RGW as S3, dockerd, the registry, ECR linking."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from tests.cloud.harness import Cloud
from tests.cloud.services import DockerDaemon, Registry, RgwServer


def test_rgw_is_a_real_s3(rgw: RgwServer, tmp_path: Path) -> None:
    s3 = rgw.client()
    s3.create_bucket(Bucket="runctl-rgw-test")
    s3.put_object(Bucket="runctl-rgw-test", Key="small", Body=b"hello")
    assert s3.get_object(Bucket="runctl-rgw-test", Key="small")["Body"].read() == b"hello"
    source = tmp_path / "big.bin"
    source.write_bytes(b"r" * (20 * 1024 * 1024))
    config = TransferConfig(
        multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024
    )
    s3.upload_file(str(source), "runctl-rgw-test", "big.bin", Config=config)
    head = s3.head_object(Bucket="runctl-rgw-test", Key="big.bin")
    assert head["ContentLength"] == 20 * 1024 * 1024
    assert head["ETag"].strip('"').endswith("-3")
    listed = s3.list_objects_v2(Bucket="runctl-rgw-test")["Contents"]
    assert {o["Key"] for o in listed} == {"small", "big.bin"}
    assert set(rgw.env()) >= {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def _scratch_image(dockerd: DockerDaemon, tmp_path: Path, tag: str) -> None:
    """An image FROM scratch holding a static binary (tini, shipped with docker.io)."""
    tini = shutil.which("docker-init")
    assert tini is not None
    context = tmp_path / "ctx"
    context.mkdir()
    shutil.copy(Path(tini).resolve(), context / "tini")
    (context / "Dockerfile").write_text('FROM scratch\nCOPY tini /tini\nENTRYPOINT ["/tini"]\n')
    dockerd.docker("build", "-q", "-t", tag, str(context))


def test_dockerd_builds_runs_and_pushes(
    dockerd: DockerDaemon, registry: Registry, tmp_path: Path
) -> None:
    tag = f"{registry.address}/runctl/scratch:1"
    _scratch_image(dockerd, tmp_path, tag)
    assert "tini version" in dockerd.docker("run", "--rm", "--network", "none", tag, "--version")
    dockerd.docker("push", tag)
    dockerd.docker("rmi", tag)
    dockerd.docker("pull", tag)
    assert dockerd.docker("images", "-q", tag).strip()


def test_ecr_points_at_the_linked_registry(
    cloud: Cloud, dockerd: DockerDaemon, registry: Registry, tmp_path: Path
) -> None:
    cloud.link_ecr(registry.address)
    ecr = cloud.client("ecr")
    uri = ecr.create_repository(repositoryName="runctl/train")["repository"]["repositoryUri"]
    assert uri == f"{registry.address}/runctl/train"
    auth = ecr.get_authorization_token()["authorizationData"][0]
    assert auth["proxyEndpoint"] == f"http://{registry.address}"
    user, password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
    login = ["login", "-u", user, "-p", password, auth["proxyEndpoint"]]
    assert "Login Succeeded" in dockerd.docker(*login)
    _scratch_image(dockerd, tmp_path, f"{uri}:v1")
    dockerd.docker("push", f"{uri}:v1")
    described = ecr.describe_repositories()["repositories"][0]["repositoryUri"]
    assert described == uri
