"""``resources list|summary|cleanup`` over every kind and region: volumes, instances and
unfinished uploads left in a second region, old job prefixes, and never another user's."""

from __future__ import annotations

import json
from pathlib import Path

from runctl.services.tags import current_user
from tests.cli.aws_helpers import ok_json, run
from tests.cloud.harness import Cloud

FAR = "eu-west-1"
HOME_BUCKET = "home-bucket"
FAR_BUCKET = "far-runctl-bucket"


def owned(user: str, **extra: str) -> list[dict[str, str]]:
    tags = {"runctl:managed": "true", "runctl:project": "demo", "runctl:user": user, **extra}
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def write_job(cloud: Cloud, bucket: str, job: str, user: str, state: str, ended: str) -> None:
    s3 = cloud.client("s3")
    prefix = f"runctl/demo/jobs/{job}/"
    spec = {"job_id": job, "project": "demo", "script": "t.py", "user": user}
    status = {"job_id": job, "state": state, "created": "2025-01-01T00:00:00.000Z",
              "ended": ended}  # fmt: skip
    s3.put_object(Bucket=bucket, Key=prefix + "job.json", Body=json.dumps(spec).encode())
    s3.put_object(Bucket=bucket, Key=prefix + "status.json", Body=json.dumps(status).encode())
    s3.put_object(Bucket=bucket, Key=prefix + "outputs/model.bin", Body=b"x" * 2048)


def with_home_bucket(cloud: Cloud, workdir: Path) -> str:
    """The job bucket, configured in ``workdir``; returns the calling user's name."""
    cloud.client("s3").create_bucket(Bucket=HOME_BUCKET)
    (workdir / ".runctl.toml").write_text(f'[aws]\ns3_bucket = "{HOME_BUCKET}"\n')
    return current_user()


def leave_things_in_a_second_region(cloud: Cloud, me: str) -> dict[str, str]:
    """Per owner: an instance, a volume and an unfinished upload in ``FAR``."""
    cloud.seed_region(FAR)
    ec2 = cloud.client("ec2", region=FAR)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    zone = f"{FAR}a"
    s3 = cloud.client("s3", region=FAR)
    s3.create_bucket(Bucket=FAR_BUCKET, CreateBucketConfiguration={"LocationConstraint": FAR})
    s3.put_bucket_tagging(Bucket=FAR_BUCKET, Tagging={"TagSet": owned("setup")})
    left: dict[str, str] = {}
    for who in (me, "somebody-else"):
        spec = {"ResourceType": "instance", "Tags": owned(who)}
        reservation = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
            TagSpecifications=[spec],
        )  # fmt: skip
        left[f"instance {who}"] = reservation["Instances"][0]["InstanceId"]
        volume = ec2.create_volume(
            AvailabilityZone=zone, Size=5, VolumeType="gp3",
            TagSpecifications=[{"ResourceType": "volume",
                                "Tags": owned(who, **{"runctl:job": f"demo-{who}"})}],
        )  # fmt: skip
        left[f"volume {who}"] = volume["VolumeId"]
        job = f"demo-20250101-00000{0 if who == me else 1}-abcd"
        write_job(cloud, FAR_BUCKET, job, who, "running", "")
        key = f"runctl/demo/jobs/{job}/checkpoints/blobs/part"
        left[f"upload {who}"] = s3.create_multipart_upload(Bucket=FAR_BUCKET, Key=key)["UploadId"]
    return left


