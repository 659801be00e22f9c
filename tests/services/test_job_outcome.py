"""Verdicts and the error a job that did not succeed exits with."""

from __future__ import annotations

import pytest

from runctl.job.spec import JobStatus
from runctl.services.jobs.outcome import JobOutcome, verdict_of


@pytest.mark.parametrize(
    "state,verdict",
    [
        ("pending", None),
        ("running", None),
        ("succeeded", "succeeded"),
        ("failed", "failed"),
        ("interrupted", "interrupted"),
        ("stopped", "interrupted"),
        ("cancelled", "cancelled"),
        ("refused", "refused"),
        ("lost", "lost"),
    ],
)
def test_every_state_has_its_verdict(state: str, verdict: str | None) -> None:
    assert verdict_of(JobStatus("j", state)) == verdict
    assert verdict_of(JobStatus("j", state), lost=True) == "lost"


def outcome(**changes: object) -> JobOutcome:
    fields: dict[str, object] = {
        "job_id": "j", "job_uri": "s3://b/runctl/p/jobs/j/", "instance_id": "i-0123456789abcdef0",
        "script": "t.py", "verdict": "failed", "state": "failed", "exit_code": 3, "attempt": 0,
        "checkpoint_id": None,
    }  # fmt: skip
    fields.update(changes)
    return JobOutcome(**fields)  # type: ignore[arg-type]


def test_the_error_carries_the_scripts_code_and_the_verdict() -> None:
    assert outcome(verdict="succeeded", state="succeeded", exit_code=0).failure() is None
    error = outcome().failure()
    assert error is not None and error.exit_code == 7
    document = error.to_dict()
    assert (document["exit_code"], document["verdict"]) == (3, "failed")
    assert "exited with code 3" in error.message


def test_a_job_that_failed_before_its_script_ran_says_why() -> None:
    error = outcome(exit_code=None, message="StagingError: AccessDenied on s3://b/x/").failure()
    assert error is not None
    assert "failed before its script ran: StagingError: AccessDenied" in error.message
    assert "None" not in error.message


def test_lost_and_interrupted_say_what_to_do_next() -> None:
    lost = outcome(verdict="lost", state="lost", exit_code=None).failure()
    assert lost is not None and "is gone" in lost.message and "--auto-resume" in (lost.hint or "")
    stopped = outcome(verdict="interrupted", state="interrupted", checkpoint_id="00000004",
                      exit_code=143).failure()  # fmt: skip
    assert stopped is not None and "checkpoint 00000004 committed" in stopped.message
