"""Context runtimes' snapshots: an engine restored from a snapshot of its contexts taken at
any instant (after every input, and between inputs while timers are pending) goes on
exactly as the original would have, and a restored runtime saves exactly what it read.

Each case runs twice over the same steps (events, and clock advances on a grid between
them): once without a restart, once restarting before every step (snapshot, through JSON
text, into a fresh engine of the same rules).  Most rule sets are those of
tests/test_contexts.py, test_keyed_intervals.py, test_terminated_by_pattern.py and
test_recurring_sun.py, without their SELECT rules: ON START / ON END rules and the
context lines are what show a context's life.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import load

from cep.language import ast
from cep.language.catalog import Catalog
from cep.language.diagnostics import Diagnostics
from cep.language.parser import parse_text
from cep.runtime import contexts
from cep.runtime.contexts import (
    CompositeRuntime,
    EventIntervalRuntime,
    PartitionRuntime,
    RecurringRuntime,
)
from cep.runtime.engine import Engine
from cep.runtime.events import Event
from cep.runtime.recurrence import Occurrences, Recurrence
from cep.runtime.snapshot import StateFormatError, StateWriter

Step = Event | float  # an input, or a clock advance to that time


# ---------------------------------------------------------------- driving engines


def context_state(engine: Engine) -> Any:
    """What the context runtimes and the entity tracker save, with the events they refer
    to, as JSON data."""
    w = StateWriter()
    w.add_instance(engine.global_instance)
    data = {"entities": engine.entities.snapshot(w),
            "contexts": {rt.name: rt.snapshot(w) for rt in engine._context_order()}}
    data["events"] = w.events
    return json.loads(json.dumps(data, allow_nan=False))


def restart(engine: Engine, **options: Any) -> Engine:
    data = json.loads(json.dumps(engine.snapshot(), allow_nan=False))
    fresh = Engine(engine.catalog, engine.sink, engine.tz, **options)
    fresh.restore(data)
    assert context_state(fresh) == context_state(engine)  # it saves what it read
    return fresh


def drive(catalog: Catalog, zone: Any, first: float, steps: list[Step], restarts: bool,
          **options: Any) -> tuple[list[dict], Engine]:
    outputs: list[dict] = []
    engine = Engine(catalog, outputs.append, zone, show_contexts=True, **options)
    engine.start(first)
    for step in steps:
        if restarts:
            engine = restart(engine, show_contexts=True, **options)
        if isinstance(step, Event):
            engine.process(step)
        else:
            engine.advance(step)
    return outputs, engine


def trace_steps(catalog: Catalog, zone: Any, lines: list[tuple[str, str, Any]],
                until: float, every: float) -> list[Step]:
    """The events of the trace lines, with clock advances every `every` seconds from the
    first event to `until` in between."""
    from cep.adapters.bus import BusMapping, create_events
    from cep.adapters.trace import parse_trace_ts

    bus = BusMapping.from_events(create_events(catalog), zone)
    events: list[Event] = []
    for ts_text, topic, payload in lines:
        raw = payload if isinstance(payload, str) else json.dumps(payload)
        decoded, problems = bus.decode(topic, raw.encode(), parse_trace_ts(ts_text, zone))
        assert not problems
        events.extend(decoded)
    steps: list[Step] = []
    at = events[0].ts + every
    for event in events:
        while at < event.ts:
            steps.append(at)
            at += every
        steps.append(event)
    while at < until:
        steps.append(at)
        at += every
    steps.append(until)
    return steps


def assert_restarts_change_nothing(catalog: Catalog, zone: Any, steps: list[Step],
                                   first: float | None = None, **options: Any) -> list[dict]:
    if first is None:
        first = next(step.ts for step in steps if isinstance(step, Event))
    plain, _ = drive(catalog, zone, first, steps, False, **options)
    restarted, _ = drive(catalog, zone, first, steps, True, **options)
    assert restarted == plain
    assert any(o["kind"] == "context-start" for o in plain)  # (the case shows something)
    return plain


def check_rules(rules: str, lines: list[tuple[str, str, Any]], until: str,
                every: float = 60.0, **options: Any) -> list[dict]:
    from cep.adapters.trace import parse_trace_ts
    from cep.language.timezones import get_zone

    loaded = load(rules)
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    zone = get_zone(loaded.catalog.timezone)
    steps = trace_steps(loaded.catalog, zone, lines, parse_trace_ts(until, zone), every)
    return assert_restarts_change_nothing(loaded.catalog, zone, steps, **options)


# ---------------------------------------------------------------- event intervals

AC = """
SET TIMEZONE 'Europe/Berlin';
CREATE EVENT Temperature (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temperature';
CREATE CONTEXT Hot INITIATED BY Temperature(value > 28) DURATION 1 hour POLICY %s;
CONTEXT Hot ON START PUBLISH 'home/{room}/ac/set' PAYLOAD {"state": "ON"};
CONTEXT Hot ON END   PUBLISH 'home/{room}/ac/set' PAYLOAD {"state": "OFF"};
"""
AC_TRACE = [("2026-07-01T14:00:00", "home/kitchen/temperature", {"value": 29}),
            ("2026-07-01T14:00:10", "home/kitchen/temperature", {"value": 30}),
            ("2026-07-01T14:30:00", "home/hall/temperature", {"value": 31}),
            ("2026-07-01T15:00:10", "home/hall/temperature", {"value": 31})]
POLICIES = ["ADD", "IGNORE", "REFRESH", "EXTEND"]


@pytest.mark.parametrize("policy", POLICIES)
def test_an_initiated_interval_under_each_policy(policy):
    check_rules(AC % policy, AC_TRACE, "2026-07-01T17:00:00", every=5 * 60.0)


TERMINATED = """
SET TIMEZONE 'UTC';
CREATE EVENT Door (status STRING) FROM TOPIC 'door' PAYLOAD AS status;
CREATE CONTEXT Away INITIATED BY Door(status = 'LOCKED') TERMINATED BY Door(status = 'OPEN');
CONTEXT Away ON END PUBLISH 'away' PAYLOAD {"was": status};
"""


def test_terminated_by_an_event():
    check_rules(TERMINATED, [("2026-01-01T09:00:00", "door", "LOCKED"),
                             ("2026-01-01T10:00:00", "door", "LOCKED"),
                             ("2026-01-01T11:00:00", "door", "OPEN"),
                             ("2026-01-01T11:01:00", "door", "LOCKED")],
                "2026-01-01T12:00:00", every=20 * 60.0)


DOORS = """
SET TIMEZONE 'UTC';
CREATE EVENT Door (door STRING, contact BOOL) FROM TOPIC 'zigbee2mqtt/{door}';
CREATE CONTEXT DoorOpen PARTITION BY door INITIATED BY Door(contact = false)
    TERMINATED BY Door(contact = true) DURATION 10 min POLICY %s;
CONTEXT DoorOpen ON START PUBLISH 'home/{door}/open' PAYLOAD {"key": context.key};
CONTEXT DoorOpen ON END PUBLISH 'home/{door}/shut' PAYLOAD {"key": context.key};
"""
DOOR_TRACE = [("2026-01-01T10:00:00", "zigbee2mqtt/window", {"contact": False}),
              ("2026-01-01T10:01:00", "zigbee2mqtt/balcony", {"contact": False}),
              ("2026-01-01T10:02:00", "zigbee2mqtt/garage", {"contact": True}),
              ("2026-01-01T10:03:00", "zigbee2mqtt/window", {"contact": False}),
              ("2026-01-01T10:04:00", "zigbee2mqtt/balcony", {"contact": True}),
              ("2026-01-01T10:20:00", "zigbee2mqtt/balcony", {"contact": False})]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_keyed_interval_under_each_policy(policy):
    check_rules(DOORS % policy, DOOR_TRACE, "2026-01-01T11:00:00", every=30.0)


def test_a_keyed_interval_of_two_attributes():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Leak (floor STRING, room STRING, wet BOOL) FROM TOPIC 'leak/{floor}/{room}';
    CREATE CONTEXT Wet PARTITION BY floor, room INITIATED BY Leak(wet = true)
        TERMINATED BY Leak(wet = false);
    CONTEXT Wet ON START PUBLISH 'alarm/{floor}/{room}' PAYLOAD {"key": context.key};
    CONTEXT Wet ON END PUBLISH 'dry/{floor}/{room}' PAYLOAD {"key": context.key};
    """
    check_rules(rules, [("2026-01-01T10:00:00", "leak/1/bath", {"wet": True}),
                        ("2026-01-01T10:03:00", "leak/2/bath", {"wet": True}),
                        ("2026-01-01T10:05:00", "leak/1/bath", {"wet": False}),
                        ("2026-01-01T10:06:00", "leak/1/bath", {"wet": True})],
                "2026-01-01T10:10:00")


def test_an_initiating_pattern():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Door (status STRING) FROM TOPIC 'door' PAYLOAD AS status;
    CREATE CONTEXT Visit INITIATED BY PATTERN [ every Door(status = 'OPEN') -> Door(status = 'CLOSED') ]
        DURATION 10 min;
    CONTEXT Visit ON START PUBLISH 'visit' PAYLOAD 'started';
    CONTEXT Visit ON END PUBLISH 'visit' PAYLOAD 'ended';
    """
    check_rules(rules, [("2026-01-01T09:00:00", "door", "OPEN"),
                        ("2026-01-01T09:00:05", "door", "CLOSED"),
                        ("2026-01-01T09:20:00", "door", "OPEN"),
                        ("2026-01-01T09:25:00", "door", "CLOSED")],
                "2026-01-01T10:00:00")


VISITS = """
SET TIMEZONE 'UTC';
CREATE EVENT Motion (room STRING) FROM TOPIC 'motion/{room}';
CREATE EVENT Door (room STRING, contact BOOL) FROM TOPIC 'door/{room}';
CREATE CONTEXT Entered PARTITION BY room
    INITIATED BY PATTERN [ every Door(contact = false) -> Motion ] DURATION 5 min;
CONTEXT Entered ON START PUBLISH 'home/{room}/entered' PAYLOAD {"key": context.key};
CONTEXT Entered ON END PUBLISH 'home/{room}/left';
"""


def test_an_initiating_pattern_per_key():
    check_rules(VISITS, [("2026-01-01T10:00:00", "door/hall", {"contact": False}),
                         ("2026-01-01T10:01:00", "motion/kitchen", {}),
                         ("2026-01-01T10:02:00", "door/kitchen", {"contact": False}),
                         ("2026-01-01T10:03:00", "motion/hall", {}),
                         ("2026-01-01T10:04:00", "motion/hall", {}),
                         ("2026-01-01T10:05:00", "motion/kitchen", {})],
                "2026-01-01T10:30:00", every=30.0)


def test_an_initiating_pattern_per_key_with_a_timer():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Motion (room STRING) FROM TOPIC 'motion/{room}';
    CREATE EVENT Temperature (room STRING, value FLOAT) FROM TOPIC 'temp/{room}';
    CREATE CONTEXT Quiet PARTITION BY room
        INITIATED BY PATTERN [ every (timer:interval(10 min) and not Motion) ] DURATION 1 min;
    CONTEXT Quiet ON START PUBLISH 'home/{room}/quiet';
    """
    check_rules(rules, [("2026-01-01T10:00:00", "temp/hall", {"value": 20}),
                        ("2026-01-01T10:05:00", "temp/kitchen", {"value": 20}),
                        ("2026-01-01T10:12:00", "motion/kitchen", {})],
                "2026-01-01T10:45:00")


SECOND_MOTION = """
SET TIMEZONE 'UTC';
CREATE EVENT Motion (room STRING, occupancy BOOL) FROM TOPIC 'motion/{room}';
CREATE EVENT Door (room STRING, contact BOOL) FROM TOPIC 'door/{room}';
CREATE CONTEXT Away%s INITIATED BY Door(contact = true) TERMINATED BY PATTERN [ Motion -> Motion ]%s;
CONTEXT Away ON START PUBLISH 'away' PAYLOAD 'start';
CONTEXT Away ON END PUBLISH 'away' PAYLOAD 'end';
"""


@pytest.mark.parametrize("keyed", ["", " PARTITION BY room"])
@pytest.mark.parametrize("duration", ["", " DURATION 10 min", " DURATION 90 sec POLICY ADD"])
def test_a_terminating_pattern(keyed, duration):
    check_rules(SECOND_MOTION % (keyed, duration),
                [("2026-01-01T10:00:00", "motion/hall", {}),
                 ("2026-01-01T10:01:00", "door/hall", {"contact": True}),
                 ("2026-01-01T10:01:30", "door/kitchen", {"contact": True}),
                 ("2026-01-01T10:02:00", "motion/hall", {}),
                 ("2026-01-01T10:02:10", "door/hall", {"contact": True}),
                 ("2026-01-01T10:03:00", "motion/kitchen", {}),
                 ("2026-01-01T10:04:00", "motion/hall", {}),
                 ("2026-01-01T10:05:00", "motion/kitchen", {})],
                "2026-01-01T10:30:00", every=20.0)


VISIT = """
SET TIMEZONE 'UTC';
CREATE EVENT Presence (person STRING, room STRING) FROM TOPIC 'presence/{person}';
CREATE EVENT Door (door STRING, contact BOOL, room STRING) FROM TOPIC 'door/{door}';
CREATE CONTEXT Visit%s INITIATED BY PATTERN [ every a=Presence -> b=Door(contact = false) ]
    DURATION 10 min POLICY ADD;
CONTEXT Visit ON START PUBLISH 'visit/start' PAYLOAD {"who": a.person, "door": b.door};
CONTEXT Visit ON END PUBLISH 'visit/end' PAYLOAD {"who": a.person, "door": b.door};
"""
VISIT_TRACE = [("2026-01-01T22:00:00", "presence/alice", {"room": "hall"}),
               ("2026-01-01T22:01:00", "door/front", {"contact": False, "room": "kitchen"}),
               ("2026-01-01T22:02:00", "presence/bob", {"room": "kitchen"}),
               ("2026-01-01T22:03:00", "door/back", {"contact": False, "room": "hall"})]


@pytest.mark.parametrize("keyed", ["", " PARTITION BY room"])
def test_on_start_and_on_end_see_the_tags_after_a_restart(keyed):
    outputs = check_rules(VISIT % keyed, VISIT_TRACE, "2026-01-01T23:00:00", every=20.0)
    assert any(o.get("payload", {}).get("who") == "alice" for o in outputs
               if o["kind"] == "publish" and o["topic"] == "visit/end")


def test_a_composition_sees_its_parts_tags_after_a_restart():
    rules = (VISIT % "") + """
    CREATE CONTEXT Night START 22:00 END 06:00;
    CREATE CONTEXT NightVisit AS Night AND Visit;
    CONTEXT NightVisit ON START PUBLISH 'night_visit' PAYLOAD {"who": a.person};
    CONTEXT NightVisit ON END PUBLISH 'night_visit_end' PAYLOAD {"who": a.person};
    """
    check_rules(rules, VISIT_TRACE, "2026-01-02T07:00:00", every=20.0)


# ---------------------------------------------------------------- recurring intervals

NIGHT = """
SET TIMEZONE '%s';
CREATE EVENT Ping (n INT) FROM TOPIC 'ping';
CREATE CONTEXT Night START %s END %s%s;
CONTEXT Night ON START PUBLISH 'night' PAYLOAD 'start';
CONTEXT Night ON END PUBLISH 'night' PAYLOAD 'end';
"""


@pytest.mark.parametrize("zone,start,end,days,first,until", [
    ("Asia/Taipei", "22:00", "07:00", "", "2026-11-20T23:10:00", "2026-11-23T08:00:00"),
    ("UTC", "22:00", "02:00", " ON FRI-SAT", "2026-11-19T12:00:00", "2026-11-24T00:00:00"),
    # the spring gap: an occurrence of no length, at the first instant after it
    ("Europe/Berlin", "02:30", "02:31", "", "2026-03-27T12:00:00", "2026-03-31T12:00:00"),
    ("America/New_York", "22:00", "02:30", "", "2026-03-07T12:00:00", "2026-03-09T12:00:00"),
    ("America/New_York", "01:30", "05:00", "", "2026-10-31T12:00:00", "2026-11-02T12:00:00"),
], ids=["starts-open", "on-days", "berlin-gap", "newyork-spring", "newyork-fall"])
def test_recurring_intervals(zone, start, end, days, first, until):
    check_rules(NIGHT % (zone, start, end, days), [(first, "ping", {"n": 1})], until,
                every=17 * 60.0)


def sun_catalog(spec: str, zone_name: str, location: tuple[float, float]) -> Catalog:
    diagnostics = Diagnostics()
    rule_file = parse_text(f"CREATE CONTEXT N {spec};", "test.epl", diagnostics)
    assert not list(diagnostics)
    found = {s.name: s for s in rule_file.statements if isinstance(s, ast.CreateContext)}
    return Catalog(timezone=zone_name, location=location, contexts=found)


@pytest.mark.parametrize("spec,zone,location,first,days", [
    ("START SUNSET END SUNRISE", "Europe/Berlin", (52.52, 13.405), "2026-03-27T12:00", 4),
    ("START SUNRISE + 30 min END SUNSET - 1 hour ON SAT-SUN", "America/New_York",
     (40.7128, -74.006), "2026-10-30T12:00", 6),
    # Tromsø: no sunset for weeks in June (no occurrence), then nights again
    ("START SUNSET END SUNRISE", "Europe/Oslo", (69.6492, 18.9553), "2026-07-20T12:00", 12),
])
def test_sun_intervals(spec, zone, location, first, days):
    tz = ZoneInfo(zone)
    start = datetime.fromisoformat(first).replace(tzinfo=tz).timestamp()
    steps: list[Step] = [start + hours * 3600.0 for hours in range(1, 24 * days, 3)]
    assert_restarts_change_nothing(sun_catalog(spec, zone, location), tz, steps, first=start)


def test_occurrences_go_on_from_their_saved_place():
    spec = sun_catalog("START SUNSET END SUNRISE", "Europe/Berlin", (52.52, 13.405))
    recurrence = Recurrence(spec.contexts["N"].spec, ZoneInfo("Europe/Berlin"), (52.52, 13.405))
    ts = datetime(2026, 3, 27, 20, tzinfo=UTC).timestamp()
    whole = list(zip(range(20), recurrence.occurrences_from(ts), strict=False))
    walk = recurrence.occurrences_from(ts)
    for i in range(20):
        copy = Occurrences(recurrence, walk.ts, walk.day, walk.last_end)
        assert [o for _, o in zip(range(20 - i), copy, strict=False)] == \
            [o for _, o in whole[i:]]
        next(walk)


def test_a_recurring_walk_that_is_over_saves_no_next_occurrence():
    # a START offset that puts every start after its end: no occurrence ever
    catalog = sun_catalog("START SUNRISE + 23 hours END SUNRISE", "UTC", (52.52, 13.405))
    outputs: list[dict] = []
    engine = Engine(catalog, outputs.append, UTC)
    engine.start(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    data = json.loads(json.dumps(engine.snapshot()))
    runtime = engine.contexts["N"]
    assert isinstance(runtime, RecurringRuntime)
    fresh = Engine(catalog, outputs.append, UTC)
    fresh.restore(data)
    assert context_state(fresh) == context_state(engine)
    fresh.advance(engine.now + 30 * 86400)
    assert outputs == []


# ---------------------------------------------------------------- partitions and compositions


def test_partitions_release_and_reopen_silently_across_restarts(monkeypatch):
    monkeypatch.setattr(PartitionRuntime, "RELEASE_FLOOR", 2)
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Motion (room STRING) FROM TOPIC 'motion/{room}';
    CREATE CONTEXT PerRoom PARTITION BY room;
    CONTEXT PerRoom ON START PUBLISH 'home/{room}/hello';
    """
    rooms = ["hall", "kitchen", "bath", "hall", "attic", "cellar", "kitchen", "den", "bath"]
    lines = [(f"2026-01-01T10:{i:02d}:00", f"motion/{room}", {}) for i, room in enumerate(rooms)]
    outputs = check_rules(rules, lines, "2026-01-01T10:30:00")
    starts = [o["key"] for o in outputs if o["kind"] == "context-start"]
    assert starts == ["hall", "kitchen", "bath", "attic", "cellar", "den"]


def test_a_composition_of_a_recurring_interval_and_a_partition():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Motion (room STRING) FROM TOPIC 'motion/{room}';
    CREATE CONTEXT Night START 22:00 END 06:00;
    CREATE CONTEXT PerRoom PARTITION BY room;
    CREATE CONTEXT NightRoom AS Night AND PerRoom;
    CONTEXT NightRoom ON START PUBLISH 'home/{room}/night' PAYLOAD 'watching';
    CONTEXT NightRoom ON END PUBLISH 'home/{room}/day' PAYLOAD {"key": context.key};
    """
    check_rules(rules, [("2026-01-01T21:00:00", "motion/hall", "{}"),
                        ("2026-01-01T22:10:00", "motion/hall", "{}"),
                        ("2026-01-01T22:20:00", "motion/kitchen", "{}"),
                        ("2026-01-02T05:59:00", "motion/kitchen", "{}"),
                        ("2026-01-02T22:10:00", "motion/kitchen", "{}")],
                "2026-01-03T07:00:00", every=25 * 60.0)


def test_a_composition_with_a_keyed_interval():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Door (door STRING, contact BOOL) FROM TOPIC 'zigbee2mqtt/{door}';
    CREATE CONTEXT Night START 22:00 END 06:00;
    CREATE CONTEXT DoorOpen PARTITION BY door INITIATED BY Door(contact = false)
        TERMINATED BY Door(contact = true);
    CREATE CONTEXT OpenAtNight AS Night AND DoorOpen;
    CONTEXT OpenAtNight ON START PUBLISH 'home/{door}/night_alarm' PAYLOAD {"key": context.key};
    CONTEXT OpenAtNight ON END PUBLISH 'home/{door}/night_end' PAYLOAD {"key": context.key};
    """
    check_rules(rules, [("2026-01-01T21:00:00", "zigbee2mqtt/window", {"contact": False}),
                        ("2026-01-01T22:30:00", "zigbee2mqtt/balcony", {"contact": False}),
                        ("2026-01-01T22:40:00", "zigbee2mqtt/window", {"contact": False}),
                        ("2026-01-01T22:50:00", "zigbee2mqtt/window", {"contact": True}),
                        ("2026-01-01T23:50:00", "zigbee2mqtt/window", {"contact": False})],
                "2026-01-02T07:00:00", every=20 * 60.0)


def test_a_keyed_interval_at_its_limit_keeps_its_count_of_refusals():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT R (k STRING, v INT) FROM TOPIC 'r/{k}';
    CREATE CONTEXT Open PARTITION BY k INITIATED BY R(v = 1) TERMINATED BY R(v = 0);
    CONTEXT Open ON START PUBLISH 'open/{k}';
    """
    lines = [(f"2026-01-01T10:00:{i:02d}", f"r/k{k}", {"v": v})
             for i, (k, v) in enumerate([(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (1, 0),
                                         (4, 1), (5, 1)])]
    outputs = check_rules(rules, lines, "2026-01-01T10:01:00", every=0.5, max_instances=3)
    assert [o["key"] for o in outputs if o["kind"] == "context-start"] == \
        ["k0", "k1", "k2", "k4"]


# ---------------------------------------------------------------- spatial contexts

SPATIAL = """
SET TIMEZONE 'UTC';
CREATE LOCATION bedroom AREA ((0,0), (4,0), (4,3), (0,3));
CREATE EVENT Robot (who STRING, x FLOAT, y FLOAT) FROM TOPIC 'robot/{who}'
    LOCATED AT (x, y) ENTITY who;
CREATE EVENT Leak (x FLOAT, y FLOAT, n INT) FROM TOPIC 'leak' LOCATED AT (x, y);
"""


@pytest.mark.parametrize("policy", POLICIES)
def test_event_distance_under_each_policy(policy):
    rules = SPATIAL + f"""
    CREATE CONTEXT NearLeak WITHIN 5 m OF Leak DURATION 30 min POLICY {policy};
    CONTEXT NearLeak ON START PUBLISH 'leak/start' PAYLOAD {{"n": n}};
    CONTEXT NearLeak ON END PUBLISH 'leak/end' PAYLOAD {{"n": n}};
    """
    check_rules(rules, [("2026-01-01T10:00:00", "leak", {"x": 0, "y": 0, "n": 1}),
                        ("2026-01-01T10:05:00", "leak", {"x": 100, "y": 0, "n": 2}),
                        ("2026-01-01T10:10:00", "leak", {"x": 3, "y": 0, "n": 3})],
                "2026-01-01T12:00:00", every=7 * 60.0)


def test_fixed_location_entity_distance_and_entities():
    rules = SPATIAL + """
    CREATE CONTEXT InBedroom LOCATION bedroom;
    CREATE CONTEXT NearAlice WITHIN 3 m OF ENTITY 'alice';
    CONTEXT InBedroom ON START PUBLISH 'bedroom';
    CONTEXT NearAlice ON START PUBLISH 'alice';
    """
    loaded = load(rules)
    assert loaded.ok
    engine = Engine(loaded.catalog, lambda o: None, UTC)
    engine.process(Event("Robot", 1_700_000_000.0, {"who": "alice", "x": 1.5, "y": -2.0}))
    engine.process(Event("Robot", 1_700_000_001.0, {"who": 7, "x": 0.1, "y": 0.2}))
    fresh = restart(engine)
    assert {name: (p.x, p.y, p.geo) for name, p in fresh.entities.positions.items()} == \
        {"alice": (1.5, -2.0, False), "7": (0.1, 0.2, False)}
    assert [len(fresh.contexts[n].open) for n in ("InBedroom", "NearAlice")] == [1, 1]


# ---------------------------------------------------------------- serials and damaged data


def test_new_instances_come_after_the_restored_ones():
    loaded = load(DOORS % "ADD")
    engine = Engine(loaded.catalog, lambda o: None, UTC)
    engine.process(Event("Door", 1_700_000_000.0, {"door": "a", "contact": False}))
    data = json.loads(json.dumps(engine.snapshot()))
    data["contexts"]["DoorOpen"]["open"][0]["serial"] = 10**9  # as if from a long run
    fresh = Engine(loaded.catalog, lambda o: None, UTC)
    fresh.restore(data)
    fresh.process(Event("Door", 1_700_000_001.0, {"door": "b", "contact": False}))
    assert [i.serial for i in fresh.contexts["DoorOpen"].open][1] > 10**9


def snapshot_of(rules: str, events: list[Event]) -> tuple[Catalog, Any]:
    loaded = load(rules)
    assert loaded.ok
    engine = Engine(loaded.catalog, lambda o: None, UTC)
    for event in events:
        engine.process(event)
    return loaded.catalog, json.loads(json.dumps(engine.snapshot()))


COMPOSED = """
SET TIMEZONE 'UTC';
CREATE EVENT Door (door STRING, contact BOOL) FROM TOPIC 'zigbee2mqtt/{door}';
CREATE CONTEXT Night START 22:00 END 06:00;
CREATE CONTEXT DoorOpen PARTITION BY door INITIATED BY PATTERN [ Door(contact = false) ]
    TERMINATED BY PATTERN [ Door(contact = true) ] DURATION 1 hour;
CREATE CONTEXT PerDoor PARTITION BY door;
CREATE CONTEXT OpenAtNight AS Night AND DoorOpen;
CONTEXT OpenAtNight ON START PUBLISH 'alarm';
"""
NIGHT_TS = datetime(2026, 1, 1, 23, tzinfo=UTC).timestamp()


def damage(data: Any, path: str, value: Any) -> None:
    """Change the snapshot at `path` (dots; numbers index lists); DELETE removes it."""
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key = int(last) if isinstance(node, list) else last
    if value == "DELETE":
        del node[key]
    else:
        node[key] = value


@pytest.mark.parametrize("path,value", [
    ("contexts.PerDoor.open", "DELETE"),
    ("contexts.PerDoor.refused", -1),
    ("contexts.PerDoor.open.0.serial", "one"),
    ("contexts.PerDoor.open.0.name", "Other"),
    ("contexts.PerDoor.open.0.key", "DELETE"),
    ("contexts.PerDoor.open.0.at", "noon"),
    ("contexts.PerDoor.open.0.n", 0),                    # the global instance's number
    ("contexts.PerDoor.open.1.key", "front"),            # a key given twice
    ("contexts.PerDoor.released", "all"),
    ("contexts.PerDoor.sweep", None),
    ("contexts.DoorOpen.keys.0.1", [99]),                # no such instance
    ("contexts.DoorOpen.keys.0.2", None),                # no initiating run
    ("contexts.DoorOpen.keys.1", ["front", [], {}]),     # a key given twice
    ("contexts.DoorOpen.keys.1.0", {"$d": []}),          # a key that cannot be one
    ("contexts.DoorOpen.terminating.0.0", 0),
    ("contexts.DoorOpen.open.0.deadline", [1, 2]),
    ("contexts.DoorOpen.open.0.center", [1, 2]),
    ("contexts.Night.next.day", "someday"),
    ("contexts.Night.next.timer", None),
    ("contexts.OpenAtNight.open.0.parts", [1, 1]),
    ("contexts.OpenAtNight.open.0.parts", [77]),
    ("entities", []),
])
def test_damaged_context_data_is_refused(path, value):
    catalog, data = snapshot_of(COMPOSED, [
        Event("Door", NIGHT_TS, {"door": "front", "contact": False}),
        Event("Door", NIGHT_TS + 1, {"door": "back", "contact": False})])
    assert [len(data["contexts"][n]["open"]) for n in ("DoorOpen", "PerDoor", "OpenAtNight")] \
        == [2, 2, 2]
    Engine(catalog, lambda o: None, UTC).restore(json.loads(json.dumps(data)))  # undamaged
    damage(data, path, value)
    with pytest.raises(StateFormatError):
        Engine(catalog, lambda o: None, UTC).restore(data)


def test_the_restored_runtimes_hold_what_the_originals_held():
    loaded = load(COMPOSED)
    engine = Engine(loaded.catalog, lambda o: None, UTC)
    for ts, door, contact in [(NIGHT_TS, "front", False), (NIGHT_TS + 1, "back", False),
                              (NIGHT_TS + 2, "front", True)]:
        engine.process(Event("Door", ts, {"door": door, "contact": contact}))
    fresh = restart(engine)
    door_open = fresh.contexts["DoorOpen"]
    assert isinstance(door_open, EventIntervalRuntime)
    assert list(door_open.by_key) == ["front", "back"]  # front's pattern has matched
    assert door_open.by_key["front"].instances == []
    (instance,) = door_open.open
    assert door_open.owner[instance] is door_open.by_key["back"]
    assert set(door_open.terminating) == {instance}
    assert instance.deadline is not None and instance.closes_at == NIGHT_TS + 1 + 3600
    assert instance.deadline.deadline == NIGHT_TS + 1 + 3600
    composite = fresh.contexts["OpenAtNight"]
    assert isinstance(composite, CompositeRuntime)
    ((parts, combined),) = composite.combinations.items()
    assert parts == (fresh.contexts["Night"].open[0], instance)
    assert combined.key == "back" and combined.closes_at == NIGHT_TS + 1 + 3600
    night = fresh.contexts["Night"]
    assert isinstance(night, RecurringRuntime) and night.next_open is not None
    assert night.next_open.deadline == datetime(2026, 1, 2, 22, tzinfo=UTC).timestamp()
    assert night.open[0].closes_at == \
        (datetime(2026, 1, 1, 22, tzinfo=UTC) + timedelta(hours=8)).timestamp()
    assert fresh.timers.pending() == engine.timers.pending()


def test_serial_floor_only_raises():
    contexts.serial_floor(5)
    before = contexts.ContextInstance("X", None, 0.0).serial
    contexts.serial_floor(1)
    assert contexts.ContextInstance("X", None, 0.0).serial > before
