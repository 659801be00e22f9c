"""Seed moto with realistic, current public AMIs and the public SSM parameters naming them.

moto's own AMI catalogue is switched off (``MOTO_EC2_LOAD_DEFAULT_AMIS=false``) while the
harness is active, so DescribeImages returns exactly the images below: Deep Learning
OSS Nvidia Driver PyTorch AMIs (owner 898082745236, alias ``amazon``, several dates so
"newest" matters), Amazon Linux 2023 (137112412989, ``amazon``) and Canonical Ubuntu
22.04/24.04 (099720109477, no alias), each with its real root device name and a
realistic root volume. Ids are fixed (derived from the image name), so they are the same
in every test.

Public SSM parameters (all ``aws:ec2:image``) are set to seeded ids:

* ``/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`` (and
  ``-kernel-6.1-``, ``al2023-ami-minimal-...``; the ``arm64`` ones name the arm64 image).
  moto's other ``ami-amazon-linux-latest`` parameters (Amazon Linux 2, AL1) are
  removed, since the images they name do not exist here.
* ``/aws/service/deeplearning/ami/<arch>/oss-nvidia-driver-gpu-pytorch-2.5-<os>/latest/ami-id``
  for ``ubuntu-22.04`` and ``amazon-linux-2023``.
* ``/aws/service/canonical/ubuntu/server/<release>/stable/current/amd64/hvm/<volume>/ami-id``
  for ``22.04``/``ebs-gp2`` and ``24.04``/``ebs-gp3``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

DLAMI_OWNER = "898082745236"
AMAZON_OWNER = "137112412989"
CANONICAL_OWNER = "099720109477"


@dataclass(frozen=True)
class AmiSeed:
    """One seeded image. ``short`` is its key in ``Cloud.amis``."""

    short: str
    name: str
    description: str
    owner_id: str
    owner_alias: str | None
    architecture: str
    root_device_name: str
    creation_date: str
    volume_size: int
    volume_type: str

    @property
    def ami_id(self) -> str:
        return "ami-0" + hashlib.sha1(self.name.encode()).hexdigest()[:16]


def _dlami(os_label: str, date: str, arch: str = "x86_64", torch: str = "2.5.1") -> AmiSeed:
    ubuntu = os_label.startswith("Ubuntu")
    arm = arch == "arm64"
    prefix = "Deep Learning ARM64 OSS" if arm else "Deep Learning OSS"
    name = f"{prefix} Nvidia Driver AMI GPU PyTorch {torch} ({os_label}) {date}"
    os_key = "ubuntu2204" if ubuntu else "al2023"
    major = torch.rsplit(".", 1)[0].replace(".", "")
    short = f"dl-pytorch{major}-{os_key}{'-arm64' if arm else ''}-{date}"
    instances = "G5g" if arm else "G4dn, G5, G6, Gr6, G6e, P4, P4de, P5, P5e, P5en"
    return AmiSeed(
        short=short,
        name=name,
        description=(
            f"Supported EC2 instances: {instances}. PyTorch-{torch}, "
            "NVIDIA-Driver-550.127.05, CUDA-12.4, cuDNN-9.1, NCCL-2.21.5, EFA-1.36.0. "
            f"Release notes: https://docs.aws.amazon.com/dlami/latest/devguide/appendix-ami-release-notes.html"
        ),
        owner_id=DLAMI_OWNER,
        owner_alias="amazon",
        architecture=arch,
        root_device_name="/dev/sda1" if ubuntu else "/dev/xvda",
        creation_date=f"{date[:4]}-{date[4:6]}-{date[6:]}T09:12:44.000Z",
        volume_size=75,
        volume_type="gp3",
    )


def _al2023(version: str, arch: str) -> AmiSeed:
    date = version.split(".")[2]
    return AmiSeed(
        short=f"al2023{'-arm64' if arch == 'arm64' else ''}-{date}",
        name=f"al2023-ami-{version}-kernel-6.1-{arch}",
        description="Amazon Linux 2023 AMI 2023.6 " + arch + " HVM kernel-6.1",
        owner_id=AMAZON_OWNER,
        owner_alias="amazon",
        architecture=arch,
        root_device_name="/dev/xvda",
        creation_date=f"{date[:4]}-{date[4:6]}-{date[6:]}T20:03:06.000Z",
        volume_size=8,
        volume_type="gp3",
    )


def _ubuntu(name: str, description: str, date: str, volume_type: str) -> AmiSeed:
    release = "2204" if "jammy" in name else "2404"
    return AmiSeed(
        short=f"ubuntu{release}-{date}",
        name=name,
        description=description,
        owner_id=CANONICAL_OWNER,
        owner_alias=None,
        architecture="x86_64",
        root_device_name="/dev/sda1",
        creation_date=f"{date[:4]}-{date[4:6]}-{date[6:]}T07:41:12.000Z",
        volume_size=8,
        volume_type=volume_type,
    )


SEEDS: tuple[AmiSeed, ...] = (
    _dlami("Ubuntu 22.04", "20241105"),
    _dlami("Ubuntu 22.04", "20241203"),
    _dlami("Ubuntu 22.04", "20250101"),
    _dlami("Ubuntu 22.04", "20250101", arch="arm64"),
    _dlami("Ubuntu 22.04", "20241015", torch="2.4.1"),
    _dlami("Amazon Linux 2023", "20241105"),
    _dlami("Amazon Linux 2023", "20241203"),
    _dlami("Amazon Linux 2023", "20250101"),
    _al2023("2023.6.20241212.0", "x86_64"),
    _al2023("2023.6.20250115.0", "x86_64"),
    _al2023("2023.6.20250115.0", "arm64"),
    _ubuntu(
        "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20241206",
        "Canonical, Ubuntu, 22.04 LTS, amd64 jammy image build on 2024-12-06",
        "20241206",
        "gp2",
    ),
    _ubuntu(
        "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20250112",
        "Canonical, Ubuntu, 22.04 LTS, amd64 jammy image build on 2025-01-12",
        "20250112",
        "gp2",
    ),
    _ubuntu(
        "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250115",
        "Canonical, Ubuntu, 24.04, amd64 noble image",
        "20250115",
        "gp3",
    ),
)

#: Aliases for the newest image of each family: ``Cloud.amis["dl-ubuntu"]`` etc.
ALIASES: dict[str, str] = {
    "dl-ubuntu": "dl-pytorch25-ubuntu2204-20250101",
    "dl-ubuntu-arm64": "dl-pytorch25-ubuntu2204-arm64-20250101",
    "dl-al2023": "dl-pytorch25-al2023-20250101",
    "al2023": "al2023-20250115",
    "al2023-arm64": "al2023-arm64-20250115",
    "ubuntu2204": "ubuntu2204-20250112",
    "ubuntu2404": "ubuntu2404-20250115",
}

AL_PREFIX = "/aws/service/ami-amazon-linux-latest/"


def ami_ids() -> dict[str, str]:
    """Seeded AMI ids by short name (dated names plus the ``ALIASES``)."""
    ids = {seed.short: seed.ami_id for seed in SEEDS}
    for alias, target in ALIASES.items():
        ids[alias] = ids[target]
    return ids


def ssm_parameters() -> dict[str, str]:
    """Public SSM parameter name -> seeded AMI id."""
    ids = ami_ids()
    params: dict[str, str] = {}
    for arch, key in (("x86_64", "al2023"), ("arm64", "al2023-arm64")):
        for variant in ("al2023-ami-kernel-default", "al2023-ami-kernel-6.1"):
            params[f"{AL_PREFIX}{variant}-{arch}"] = ids[key]
        for variant in ("al2023-ami-minimal-kernel-default", "al2023-ami-minimal-kernel-6.1"):
            params[f"{AL_PREFIX}{variant}-{arch}"] = ids[key]
    dl = "/aws/service/deeplearning/ami/{arch}/oss-nvidia-driver-gpu-pytorch-2.5-{os}/latest/ami-id"
    params[dl.format(arch="x86_64", os="ubuntu-22.04")] = ids["dl-ubuntu"]
    params[dl.format(arch="arm64", os="ubuntu-22.04")] = ids["dl-ubuntu-arm64"]
    params[dl.format(arch="x86_64", os="amazon-linux-2023")] = ids["dl-al2023"]
    canonical = "/aws/service/canonical/ubuntu/server/{rel}/stable/current/amd64/hvm/{vol}/ami-id"
    params[canonical.format(rel="22.04", vol="ebs-gp2")] = ids["ubuntu2204"]
    params[canonical.format(rel="24.04", vol="ebs-gp3")] = ids["ubuntu2404"]
    return params


def _ami_class() -> type[Any]:
    from moto.ec2.models.amis import Ami

    class SeededAmi(Ami):
        """An Ami with a realistic root volume (moto hard-codes 15 GiB standard)."""

        volume_size = 8
        volume_type = "gp3"
        platform_details = "Linux/UNIX"
        usage_operation = "RunInstances"
        ena_support = True
        sriov_net_support = "simple"
        imds_support = "v2.0"
        deprecation_time: str | None = None

        @property
        def block_device_mappings(self) -> list[dict[str, Any]]:
            return [
                {
                    "DeviceName": self.root_device_name,
                    "Ebs": {
                        "SnapshotId": self.ebs_snapshot.id,
                        "VolumeSize": self.volume_size,
                        "DeleteOnTermination": True,
                        "VolumeType": self.volume_type,
                        "Encrypted": False,
                    },
                }
            ]

    return SeededAmi


def seed_region(account_id: str, region: str) -> None:
    """Put the seeded images and SSM parameters into moto's backends for one region."""
    from moto.ec2.models import ec2_backends
    from moto.ssm.models import Parameter, ssm_backends

    ec2 = ec2_backends[account_id][region]
    cls = _ami_class()
    for seed in SEEDS:
        if seed.ami_id in ec2.amis:
            continue
        ami = cls(
            ec2,
            seed.ami_id,
            name=seed.name,
            description=seed.description,
            owner_id=seed.owner_id,
            owner_alias=seed.owner_alias,
            public=True,
            virtualization_type="hvm",
            architecture=seed.architecture,
            creation_date=dt.datetime.strptime(seed.creation_date, "%Y-%m-%dT%H:%M:%S.%fZ"),
            image_location=f"{seed.owner_alias or seed.owner_id}/{seed.name}",
            hypervisor="xen",
            root_device_type="ebs",
            root_device_name=seed.root_device_name,
            region_name=region + "a",
            boot_mode="uefi-preferred",
        )
        ami.volume_size = seed.volume_size
        ami.volume_type = seed.volume_type
        ami.deprecation_time = f"{int(seed.creation_date[:4]) + 2}{seed.creation_date[4:]}"
        ec2.amis[seed.ami_id] = ami

    params = ssm_backends[account_id][region]._parameters
    params._check_loading_status(AL_PREFIX)
    for name in [k for k in params if str(k).startswith(AL_PREFIX)]:
        dict.__delitem__(params, name)
    now = dt.datetime.now(dt.UTC)
    for name, value in ssm_parameters().items():
        param = Parameter(  # type: ignore[abstract]
            account_id=account_id,
            name=name,
            value=value,
            parameter_type="String",
            description=None,
            allowed_pattern=None,
            keyid=None,
            last_modified_date=now,
            version=1,
            data_type="aws:ec2:image",
        )
        dict.__setitem__(params, name, [param])
