"""Image references as job.json records them: Docker's grammar, ECR registries, tags, digests."""

from __future__ import annotations

import pytest

from runctl.job.images import ImageRef, check_repository, check_tag

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("python", None, "python", None, None),
        ("python:3.11-slim", None, "python", "3.11-slim", None),
        ("library/python:3", None, "library/python", "3", None),
        ("localhost/runctl/demo", "localhost", "runctl/demo", None, None),
        ("127.0.0.1:5000/runctl/demo:v1", "127.0.0.1:5000", "runctl/demo", "v1", None),
        (f"ghcr.io/org/img@{DIGEST}", "ghcr.io", "org/img", None, DIGEST),
        (
            f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/runctl/demo:abc@{DIGEST}",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "runctl/demo",
            "abc",
            DIGEST,
        ),
    ],
)
def test_references_parse_and_print_back(
    text: str, registry: str | None, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert str(ref) == text


def test_ecr_registries_name_their_account_and_region() -> None:
    ecr = ImageRef.parse("123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/runctl/x:1")
    assert (ecr.ecr_account, ecr.ecr_region) == ("123456789012", "us-gov-west-1")
    china = ImageRef.parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/runctl/x")
    assert china.ecr_region == "cn-north-1"
    fips = ImageRef.parse("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/runctl/x")
    assert fips.ecr_region == "us-east-1"
    for other in ("127.0.0.1:5000/runctl/x", "python:3", "ecr.example.com/runctl/x"):
        assert ImageRef.parse(other).ecr_region is None


def test_pinned_keeps_the_tag_and_adds_the_digest() -> None:
    pinned = ImageRef.parse("127.0.0.1:5000/runctl/demo:v1").pinned(DIGEST)
    assert str(pinned) == f"127.0.0.1:5000/runctl/demo:v1@{DIGEST}"


@pytest.mark.parametrize(
    "text",
    [
        "Bad/Image",  # uppercase repository
        "runctl/demo:-tag",  # a tag may not start with '-'
        "runctl/demo@sha256:short",
        "runctl//demo",
        "host:port/x",  # a port is digits
        "",
        "runctl/demo:" + "t" * 129,
    ],
)
def test_malformed_references_say_which_part(text: str) -> None:
    with pytest.raises(ValueError, match=r"repository|tag|digest|registry"):
        ImageRef.parse(text)


def test_tags_and_repository_names() -> None:
    assert check_tag("a" * 64) == "a" * 64
    assert check_repository("runctl/my-project") == "runctl/my-project"
    for bad_tag in (".x", "-x", "x y", "x" * 129):
        with pytest.raises(ValueError):
            check_tag(bad_tag)
    for bad_name in ("a", "Upper", "runctl/", "/runctl", "a__-b", "x" * 257):
        with pytest.raises(ValueError):
            check_repository(bad_name)
