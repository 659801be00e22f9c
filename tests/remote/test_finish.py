"""The finish action on the instance: a stop AWS refuses for one-time spot becomes a terminate."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from runctl.remote.finish import apply_finish_action, finish_action


class FakeEc2:
    def __init__(self, refuse: dict[str, str] | None = None) -> None:
        self.calls: list[str] = []
        self.refuse = refuse or {}

    def _call(self, operation: str) -> None:
        self.calls.append(operation)
        if operation in self.refuse:
            code = self.refuse[operation]
            error: Any = {"Error": {"Code": code, "Message": f"{operation} refused ({code})"}}
            raise ClientError(error, operation)

    def stop_instances(self, InstanceIds: list[str]) -> None:
        self._call("StopInstances")

    def terminate_instances(self, InstanceIds: list[str]) -> None:
        self._call("TerminateInstances")


def test_finish_action_from_the_flags() -> None:
    assert finish_action(False, False) is None
    assert finish_action(True, False) == "stop"
    assert finish_action(True, True) == "terminate"


def test_a_refused_stop_of_one_time_spot_terminates_after_recording_why() -> None:
    ec2 = FakeEc2(refuse={"StopInstances": "UnsupportedOperation"})
    said: list[str] = []
    recorded: list[str] = []

    def record(note: str) -> None:
        recorded.append(note)
        assert ec2.calls == ["StopInstances"]  # recorded before the instance goes

    done = apply_finish_action(ec2, "i-1", "stop", said.append, before_terminate=record)
    assert ec2.calls == ["StopInstances", "TerminateInstances"]
    assert recorded == [done] and "one-time spot instance" in done
    assert "terminating it instead" in said[-1]


def test_other_failures_are_reported_and_nothing_else_is_tried() -> None:
    ec2 = FakeEc2(refuse={"StopInstances": "UnauthorizedOperation"})
    said: list[str] = []
    done = apply_finish_action(ec2, "i-1", "stop", said.append)
    assert ec2.calls == ["StopInstances"]
    assert done.startswith("could not stop i-1") and said[-1] == done


def test_a_terminate_that_fails_too_is_said_plainly() -> None:
    ec2 = FakeEc2(
        refuse={"StopInstances": "UnsupportedOperation", "TerminateInstances": "Throttling"}
    )
    said: list[str] = []
    done = apply_finish_action(ec2, "i-1", "stop", said.append)
    assert "the terminate failed too" in done and "terminate it yourself" in said[-1]
