"""Value conversion to declared types: every accepted form and every refused one with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from cep.runtime.convert import BadValue, converter, iso_to_unix

UTC = UTC
TAIPEI = ZoneInfo("Asia/Taipei")
T0 = datetime(2026, 11, 20, 15, 10, tzinfo=UTC).timestamp()  # 23:10 in Taipei

ACCEPTED = [
    # INT
    ("INT", 42, 42),
    ("INT", -7, -7),
    ("INT", 42.0, 42),
    ("INT", "42", 42),
    ("INT", " 42 ", 42),
    ("INT", "-3", -3),
    ("INT", "42.0", 42),
    ("INT", "1e3", 1000),
    # FLOAT
    ("FLOAT", 21.5, 21.5),
    ("FLOAT", 21, 21.0),
    ("FLOAT", "21.5", 21.5),
    ("FLOAT", "-0.25", -0.25),
    ("FLOAT", "7", 7.0),
    ("FLOAT", "1e-3", 0.001),
    # STRING
    ("STRING", "ON", "ON"),
    ("STRING", "", ""),
    ("STRING", 42, "42"),
    ("STRING", 21.5, "21.5"),
    ("STRING", True, "true"),
    ("STRING", False, "false"),
    # BOOL
    ("BOOL", True, True),
    ("BOOL", False, False),
    ("BOOL", "ON", True),
    ("BOOL", "on", True),
    ("BOOL", "OFF", False),
    ("BOOL", "Off", False),
    ("BOOL", "true", True),
    ("BOOL", "TRUE", True),
    ("BOOL", "False", False),
    ("BOOL", "1", True),
    ("BOOL", "0", False),
    ("BOOL", 1, True),
    ("BOOL", 0, False),
    ("BOOL", 1.0, True),
    # TIMESTAMP (UTC zone for offset-less text here)
    ("TIMESTAMP", "2026-11-20T15:10:00Z", T0),
    ("TIMESTAMP", "2026-11-20T23:10:00+08:00", T0),
    ("TIMESTAMP", "2026-11-20T15:10:00", T0),
    ("TIMESTAMP", "2026-11-20T15:10:00.250Z", T0 + 0.25),
    ("TIMESTAMP", "20261120T151000Z", T0),
    ("TIMESTAMP", "2026-11-20T24:00:00Z",  # dateutil's fallback knows 24:00
     datetime(2026, 11, 21, tzinfo=UTC).timestamp()),
    ("TIMESTAMP", T0, T0),
    ("TIMESTAMP", int(T0), T0),
    ("TIMESTAMP", T0 * 1000, T0),  # above 1e11: milliseconds
    ("TIMESTAMP", int(T0 * 1000) + 500, T0 + 0.5),
    ("TIMESTAMP", "1700000000", 1700000000.0),
    ("TIMESTAMP", "1700000000123", 1700000000.123),
]


@pytest.mark.parametrize("type_name, value, expected", ACCEPTED)
def test_bus_convert_accepts(type_name, value, expected):
    result = converter(type_name, UTC)(value)
    assert result == pytest.approx(expected) if type_name == "TIMESTAMP" else result == expected
    assert type(result) is type(expected) or type_name == "TIMESTAMP"
    if type_name == "TIMESTAMP":
        assert type(result) is float


REFUSED = [
    # 1e11 seconds is the year 5138: outside the range of times cep takes
    ("TIMESTAMP", 1e11, "100000000000.0 is not a TIMESTAMP (a time outside 1970-01-01 .. 2200-01-01 UTC)"),
    ("INT", 2.5, "2.5 is not an INT (not a whole number)"),
    ("INT", "2.5", '"2.5" is not an INT (not a whole number)'),
    ("INT", "abc", '"abc" is not an INT'),
    ("INT", "", '"" is not an INT'),
    ("INT", "1_000", '"1_000" is not an INT'),
    ("INT", "0x10", '"0x10" is not an INT'),
    ("INT", "inf", '"inf" is not an INT (not a finite number)'),
    ("INT", True, "true is not an INT (a boolean is not a number)"),
    ("INT", {"a": 1}, "an object is not an INT"),
    ("INT", [1], "an array is not an INT"),
    ("FLOAT", "abc", '"abc" is not a FLOAT'),
    ("FLOAT", "nan", '"nan" is not a FLOAT (not a finite number)'),
    ("FLOAT", "-Infinity", '"-Infinity" is not a FLOAT (not a finite number)'),
    ("FLOAT", float("inf"), "inf is not a FLOAT (not a finite number)"),
    ("FLOAT", False, "false is not a FLOAT (a boolean is not a number)"),
    ("FLOAT", "21,5", '"21,5" is not a FLOAT'),
    ("FLOAT", [21.5], "an array is not a FLOAT"),
    ("STRING", {"state": "ON"}, "an object is not a STRING"),
    ("STRING", ["a"], "an array is not a STRING"),
    ("BOOL", "open", '"open" is not a BOOL (expected ON/OFF, true/false or 1/0)'),
    ("BOOL", "yes", '"yes" is not a BOOL (expected ON/OFF, true/false or 1/0)'),
    ("BOOL", 2, "2 is not a BOOL (expected ON/OFF, true/false or 1/0)"),
    ("BOOL", 0.5, "0.5 is not a BOOL (expected ON/OFF, true/false or 1/0)"),
    ("BOOL", "", '"" is not a BOOL (expected ON/OFF, true/false or 1/0)'),
    ("BOOL", 'a"b\nc', '"a\\"b\\nc" is not a BOOL (expected ON/OFF, true/false or 1/0)'),
    ("BOOL", {}, "an object is not a BOOL (expected ON/OFF, true/false or 1/0)"),
    ("TIMESTAMP", "yesterday",
     '"yesterday" is not a TIMESTAMP (expected ISO-8601 or Unix seconds/milliseconds)'),
    ("TIMESTAMP", "2026-13-01T00:00:00",
     '"2026-13-01T00:00:00" is not a TIMESTAMP (expected ISO-8601 or Unix seconds/milliseconds)'),
    ("TIMESTAMP", True, "true is not a TIMESTAMP (a boolean is not a time)"),
    ("TIMESTAMP", "nan", '"nan" is not a TIMESTAMP (not a finite number)'),
    ("TIMESTAMP", [1], "an array is not a TIMESTAMP (expected ISO-8601 or Unix seconds/milliseconds)"),
]


@pytest.mark.parametrize("type_name, value, reason", REFUSED)
def test_bus_convert_refuses(type_name, value, reason):
    with pytest.raises(BadValue) as info:
        converter(type_name, UTC)(value)
    assert info.value.reason == reason


def test_bus_convert_long_values_are_shortened_in_reasons():
    with pytest.raises(BadValue) as info:
        converter("INT", UTC)("x" * 200)
    assert info.value.reason == '"' + "x" * 56 + '... is not an INT'


def test_bus_timestamp_without_offset_is_read_in_the_zone():
    to_ts = converter("TIMESTAMP", TAIPEI)
    assert to_ts("2026-11-20T23:10:00") == T0
    assert to_ts("2026-11-20T23:10:00Z") == T0 + 8 * 3600  # an explicit offset wins


def test_bus_iso_to_unix_daylight_saving_gap_and_fold():
    berlin = ZoneInfo("Europe/Berlin")
    # 02:30 on 2026-03-29 does not exist in Berlin: read as the first instant's offset (+01:00)
    assert iso_to_unix("2026-03-29T02:30:00", berlin) == \
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC).timestamp()
    # 02:30 on 2026-10-25 happens twice: the first one (+02:00) is taken
    assert iso_to_unix("2026-10-25T02:30:00", berlin) == \
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC).timestamp()


def test_bus_unknown_type_has_no_converter():
    with pytest.raises(KeyError):
        converter("DOUBLE", UTC)


def test_bus_iso_to_unix_matches_datetime():
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone(timedelta(hours=-5)))
    assert iso_to_unix(moment.isoformat(), UTC) == moment.timestamp()


@pytest.mark.parametrize("data", [b"NaN", b'{"a": Infinity}', b"-Infinity", b"\xff",
                                  '{"a": 1}'.encode("utf-16"), b"{", b""])
def test_bus_json_fallback_refuses_what_orjson_refuses(data):
    from cep.adapters import jsonlib

    with pytest.raises(ValueError):
        jsonlib._std_loads(data)
    with pytest.raises(ValueError):
        jsonlib.loads(data)


def test_bus_json_fallback_reads_and_writes_like_orjson():
    from cep.adapters import jsonlib

    data = '{"a": [1, 2.5, "é", null, true], "b": {}}'.encode()
    assert jsonlib._std_loads(data) == jsonlib.loads(data)
    assert jsonlib._std_loads(memoryview(data)) == jsonlib.loads(data)
    assert jsonlib._std_dumps_compact(jsonlib.loads(data)) == jsonlib.dumps_compact(
        jsonlib.loads(data)) == '{"a":[1,2.5,"é",null,true],"b":{}}'.encode()
