"""The tag set runctl applies, and --tag parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runctl.errors import UsageError
from runctl.services import tags


def test_resource_tags_cannot_be_overridden_by_user_tags() -> None:
    result = tags.resource_tags(
        project="p",
        user="u",
        name="n",
        created=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        job="j",
        extra={"Name": "mine", "team": "t"},
    )
    assert result == {
        "Name": "n",
        "team": "t",
        "runctl:managed": "true",
        "runctl:project": "p",
        "runctl:user": "u",
        "runctl:created": "2025-01-02T03:04:05Z",
        "runctl:job": "j",
    }


def test_parse_tag_options() -> None:
    assert tags.parse_tag_options(["a=b", "c=d=e", "runctl:protected=true", "empty="]) == {
        "a": "b",
        "c": "d=e",
        "runctl:protected": "true",
        "empty": "",
    }


@pytest.mark.parametrize(
    "raw", ["novalue", "=x", "aws:foo=1", "runctl:managed=false", "k" * 129 + "=v"]
)
def test_bad_tags_are_usage_errors(raw: str) -> None:
    with pytest.raises(UsageError):
        tags.parse_tag_options([raw])


def test_managed_and_protected() -> None:
    assert tags.is_managed({"runctl:managed": "true"}) and not tags.is_managed({})
    assert tags.is_protected({"runctl:protected": "TRUE"})
    assert tags.managed_filters("p") == {
        "tag:runctl:managed": ["true"],
        "tag:runctl:project": ["p"],
    }


def test_current_user_prefers_the_environment() -> None:
    assert tags.current_user({"USER": "alice"}) == "alice"
