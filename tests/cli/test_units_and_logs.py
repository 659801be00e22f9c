"""How durations read, and how the logs of several jobs interleave: whole lines, each with its
job's label, whatever the chunks the follow machinery hands over."""

from __future__ import annotations

import threading

import pytest

from runctl.cli.job_output import PrefixedLogs
from runctl.cli.output import Output
from runctl.cli.units import duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, None), (0, "0s"), (12.7, "12s"), (312, "5m 12s"), (3 * 3600 + 65, "3h 1m"),
     (2 * 86400 + 3600 + 120, "2d 1h 2m")],
)  # fmt: skip
def test_duration(seconds: float | None, text: str | None) -> None:
    assert duration(seconds) == text


def test_prefixed_logs_write_whole_lines_with_their_label(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs = PrefixedLogs(Output())
    first, second = logs.sink("[#1 lr=0.1] "), logs.sink("[#2 lr=0.01] ")
    first(b"epoch 1 lo")
    second("ü".encode()[:1])  # half a character: nothing yet
    first(b"ss 0.5\nepoch 2")
    second("ü".encode()[1:] + b" done\n")
    logs.close()
    assert capsys.readouterr().out.splitlines() == [
        "[#1 lr=0.1] epoch 1 loss 0.5",
        "[#2 lr=0.01] ü done",
        "[#1 lr=0.1] epoch 2",
    ]


def test_prefixed_logs_from_threads_never_share_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    logs = PrefixedLogs(Output())

    def feed(label: str) -> None:
        sink = logs.sink(f"[{label}] ")
        for i in range(200):
            sink(f"{label} line {i}\n".encode())

    threads = [threading.Thread(target=feed, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 600
    assert all(line.startswith(f"[{line[1]}] {line[1]} line ") for line in lines)


def test_under_json_the_logs_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    out = Output(format="json")
    logs = PrefixedLogs(out)
    logs.sink("[#1] ")(b"hello\n")
    captured = capsys.readouterr()
    assert captured.out == "" and "[#1] hello" in captured.err