def test_cleanup_all_regions_dry_run_finds_what_was_left_and_nothing_of_another_user(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    me = with_home_bucket(cloud, workdir)
    left = leave_things_in_a_second_region(cloud, me)

    home_only = ok_json("resources", "cleanup", "--dry-run")
    assert left["instance " + me] not in home_only["acted_on"]

    plan = ok_json("resources", "cleanup", "--all-regions", "--dry-run")
    assert FAR in plan["regions"] and "us-east-1" in plan["regions"]
    assert plan["acted_on"] == [left["instance " + me]]
    assert plan["storage"]["volumes"] == [left["volume " + me]]
    assert [u["upload_id"] for u in plan["leftovers"]["aborted"]] == [left["upload " + me]]
    everything = json.dumps(plan)
    for kind in ("instance", "volume", "upload"):
        assert left[f"{kind} somebody-else"] not in everything
    far = cloud.client("ec2", region=FAR)
    mine = far.describe_instances(InstanceIds=[left["instance " + me]])["Reservations"][0]
    assert mine["Instances"][0]["State"]["Name"] == "running"  # a dry run
    assert len(cloud.client("s3").list_multipart_uploads(Bucket=FAR_BUCKET)["Uploads"]) == 2

    text = run("resources", "cleanup", "--all-regions", "--dry-run")
    assert text.exit_code == 0 and "would abort 1 unfinished upload(s)" in text.stderr

    done = ok_json("resources", "cleanup", "--all-regions", "--yes")
    assert done["acted_on"] == [left["instance " + me]]
    uploads = cloud.client("s3").list_multipart_uploads(Bucket=FAR_BUCKET)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [left["upload somebody-else"]]
    volumes = cloud.client("ec2", region=FAR).describe_volumes()["Volumes"]
    ids = {v["VolumeId"] for v in volumes}
    assert left["volume " + me] not in ids and left["volume somebody-else"] in ids


def test_list_and_summary_show_every_kind_and_old_job_prefixes(
    cloud_env: Cloud, workdir: Path
) -> None:
    cloud = cloud_env
    me = with_home_bucket(cloud, workdir)
    write_job(cloud, HOME_BUCKET, "demo-20250101-000000-aaaa", me, "succeeded",
              "2025-01-02T00:00:00.000Z")  # fmt: skip
    write_job(cloud, HOME_BUCKET, "demo-20250101-000001-bbbb", "somebody-else", "succeeded",
              "2025-01-02T00:00:00.000Z")  # fmt: skip
    ok_json("aws", "create", "t3.micro", "--project-name", "demo")
    ecr = cloud.client("ecr")
    for who in (me, "somebody-else"):
        name = f"runctl/demo-{who}"
        ecr.create_repository(repositoryName=name, tags=owned(who))
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"digest": f"sha256:{'a' * 64}", "size": 7},
                    "layers": [{"digest": f"sha256:{'b' * 64}", "size": 1024}]}  # fmt: skip
        ecr.put_image(repositoryName=name, imageManifest=json.dumps(manifest), imageTag="v1")
    listing = ok_json("resources", "list", "--all-regions", "--older-than", "30d")
    assert [(i["repository"], i["tags"]) for i in listing["images"]] == [
        (f"runctl/demo-{me}", ["v1"])
    ]
    assert [p["job_id"] for p in listing["stale_prefixes"]] == ["demo-20250101-000000-aaaa"]
    assert listing["stale_prefixes"][0]["size_bytes"] > 2048
    assert ok_json("resources", "list")["stale_prefixes"] == []  # only with --older-than
    assert run("resources", "list", "--older-than", "soon").exit_code == 2

    summary = ok_json("resources", "summary", "--older-than", "30d")
    kinds = {(k["kind"], k["project"]): k for k in summary["rows"]}
    assert kinds[("instance", "demo")]["count"] == 1
    assert kinds[("instance", "demo")]["hourly_usd"] == 0.0104
    assert kinds[("job prefix", "demo")]["count"] == 1
    assert kinds[("image", "demo")]["count"] == 1
    assert summary["hourly_usd"] == 0.0104
    text = run("resources", "summary")
    assert text.exit_code == 0 and "instance" in text.stdout and "image" in text.stdout
    listed = run("resources", "list")
    assert listed.exit_code == 0 and f"runctl/demo-{me}@sha256:" in listed.stdout

    done = ok_json("resources", "cleanup", "--older-than", "30d", "--yes")
    gone = "s3://home-bucket/runctl/demo/jobs/demo-20250101-000000-aaaa/"
    assert done["leftovers"]["deleted_prefixes"] == [gone]
    keys = [o["Key"] for o in cloud.client("s3").list_objects_v2(Bucket=HOME_BUCKET)["Contents"]]
    assert keys and all("bbbb" in k for k in keys)  # the other user's job is untouched
