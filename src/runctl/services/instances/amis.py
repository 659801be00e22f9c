"""Which AMI a new instance boots: the user's, the configured one, or the newest suitable one.

GPU and accelerator families get the newest Amazon-owned Deep Learning PyTorch AMI (the Neuron
one first for Inferentia/Trainium); everything else gets the newest Amazon Linux 2023 from its
public SSM parameter, arm64 for Graviton types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runctl.aws.ssm import AL2023_PARAMETER
from runctl.errors import NotFoundError

if TYPE_CHECKING:
    from runctl.aws.ec2 import Ec2, Image, InstanceTypeInfo
    from runctl.aws.ssm import Ssm

ACCELERATED_FAMILY = re.compile(r"^(g|p|inf|trn)\d")
NEURON_FAMILY = re.compile(r"^(inf|trn)\d")
DLAMI_GPU_PYTORCH = "Deep Learning*AMI*GPU PyTorch*"
DLAMI_NEURON_PYTORCH = "Deep Learning AMI Neuron*PyTorch*"


@dataclass(frozen=True)
class ImageChoice:
    """The AMI chosen and why."""

    image: Image
    reason: str


def is_accelerated(info: InstanceTypeInfo) -> bool:
    """True for GPU and ML-accelerator types (g*, p*, inf*, trn*, or any type with GPUs)."""
    family = info.name.split(".", 1)[0]
    return bool(ACCELERATED_FAMILY.match(family)) or info.gpus > 0 or info.accelerators > 0


def architecture_for(info: InstanceTypeInfo) -> str:
    """``arm64`` for Graviton types, else ``x86_64``."""
    if "x86_64" in info.architectures or not info.architectures:
        return "x86_64"
    return "arm64" if "arm64" in info.architectures else info.architectures[0]


def choose_image(
    ec2: Ec2, ssm: Ssm, info: InstanceTypeInfo, *, ami_id: str | None, source: str
) -> ImageChoice:
    """The AMI to launch ``info`` with.

    ``ami_id`` is the flag or configured AMI (``source`` says which); without it the newest
    suitable Amazon AMI is looked up. Raises NotFoundError when the AMI does not exist or no
    suitable image can be found.
    """
    if ami_id:
        return ImageChoice(ec2.describe_image(ami_id), source)
    arch = architecture_for(info)
    if is_accelerated(info):
        patterns = [DLAMI_GPU_PYTORCH]
        if NEURON_FAMILY.match(info.name):
            patterns.insert(0, DLAMI_NEURON_PYTORCH)
        for pattern in patterns:
            images = ec2.describe_images(owners=["amazon"], name_pattern=pattern, architecture=arch)
            if images:
                return ImageChoice(images[0], f"newest Amazon Deep Learning AMI ({arch})")
        raise NotFoundError(
            f"no Amazon Deep Learning PyTorch AMI for {arch} found in {ec2.region}",
            hint="pass --ami-id or set aws.default_ami",
            resource=info.name,
        )
    parameter = AL2023_PARAMETER.format(arch=arch)
    image = ec2.describe_image(ssm.get_parameter(parameter))
    return ImageChoice(image, f"newest Amazon Linux 2023 ({arch}, {parameter})")
