"""Container image references, as ``aws train --docker`` records them in job.json.

A reference is ``[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`` with Docker's grammar (the distribution
project's ``reference`` package): lowercase path components separated by ``/``; the first
component is a registry when it holds a ``.`` or a ``:``, or is ``localhost``; a tag is up to 128
word characters, ``.`` and ``-``; a digest is ``sha256:`` and 64 hex digits. An ECR registry is
``<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]``.

Shared by both sides: the laptop checks ``--docker-image`` with it before any AWS call, and the
runner on the instance learns from it where to log in. Standard library only, Python 3.9.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_REGISTRY_RE = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]+)?$")
ECR_HOST_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"
)
#: ECR repository names: 2 to 256 characters of the grammar above.
REPOSITORY_MAX = 256


@dataclass(frozen=True)
class ImageRef:
    """One parsed image reference."""

    repository: str
    registry: str | None = None
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Parse ``text``; ValueError saying which part is malformed."""
        rest, _, digest = text.strip().partition("@")
        if "@" in text and not DIGEST_RE.match(digest):
            raise ValueError(f"{text!r}: the digest must be sha256: and 64 hex digits")
        registry = None
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            if not _REGISTRY_RE.match(first):
                raise ValueError(f"{text!r}: {first!r} is not a registry host[:port]")
            registry, rest = first, remainder
        name, colon, tag = rest.rpartition(":") if ":" in rest else (rest, "", "")
        if colon and not TAG_RE.match(tag):
            raise ValueError(f"{text!r}: {tag!r} is not a valid tag")
        if not REPOSITORY_RE.match(name) or len(name) > REPOSITORY_MAX:
            raise ValueError(
                f"{text!r}: {name!r} is not a repository name (lowercase letters, digits and "
                "separators . _ - between them, components joined by /)"
            )
        return cls(name, registry, tag or None, digest or None)

    @property
    def name(self) -> str:
        """``registry/repository`` (or just the repository for Docker Hub)."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    @property
    def ecr_region(self) -> str | None:
        """The region of the ECR registry this image is in, or None when it is not ECR's."""
        match = ECR_HOST_RE.match(self.registry or "")
        return match.group("region") if match else None

    @property
    def ecr_account(self) -> str | None:
        match = ECR_HOST_RE.match(self.registry or "")
        return match.group("account") if match else None

    def pinned(self, digest: str) -> ImageRef:
        """The same image named by ``digest`` too (what a later attempt pulls: exactly this)."""
        return ImageRef(self.repository, self.registry, self.tag, digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def check_tag(tag: str) -> str:
    """``tag`` when it is a valid Docker tag; ValueError otherwise."""
    if not TAG_RE.match(tag):
        raise ValueError(
            f"{tag!r} is not a valid image tag (up to 128 letters, digits, _ . -, not starting "
            "with . or -)"
        )
    return tag


def check_repository(name: str) -> str:
    """``name`` when it is a valid repository name (ECR's rules); ValueError otherwise."""
    if len(name) < 2 or len(name) > REPOSITORY_MAX or not REPOSITORY_RE.match(name):
        raise ValueError(
            f"{name!r} is not a valid repository name: 2 to 256 lowercase letters, digits and "
            "separators (. _ -) between them, path components joined by /"
        )
    return name
