"""The IMDSv2 client and the spot watcher, against a fake IMDS on 127.0.0.1."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from runctl.remote.imds import ImdsClient, ImdsUnavailable, SpotNotice, SpotWatcher, probe
from tests.cloud.imds import StandaloneImds


def test_reads_metadata_with_a_session_token(imds: StandaloneImds) -> None:
    client = ImdsClient(imds.endpoint)

    assert client.instance_id() == imds.instance_id
    assert client.instance_type() == "t3.micro"
    assert client.availability_zone() == "us-east-1a"
    assert client.region() == "us-east-1"
    assert client.lifecycle() == "spot"
    assert client.spot_notice() is None
    assert imds.token_requests == 1


def test_honours_the_endpoint_variable(
    imds: StandaloneImds, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint)

    assert probe(ImdsClient()) == imds.instance_id


@pytest.mark.parametrize(
    ("value", "seconds"), [("30", 30.0), ("0.5", 0.5), ("soon", 2.0), ("0", 2.0)]
)
def test_honours_botocores_timeout_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: float
) -> None:
    # A busy instance (or the test harness on a loaded machine) answers slower than 2 s.
    monkeypatch.setenv("AWS_METADATA_SERVICE_TIMEOUT", value)

    assert ImdsClient("http://127.0.0.1:9").timeout == seconds
    assert ImdsClient("http://127.0.0.1:9", timeout=0.25).timeout == 0.25


def test_a_rejected_token_is_renewed(imds: StandaloneImds) -> None:
    client = ImdsClient(imds.endpoint)
    client.instance_id()
    imds.forget_tokens()  # IMDS restarted: old tokens are 401

    assert client.instance_id() == imds.instance_id
    assert imds.token_requests == 2


def test_spot_notice_is_parsed(imds: StandaloneImds) -> None:
    imds.interrupt(seconds=90, action="stop")

    notice = ImdsClient(imds.endpoint).spot_notice()

    assert notice is not None
    assert notice.action == "stop"
    assert 80 < notice.seconds_left() <= 90


def test_unreachable_imds_is_reported_not_hung() -> None:
    client = ImdsClient("http://127.0.0.1:9", timeout=0.5)

    with pytest.raises(ImdsUnavailable):
        client.instance_id()
    assert probe(client) is None


def test_watcher_calls_back_once_on_a_notice_and_logs_rebalance(imds: StandaloneImds) -> None:
    notices: list[SpotNotice] = []
    logs: list[str] = []
    fired = threading.Event()

    def on_notice(notice: SpotNotice) -> None:
        notices.append(notice)
        fired.set()

    watcher = SpotWatcher(ImdsClient(imds.endpoint), on_notice, interval=0.05, log=logs.append)
    watcher.start()
    imds.rebalance = {"noticeTime": "2024-05-01T12:00:00Z"}
    imds.interrupt(seconds=120)

    assert fired.wait(10)
    watcher.join(10)
    assert not watcher.is_alive()
    assert len(notices) == 1
    assert notices[0].time > datetime.now(UTC)
    assert any("rebalance" in line for line in logs)


def test_watcher_keeps_polling_through_an_outage() -> None:
    logs: list[str] = []
    watcher = SpotWatcher(
        ImdsClient("http://127.0.0.1:9", timeout=0.2),
        lambda n: None,
        interval=0.05,
        log=logs.append,
    )
    watcher.start()
    for _ in range(100):
        if logs:
            break
        threading.Event().wait(0.05)
    watcher.stop()
    watcher.join(5)

    assert len(logs) == 1
    assert "cannot poll IMDS" in logs[0]
