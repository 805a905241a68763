"""The bus mapping: topics and payloads of declared event types become engine events."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from cep.adapters.bus import BadMessage, BusMapping, MappingError
from cep.language import ast
from cep.language.diagnostics import Diagnostics
from cep.language.parser import parse_text
from cep.runtime.events import Event

ARRIVAL = 1_800_000_000.0


def create_events(text: str) -> list[ast.CreateEvent]:
    diagnostics = Diagnostics()
    rule_file = parse_text(text, "test.epl", diagnostics)
    assert not diagnostics.has_errors(), [d.headline() for d in diagnostics]
    return [s for s in rule_file.statements if isinstance(s, ast.CreateEvent)]


def mapping(text: str, tz=UTC) -> BusMapping:
    return BusMapping.from_events(create_events(text), tz)


HOME = mapping("""
CREATE EVENT PillowPressure (value FLOAT) FROM TOPIC 'home/bedroom/pillow';
CREATE EVENT BathroomDoor (status STRING) FROM TOPIC 'home/bathroom/door' PAYLOAD AS status;
CREATE EVENT DoorOpen (open BOOL) FROM TOPIC 'home/bathroom/door' PAYLOAD AS open;
CREATE EVENT Temperature (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temperature';
CREATE EVENT Motion (room STRING, occupancy BOOL, battery INT)
    FROM TOPIC 'zigbee2mqtt/{room}_motion';
CREATE EVENT Climate (room STRING, temp FLOAT, hum FLOAT, first INT, at TIMESTAMP)
    FROM TOPIC 'climate/{room}'
    PAYLOAD (temp = 'sensor.temperature', hum = 'sensor.readings.1.value', first = 'list.0')
    TIMESTAMP FROM 'meta.time';
CREATE EVENT Floor (floor INT, room STRING, lux FLOAT) FROM TOPIC 'b/{floor}/{room}/light';
CREATE EVENT AnyLight (lux FLOAT) FROM TOPIC 'b/+/+/light';
CREATE EVENT Raw (text STRING) FROM TOPIC 'raw' PAYLOAD AS text;
CREATE EVENT Counter (n INT) FROM TOPIC 'count' PAYLOAD AS n;
CREATE EVENT Stamped (value FLOAT) FROM TOPIC 'stamped' TIMESTAMP FROM 'ts';
CREATE EVENT Presence (room STRING) FROM TOPIC 'presence/{room}';
CREATE EVENT Internal (level INT, note STRING, at TIMESTAMP);
""")

DECODED = [
    ("default JSON object, keys by attribute name",
     "home/bedroom/pillow", b'{"value": 120, "battery": 90}',
     [Event("PillowPressure", ARRIVAL, {"value": 120.0})]),
    ("a missing attribute is absent",
     "home/bedroom/pillow", b'{"battery": 90}',
     [Event("PillowPressure", ARRIVAL, {})]),
    ("a JSON null is absent",
     "home/bedroom/pillow", b'{"value": null}',
     [Event("PillowPressure", ARRIVAL, {})]),
    ("number in a string",
     "home/bedroom/pillow", b'{"value": "99.5"}',
     [Event("PillowPressure", ARRIVAL, {"value": 99.5})]),
    ("shared topic: one event per type, declaration order",
     "home/bathroom/door", b"ON",
     [Event("BathroomDoor", ARRIVAL, {"status": "ON"}),
      Event("DoorOpen", ARRIVAL, {"open": True})]),
    ("PAYLOAD AS on a JSON string payload takes its content",
     "home/bathroom/door", b'"OFF"',
     [Event("BathroomDoor", ARRIVAL, {"status": "OFF"}),
      Event("DoorOpen", ARRIVAL, {"open": False})]),
    ("PAYLOAD AS keeps the raw text, JSON or not",
     "raw", b'{"a": 1}',
     [Event("Raw", ARRIVAL, {"text": '{"a": 1}'})]),
    ("PAYLOAD AS of an empty payload as STRING",
     "raw", b"",
     [Event("Raw", ARRIVAL, {"text": ""})]),
    ("PAYLOAD AS converts to the declared type",
     "count", b"17",
     [Event("Counter", ARRIVAL, {"n": 17})]),
    ("topic-bound attribute",
     "home/kitchen/temperature", b'{"value": 21.5}',
     [Event("Temperature", ARRIVAL, {"room": "kitchen", "value": 21.5})]),
    ("the topic wins over a payload key of the same name",
     "home/kitchen/temperature", b'{"value": 21, "room": "attic"}',
     [Event("Temperature", ARRIVAL, {"room": "kitchen", "value": 21.0})]),
    ("prefix/suffix level binding and conversions",
     "zigbee2mqtt/hall_motion", b'{"occupancy": true, "battery": 87.0, "linkquality": 5}',
     [Event("Motion", ARRIVAL, {"room": "hall", "occupancy": True, "battery": 87})]),
    ("nested paths with array indexes, TIMESTAMP FROM, unlisted attribute by its own name",
     "climate/office",
     b'{"sensor": {"temperature": "22.5", "readings": [{"value": 1}, {"value": 45}]},'
     b' "list": [7, 8], "meta": {"time": "2027-01-15T08:00:00+01:00"}, "at": 1800000000123}',
     [Event("Climate", datetime(2027, 1, 15, 7, tzinfo=UTC).timestamp(),
            {"room": "office", "temp": 22.5, "hum": 45.0, "first": 7, "at": 1800000000.123})]),
    ("nested paths that are missing, too short or through a scalar are absent",
     "climate/office",
     b'{"sensor": {"temperature": 5, "readings": [{"value": 1}]}, "list": 3,'
     b' "meta": {"time": 1800000000}}',
     [Event("Climate", 1800000000.0, {"room": "office", "temp": 5.0})]),
    ("TIMESTAMP FROM in milliseconds",
     "stamped", b'{"value": 1, "ts": 1800000000500}',
     [Event("Stamped", 1800000000.5, {"value": 1.0})]),
    ("topic-bound INT attribute is converted",
     "b/3/hall/light", b'{"lux": 300}',
     [Event("Floor", ARRIVAL, {"floor": 3, "room": "hall", "lux": 300.0}),
      Event("AnyLight", ARRIVAL, {"lux": 300.0})]),
    ("a type that reads nothing from the payload accepts any payload",
     "presence/kitchen", b"\xff not json",
     [Event("Presence", ARRIVAL, {"room": "kitchen"})]),
]


@pytest.mark.parametrize("topic, payload, expected",
                         [case[1:] for case in DECODED], ids=[case[0] for case in DECODED])
def test_bus_decode(topic, payload, expected):
    assert HOME.decode(topic, payload, ARRIVAL) == (expected, ())


@pytest.mark.parametrize("topic", [
    "home/bedroom/pillow/x", "home/bedroom", "zigbee2mqtt/_motion", "zigbee2mqtt/hall",
    "b/3/light", "other", "climate/a/b", "",
])
def test_bus_unmatched_topic_gives_nothing(topic):
    assert HOME.decode(topic, b'{"value": 1}', ARRIVAL) == ([], ())
    assert HOME.decode(topic, b'{"value": 1}', ARRIVAL) == ([], ())  # cached answer is the same


BAD = [
    ("home/bedroom/pillow", b"ON",
     'payload "ON" is not valid JSON (PillowPressure expects a JSON object)'),
    ("home/bedroom/pillow", b"\xff\xfe",
     'payload "\ufffd\ufffd" is not valid JSON (PillowPressure expects a JSON object)'),
    ("home/bedroom/pillow", b"[1, 2]",
     "payload is an array, not a JSON object (PillowPressure expects one)"),
    ("home/bedroom/pillow", b"21.5",
     "payload is a number, not a JSON object (PillowPressure expects one)"),
    ("home/bedroom/pillow", b'"x"',
     "payload is a string, not a JSON object (PillowPressure expects one)"),
    ("home/bedroom/pillow", b"null",
     "payload is null, not a JSON object (PillowPressure expects one)"),
    ("home/bedroom/pillow", b"true",
     "payload is a boolean, not a JSON object (PillowPressure expects one)"),
    ("home/bedroom/pillow", b'{"value": "high"}', 'PillowPressure.value: "high" is not a FLOAT'),
    ("home/bedroom/pillow", b'{"value": true}',
     "PillowPressure.value: true is not a FLOAT (a boolean is not a number)"),
    ("home/bedroom/pillow", b'{"value": NaN}',
     'payload "{\\"value\\": NaN}" is not valid JSON (PillowPressure expects a JSON object)'),
    ("count", b"1.5", 'Counter.n: "1.5" is not an INT (not a whole number)'),
    ("raw", b"\xff", "Raw.text: the payload is not UTF-8 text"),
    ("zigbee2mqtt/hall_motion", b'{"battery": 87.5}',
     "Motion.battery: 87.5 is not an INT (not a whole number)"),
    ("climate/x", b'{"meta": {}}', "Climate: the payload has no timestamp at 'meta.time'"),
    ("climate/x", b'{"meta": {"time": "soon"}}',
     "Climate timestamp at 'meta.time': \"soon\" is not a TIMESTAMP "
     "(expected ISO-8601 or Unix seconds/milliseconds)"),
    ("climate/x", b'{"meta": {"time": 1}, "at": "never"}',
     'Climate.at: "never" is not a TIMESTAMP (expected ISO-8601 or Unix seconds/milliseconds)'),
]


@pytest.mark.parametrize("topic, payload, reason", BAD)
def test_bus_bad_message(topic, payload, reason):
    events, problems = HOME.decode(topic, payload, ARRIVAL)
    assert events == []
    assert [problem.reason for problem in problems] == [reason]
    assert [str(problem) for problem in problems] == [reason]


# one type of a shared topic fails: a bad message of that type; the other types' events come
SHARED_BAD = [
    ("home/bathroom/door", b"OPEN", [Event("BathroomDoor", ARRIVAL, {"status": "OPEN"})],
     "DoorOpen", 'DoorOpen.open: "OPEN" is not a BOOL (expected ON/OFF, true/false or 1/0)'),
    ("b/first/hall/light", b'{"lux": 1}', [Event("AnyLight", ARRIVAL, {"lux": 1.0})],
     "Floor", 'Floor.floor (from the topic): "first" is not an INT'),
]


@pytest.mark.parametrize("topic, payload, events, type_name, reason", SHARED_BAD)
def test_bus_bad_message_of_one_type_of_a_shared_topic(topic, payload, events, type_name,
                                                       reason):
    got, problems = HOME.decode(topic, payload, ARRIVAL)
    assert got == events
    assert [(problem.type_name, problem.reason) for problem in problems] == [(type_name, reason)]


def test_bus_bad_topic_value_is_bad_every_time():
    for _ in range(2):
        events, [problem] = HOME.decode("b/first/hall/light", b'{"lux": 1}', ARRIVAL)
        assert "from the topic" in problem.reason
        assert [event.type for event in events] == ["AnyLight"]


def test_bus_subscriptions_are_merged():
    assert HOME.subscriptions() == [
        "home/bedroom/pillow", "home/bathroom/door", "home/+/temperature", "zigbee2mqtt/+",
        "climate/+", "b/+/+/light", "raw", "count", "stamped", "presence/+"]
    everything = mapping("""
        CREATE EVENT A (x STRING, v INT) FROM TOPIC 'a/{x}/b';
        CREATE EVENT B (v INT) FROM TOPIC 'a/#';
        CREATE EVENT C (v INT) FROM TOPIC 'a/c';
        CREATE EVENT D (v INT) FROM TOPIC 'd';
        CREATE EVENT D2 (v INT) FROM TOPIC 'd';
        CREATE EVENT E (v INT);
    """)
    assert everything.subscriptions() == ["a/#", "d"]


def test_bus_exact_and_wildcard_templates_keep_declaration_order():
    bus = mapping("""
        CREATE EVENT First (v INT) FROM TOPIC 'x/+';
        CREATE EVENT Second (v INT) FROM TOPIC 'x/y';
        CREATE EVENT Third (room STRING, v INT) FROM TOPIC 'x/{room}';
        CREATE EVENT Fourth (v INT) FROM TOPIC 'x/y';
        CREATE EVENT Other (v INT) FROM TOPIC 'x/z';
    """)
    assert [e.type for e in bus.decode("x/y", b'{"v": 1}', 0.0)[0]] == \
        ["First", "Second", "Third", "Fourth"]
    assert [e.type for e in bus.decode("x/q", b'{"v": 1}', 0.0)[0]] == ["First", "Third"]
    assert bus.decode("x/q", b'{"v": 1}', 0.0)[0][1].attrs == {"room": "q", "v": 1}


def test_bus_events_do_not_share_attribute_dicts():
    first = HOME.decode("home/kitchen/temperature", b'{"value": 1}', 0.0)[0][0]
    first.attrs["value"] = 99
    second = HOME.decode("home/kitchen/temperature", b'{"value": 2}', 0.0)[0][0]
    assert second.attrs == {"room": "kitchen", "value": 2.0}


def test_bus_wildcard_cache_is_bounded():
    bus = mapping("CREATE EVENT T (room STRING) FROM TOPIC 'home/{room}';")
    bus.CACHE_LIMIT = 4
    for i in range(10):
        assert bus.decode(f"home/r{i}", b"", 0.0) == ([Event("T", 0.0, {"room": f"r{i}"})], ())
        assert len(bus._cache) <= 4


def test_bus_offsetless_timestamps_use_the_zone():
    bus = mapping("CREATE EVENT S (v INT) FROM TOPIC 's' TIMESTAMP FROM 't';",
                  ZoneInfo("Asia/Taipei"))
    [event], _ = bus.decode("s", b'{"t": "2026-11-20T23:10:00"}', 0.0)
    assert event.ts == datetime(2026, 11, 20, 15, 10, tzinfo=UTC).timestamp()


MADE = [
    ("PillowPressure", {"value": "120"}, {"value": 120.0}),
    ("PillowPressure", {"value": None}, {}),
    ("Internal", {"level": 3.0, "note": "x", "at": "2027-01-15T08:00:00Z"},
     {"level": 3, "note": "x", "at": datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()}),
    ("Temperature", {"room": "kitchen"}, {"room": "kitchen"}),
]

DERIVED = BusMapping.from_events([], UTC,
                                 {"LeftBed": {"pressure": "FLOAT", "key": "LIST", "a": "EVENT"}})


def test_bus_make_event_converts_derived_types_by_their_schema():
    assert DERIVED.make_event("LeftBed", 5.0, {"pressure": 12, "key": ["x", 1], "a": None}) == \
        Event("LeftBed", 5.0, {"pressure": 12.0, "key": ["x", 1]})


@pytest.mark.parametrize("type_name, raw, reason", [
    ("LeftBed", {"pressure": "abc"}, 'LeftBed.pressure: "abc" is not a FLOAT'),
    ("LeftBed", {"a": {"x": 1}}, "LeftBed.a: holds tagged events, which a trace line cannot give"),
    ("LeftBed", {"other": 1}, "LeftBed has no attribute 'other'"),
    ("Nope", {}, "unknown event type 'Nope'"),
])
def test_bus_make_event_refuses_bad_derived_lines(type_name, raw, reason):
    with pytest.raises(BadMessage) as info:
        DERIVED.make_event(type_name, 5.0, raw)
    assert info.value.reason == reason


@pytest.mark.parametrize("type_name, raw, attrs", MADE)
def test_bus_make_event(type_name, raw, attrs):
    assert HOME.make_event(type_name, 5.0, raw) == Event(type_name, 5.0, attrs)


@pytest.mark.parametrize("type_name, raw, reason", [
    ("PillowPressure", {"value": 1, "battery": 3}, "PillowPressure has no attribute 'battery'"),
    ("PillowPressure", {"value": "x"}, 'PillowPressure.value: "x" is not a FLOAT'),
    ("Internal", {"level": False}, "Internal.level: false is not an INT (a boolean is not a number)"),
])
def test_bus_make_event_refuses(type_name, raw, reason):
    with pytest.raises(BadMessage) as info:
        HOME.make_event(type_name, 5.0, raw)
    assert info.value.reason == reason


def test_bus_declares():
    assert HOME.declares("Internal") and HOME.declares("Temperature")
    assert not HOME.declares("LeftBed")
    assert HOME.attribute_types("Temperature") == {"room": "STRING", "value": "FLOAT"}


@pytest.mark.parametrize("text, message", [
    ("CREATE EVENT A (v INT) FROM TOPIC 'x/{room}';",
     "A: the topic binds 'room', which is not a declared attribute"),
    ("CREATE EVENT A (v INT) FROM TOPIC 'x' PAYLOAD AS w;",
     "A: PAYLOAD AS names 'w', which is not a declared attribute"),
    ("CREATE EVENT A (v INT) FROM TOPIC 'x' PAYLOAD (w = 'a.b');",
     "A: PAYLOAD names 'w', which is not a declared attribute"),
    ("CREATE EVENT A (v INT) FROM TOPIC 'x' PAYLOAD (v = 'a..b');",
     "bad payload path 'a..b'"),
    ("CREATE EVENT A (v INT) FROM TOPIC 'x/{v}' PAYLOAD AS v;",
     "A: 'v' is bound by the topic and by PAYLOAD AS"),
    ("CREATE EVENT A (v INT) FROM TOPIC 'x/{v}' PAYLOAD (v = 'a');", "A: 'v' gets its value twice"),
    ("CREATE EVENT A (v INT) FROM TOPIC 'x/#/y';", "`#` must be the last level"),
    ("CREATE EVENT A (v DOUBLE) FROM TOPIC 'x';", "A.v: unknown type 'DOUBLE'"),
    ("CREATE EVENT A (v INT, v FLOAT) FROM TOPIC 'x';", "A: attribute 'v' is declared twice"),
    ("CREATE EVENT A (v INT) FROM TOPIC 'x'; CREATE EVENT A (v INT) FROM TOPIC 'y';",
     "event type 'A' is declared twice"),
    ("CREATE EVENT A (v INT) FROM TOPIC 'x' TIMESTAMP FROM '';", "bad payload path ''"),
])
def test_bus_inconsistent_declarations_are_refused(text, message):
    with pytest.raises(MappingError) as info:
        mapping(text)
    assert message in str(info.value)
