"""Writing traces (for `cep record`): the reader's format, flushed line by line, round-tripping."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from cep.adapters.trace import (
    TraceClock,
    TraceEvent,
    TraceMessage,
    TraceReader,
    TraceWriter,
    format_ts,
)

UTC = UTC
TAIPEI = ZoneInfo("Asia/Taipei")
T0 = datetime(2026, 11, 20, 15, 10, tzinfo=UTC).timestamp()


class CountingFlush(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes: list[int] = []

    def flush(self) -> None:
        self.flushes.append(self.getvalue().count("\n"))
        super().flush()


PAYLOADS = [
    (b'{"value": 120}', '{"value": 120}'),
    (b'  {"value":120}\n', '{"value": 120}'),
    (b'[1, "\xc3\xa9"]', '[1, "é"]'),
    (b"ON", '"ON"'),
    (b"21.5", '"21.5"'),           # a scalar stays text, so it replays as the same bytes
    (b'"ON"', '"\\"ON\\""'),
    (b"null", '"null"'),
    (b"", '""'),
    (b"{broken", '"{broken"'),
    (b"\xff", '"\ufffd"'),
]


@pytest.mark.parametrize("payload, written", PAYLOADS)
def test_trace_writer_payload_forms(payload, written):
    out = CountingFlush()
    TraceWriter(out, TAIPEI).message(T0, "home/a", payload)
    assert out.getvalue() == (
        '{"ts": "2026-11-20T23:10:00.000+08:00", "topic": "home/a", "payload": '
        + written + "}\n")


def test_trace_writer_flushes_each_line_and_writes_events():
    out = CountingFlush()
    writer = TraceWriter(out)
    writer.message(T0 + 0.0125, "a", b"1")
    writer.event(T0 + 1, "LeftBed", {"pressure": 12.0, "who": None})
    assert out.flushes == [1, 2]
    assert out.getvalue().splitlines() == [
        '{"ts": "2026-11-20T15:10:00.012+00:00", "topic": "a", "payload": "1"}',
        '{"ts": "2026-11-20T15:10:01.000+00:00", "event": "LeftBed", "pressure": 12.0, "who": null}',
    ]
    with pytest.raises(ValueError):
        writer.event(T0, "X", {"ts": 1})


@pytest.mark.parametrize("ts, tz, text", [
    (T0, UTC, "2026-11-20T15:10:00.000+00:00"),
    (T0 + 0.9999, UTC, "2026-11-20T15:10:00.999+00:00"),
    (T0, TAIPEI, "2026-11-20T23:10:00.000+08:00"),
    (datetime(2026, 7, 1, 12, tzinfo=UTC).timestamp(), ZoneInfo("Europe/Berlin"),
     "2026-07-01T14:00:00.000+02:00"),
])
def test_trace_format_ts(ts, tz, text):
    assert format_ts(ts, tz) == text


def test_trace_written_file_reads_back(tmp_path):
    path = tmp_path / "rec.jsonl"
    messages = [(T0, "home/bedroom/pillow", b'{"value":120}'), (T0 + 1.5, "home/door", b"ON"),
                (T0 + 2, "home/n", b"21.5"), (T0 + 3, "home/q", b'"quoted"')]
    with TraceWriter.open(path, TAIPEI) as writer:
        for ts, topic, payload in messages:
            writer.message(ts, topic, payload)
        writer.event(T0 + 4, "E", {"v": 1})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert all(json.loads(line)["ts"].endswith("+08:00") for line in lines)
    reports: list[str] = []
    records = list(TraceReader(path, UTC, reports.append))
    assert reports == []
    assert records == [TraceMessage(i + 1, ts, topic, payload)
                       for i, (ts, topic, payload) in enumerate(messages)] + [
        TraceEvent(5, T0 + 4, "E", {"v": 1})]


def test_trace_writer_clock_marks_read_back(tmp_path):
    path = tmp_path / "rec.jsonl"
    with TraceWriter.open(path, TAIPEI) as writer:
        writer.start(T0)
        writer.message(T0 + 1, "home/door", b"ON")
        writer.stop(T0 + 60.25)
    assert path.read_text(encoding="utf-8").splitlines() == [
        '{"ts": "2026-11-20T23:10:00.000+08:00", "clock": "start"}',
        '{"ts": "2026-11-20T23:10:01.000+08:00", "topic": "home/door", "payload": "ON"}',
        '{"ts": "2026-11-20T23:11:00.250+08:00", "clock": "stop"}',
    ]
    reports: list[str] = []
    assert list(TraceReader(path, UTC, reports.append)) == [
        TraceClock(1, T0, "start"), TraceMessage(2, T0 + 1, "home/door", b"ON"),
        TraceClock(3, T0 + 60.25, "stop")]
    assert reports == []
