"""Reading trace files: both line forms, every ts form, every bad line with its exact report."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cep.adapters.trace import (
    TraceClock,
    TraceEvent,
    TraceMessage,
    TraceReader,
    parse_trace_ts,
    read_trace,
)

UTC = UTC
TAIPEI = ZoneInfo("Asia/Taipei")
T0 = datetime(2026, 11, 20, 15, 10, tzinfo=UTC).timestamp()  # 23:10 in Taipei


def read(tmp_path: Path, text: str | bytes, tz=UTC):
    path = tmp_path / "t.jsonl"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    reports: list[str] = []
    reader = TraceReader(path, tz, reports.append, name="t.jsonl")
    return list(reader), reports, reader


def test_trace_both_line_forms(tmp_path):
    records, reports, reader = read(tmp_path, "\n".join([
        '{"ts": "2026-11-20T23:10:00+08:00", "topic": "home/bedroom/pillow", "payload": {"value": 120}}',
        '{"ts": "2026-11-20T23:40:05+08:00", "topic": "home/bathroom/door", "payload": "ON"}',
        '{"ts": "2026-11-20T23:41:00+08:00", "event": "PillowPressure", "value": 120, "topic": "t"}',
        '{"ts": "2026-11-20T23:42:00+08:00", "topic": "a", "payload": [1, "é", null]}',
        '{"ts": "2026-11-20T23:43:00+08:00", "topic": "a", "payload": 21.5}',
        '{"ts": "2026-11-20T23:44:00+08:00", "topic": "a", "payload": null}',
        '{"ts": "2026-11-20T23:45:00+08:00", "topic": "a", "payload": "{\\"x\\": 1}"}',
        '{"ts": "2026-11-20T23:46:00+08:00", "topic": "a", "payload": ""}',
        '{"ts": "2026-11-20T23:47:00+08:00", "event": "Empty"}',
    ]) + "\n")
    assert reports == [] and reader.skipped == 0 and reader.records == 9
    assert records == [
        TraceMessage(1, T0, "home/bedroom/pillow", b'{"value":120}'),
        TraceMessage(2, T0 + 1805, "home/bathroom/door", b"ON"),
        TraceEvent(3, T0 + 1860, "PillowPressure", {"value": 120, "topic": "t"}),
        TraceMessage(4, T0 + 1920, "a", '[1,"é",null]'.encode()),
        TraceMessage(5, T0 + 1980, "a", b"21.5"),
        TraceMessage(6, T0 + 2040, "a", b"null"),
        TraceMessage(7, T0 + 2100, "a", b'{"x": 1}'),  # a string stays the raw text
        TraceMessage(8, T0 + 2160, "a", b""),
        TraceEvent(9, T0 + 2220, "Empty", {}),
    ]


TS_FORMS = [
    ('"2026-11-20T23:10:00+08:00"', UTC, T0),
    ('"2026-11-20T15:10:00Z"', TAIPEI, T0),
    ('"2026-11-20T15:10:00.5Z"', UTC, T0 + 0.5),
    ('"2026-11-20T15:10:00"', UTC, T0),
    ('"2026-11-20T23:10:00"', TAIPEI, T0),      # no offset: read in the given zone
    ('"2026-11-20 23:10:00"', TAIPEI, T0),
    ('"2026-11-20T23:10"', TAIPEI, T0),
    ('"20261120T151000Z"', UTC, T0),
    ('"2026-11-20T15:10:00.123456789Z"', UTC, T0 + 0.123456),  # more digits than microseconds
    (repr(T0), TAIPEI, T0),                      # a number is Unix seconds in any zone
    (str(int(T0)), UTC, T0),
    ("1800000000123", UTC, 1800000000.123),    # above 1e11: milliseconds, as for TIMESTAMP
]


@pytest.mark.parametrize("ts, tz, expected", TS_FORMS)
def test_trace_ts_forms(tmp_path, ts, tz, expected):
    records, reports, _ = read(tmp_path, f'{{"ts": {ts}, "topic": "x", "payload": "1"}}\n', tz)
    assert reports == []
    assert records[0].ts == pytest.approx(expected, abs=1e-6)


BAD_LINES = [
    ("{not json", "not valid JSON"),
    ('{"ts": 1, "topic": "x", "payload": 1', "not valid JSON"),
    ('{"ts": 1, "topic": "x", "payload": NaN}', "not valid JSON"),
    (b'{"ts": 1, "topic": "x", "payload": "\xff"}', "not valid UTF-8"),
    ("[1, 2]", "not a JSON object"),
    ('"just a string"', "not a JSON object"),
    ('{"topic": "x", "payload": 1}', 'missing "ts"'),
    ('{"ts": "yesterday", "topic": "x", "payload": 1}',
     'bad "ts" "yesterday": expected ISO-8601 time or Unix seconds'),
    ('{"ts": "2026-13-01T00:00:00", "topic": "x", "payload": 1}',
     'bad "ts" "2026-13-01T00:00:00": expected ISO-8601 time or Unix seconds'),
    ('{"ts": null, "topic": "x", "payload": 1}',
     'bad "ts" null: expected ISO-8601 time or Unix seconds'),
    ('{"ts": true, "topic": "x", "payload": 1}',
     'bad "ts" true: expected ISO-8601 time or Unix seconds'),
    ('{"ts": [1], "topic": "x", "payload": 1}',
     'bad "ts" an array: expected ISO-8601 time or Unix seconds'),
    ('{"ts": 1}', 'needs "topic" and "payload" (a bus message) or "event"'),
    ('{"ts": 1, "topic": "x"}', 'missing "payload"'),
    ('{"ts": 1, "payload": "x"}', 'missing "topic"'),
    ('{"ts": 1, "topic": 5, "payload": "x"}',
     '"topic" must be a topic name without wildcards, not 5'),
    ('{"ts": 1, "topic": "", "payload": "x"}',
     '"topic" must be a topic name without wildcards, not ""'),
    ('{"ts": 1, "topic": "a/+", "payload": "x"}',
     '"topic" must be a topic name without wildcards, not "a/+"'),
    ('{"ts": 1, "topic": "a/#", "payload": "x"}',
     '"topic" must be a topic name without wildcards, not "a/#"'),
    ('{"ts": 1, "event": 3}', '"event" must name an event type, not 3'),
    ('{"ts": 1, "event": ""}', '"event" must name an event type, not ""'),
    ('{"ts": 1, "event": null, "topic": "x", "payload": 1}',
     '"event" must name an event type, not null'),
    # clock marks: only "start" or "stop", nothing beside "ts", a start only first
    ('{"ts": 1, "clock": "pause"}', '"clock" must be "start" or "stop", not "pause"'),
    ('{"ts": 1, "clock": 1}', '"clock" must be "start" or "stop", not 1'),
    ('{"ts": 1, "clock": ["stop"]}', '"clock" must be "start" or "stop", not an array'),
    ('{"ts": 1, "clock": "stop", "topic": "x", "payload": 1}',
     'a clock mark holds only "ts" and "clock", not "topic"'),
    ('{"ts": 1, "clock": "stop", "note": "x"}',
     'a clock mark holds only "ts" and "clock", not "note"'),
    ('{"clock": "stop"}', 'missing "ts"'),
    ('{"ts": 1, "clock": "start"}',
     "a start mark is good only as the first line of a trace; the clock started at line 1"),
]


@pytest.mark.parametrize("line, reason", BAD_LINES)
def test_trace_bad_line_is_reported_and_skipped(tmp_path, line, reason):
    good_before = b'{"ts": 0, "topic": "ok", "payload": "1"}\n'
    good_after = b'{"ts": 2, "topic": "ok", "payload": "2"}\n'
    body = line if isinstance(line, bytes) else line.encode()
    records, reports, reader = read(tmp_path, good_before + b"\n" + body + b"\n" + good_after)
    assert reports == [f"t.jsonl:3: {reason}"]
    assert reader.skipped == 1 and reader.records == 2
    assert [r.line for r in records] == [1, 4]


def test_trace_clock_marks_and_an_event_with_a_clock_attribute(tmp_path):
    records, reports, reader = read(tmp_path, "\n".join([
        '{"ts": 1, "clock": "start"}',
        '{"ts": 2, "event": "E", "clock": "start"}',  # an event line, whatever else it holds
        '{"ts": 3, "clock": "stop"}',
    ]) + "\n")
    assert reports == [] and reader.skipped == 0 and reader.after_stop == 0
    assert records == [TraceClock(1, 1.0, "start"), TraceEvent(2, 2.0, "E", {"clock": "start"}),
                       TraceClock(3, 3.0, "stop")]
    assert reader.stopped == 3


def test_trace_time_going_back(tmp_path):
    records, reports, reader = read(tmp_path, "\n".join([
        '{"ts": "2026-11-20T23:10:00+08:00", "topic": "a", "payload": "1"}',
        '{"ts": "2026-11-20T23:09:59+08:00", "topic": "a", "payload": "2"}',
        '{"ts": "2026-11-20T23:10:00+08:00", "topic": "a", "payload": "3"}',  # equal: fine
        'oops',
        f'{{"ts": {T0 - 1}, "event": "E"}}',
        '{"ts": "2026-11-20T23:10:05+08:00", "event": "E"}',
    ]))
    assert reports == [
        't.jsonl:2: time goes back: "ts" "2026-11-20T23:09:59+08:00" is earlier than '
        'line 1 ("2026-11-20T23:10:00+08:00")',
        "t.jsonl:4: not valid JSON",
        f't.jsonl:5: time goes back: "ts" {T0 - 1!r} is earlier than '
        'line 3 ("2026-11-20T23:10:00+08:00")',
    ]
    assert [r.line for r in records] == [1, 3, 6]
    assert reader.skipped == 3


def test_trace_blank_lines_bom_and_crlf(tmp_path):
    text = (b'\xef\xbb\xbf{"ts": 1, "topic": "a", "payload": "x"}\r\n'
            b"\r\n   \n\t\n"
            b'{"ts": 2, "topic": "a", "payload": "y"}')  # no newline at the end
    records, reports, _reader = read(tmp_path, text)
    assert reports == []
    assert records == [TraceMessage(1, 1.0, "a", b"x"), TraceMessage(5, 2.0, "a", b"y")]


def test_trace_is_streamed_lazily(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"ts": 1, "topic": "a", "payload": "x"}\n' * 3 + "bad\n")
    reports: list[str] = []
    iterator = iter(read_trace(path, UTC, reports.append))
    assert next(iterator).line == 1
    assert reports == []  # the bad last line is not read yet
    assert [r.line for r in iterator] == [2, 3]
    assert reports == [f"{path}:4: not valid JSON"]


def test_trace_reads_an_open_stream():
    reader = TraceReader("stdin", UTC, name="<stdin>")
    stream = io.BytesIO(b'{"ts": 3, "event": "X", "v": 1}\n')
    assert list(reader.read_lines(stream)) == [TraceEvent(1, 3.0, "X", {"v": 1})]


def test_trace_without_report_callback_still_counts(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("bad\n{}\n")
    reader = TraceReader(path)
    assert list(reader) == [] and reader.skipped == 2


def test_trace_missing_file_raises(tmp_path):
    with pytest.raises(OSError):
        list(TraceReader(tmp_path / "nope.jsonl"))


def test_trace_parse_ts_directly():
    assert parse_trace_ts("2026-11-20T23:10:00", TAIPEI) == T0
    assert parse_trace_ts(5, UTC) == 5.0
    with pytest.raises(ValueError, match='bad "ts" inf'):
        parse_trace_ts(float("inf"), UTC)


@pytest.mark.slow  # a Python child process
def test_trace_reading_works_without_orjson(tmp_path):
    """The stdlib fallback gives the same records and reports as orjson."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"ts": "2026-11-20T15:10:00Z", "topic": "a", "payload": {"v": [1, "\xc3\xa9"]}}\n'
                     b'{"ts": 1, "topic": "a", "payload": NaN}\n'
                     b'{"ts": 1, "topic": "a", "payload": "\xff"}\n'
                     b'{"ts": "2026-11-20T15:10:01Z", "event": "E", "n": 12345678901234567890}\n')
    script = (
        "import sys; sys.modules['orjson'] = None\n"
        "from cep.adapters import jsonlib; assert not jsonlib.HAVE_ORJSON\n"
        "from cep.adapters.trace import TraceReader\n"
        "reader = TraceReader(sys.argv[1], report=print, name='t')\n"
        "for r in reader: print(repr(r))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parent.parent, check=True,
                            timeout=60)
    payload = '{"v":[1,"é"]}'.encode()
    assert result.stdout.splitlines() == [
        f"TraceMessage(line=1, ts={T0!r}, topic='a', payload={payload!r})",
        "t:2: not valid JSON",
        "t:3: not valid UTF-8",
        f"TraceEvent(line=4, ts={T0 + 1!r}, type='E', attrs={{'n': 12345678901234567890}})",
    ]


def test_position_is_bytes_read_then_where_reading_ended(tmp_path):
    """The view's progress bar: bytes read while reading, and the end once the file is
    read (replay may run on to --until); nothing before reading starts."""
    lines = [f'{{"ts": {t}, "topic": "a", "payload": "{t}"}}\n' for t in range(1, 4)]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(lines))
    reader = TraceReader(str(path), UTC)
    assert reader.position is None
    seen = [reader.position for _ in reader]
    assert all(0 < p <= path.stat().st_size for p in seen)
    assert reader.position == path.stat().st_size
