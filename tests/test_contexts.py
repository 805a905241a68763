"""Contexts (section 4), each kind and each policy, with exact output lines.

Lines are compacted by helpers.run_rules as `MM-DD HH:MM:SS kind ...` in the rules' zone.
"""

import pytest
from helpers import run_rules

# ---------------------------------------------------------------- the AC example, four policies

AC_RULES = """
SET TIMEZONE 'Europe/Berlin';
CREATE EVENT Temperature (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temperature';
CREATE CONTEXT Hot INITIATED BY Temperature(value > 28) DURATION 1 hour POLICY %s;
CONTEXT Hot ON START PUBLISH 'home/{room}/ac/set' PAYLOAD {"state": "ON"};
CONTEXT Hot ON END   PUBLISH 'home/{room}/ac/set' PAYLOAD {"state": "OFF"};
"""
# "two readings above 28 come ten seconds apart"
AC_TRACE = [("2026-07-01T14:00:00", "home/kitchen/temperature", {"value": 29}),
            ("2026-07-01T14:00:10", "home/kitchen/temperature", {"value": 30})]
ON = 'publish home/kitchen/ac/set {"state": "ON"}'
OFF = 'publish home/kitchen/ac/set {"state": "OFF"}'

AC_CASES = {
    "ADD": ["07-01 14:00:00 context-start Hot key=null", f"07-01 14:00:00 {ON}",
            "07-01 14:00:10 context-start Hot key=null", f"07-01 14:00:10 {ON}",
            "07-01 15:00:00 context-end Hot key=null", f"07-01 15:00:00 {OFF}",
            "07-01 15:00:10 context-end Hot key=null", f"07-01 15:00:10 {OFF}"],
    "IGNORE": ["07-01 14:00:00 context-start Hot key=null", f"07-01 14:00:00 {ON}",
               "07-01 15:00:00 context-end Hot key=null", f"07-01 15:00:00 {OFF}"],
    "REFRESH": ["07-01 14:00:00 context-start Hot key=null", f"07-01 14:00:00 {ON}",
                "07-01 14:00:10 context-end Hot key=null", f"07-01 14:00:10 {OFF}",
                "07-01 14:00:10 context-start Hot key=null", f"07-01 14:00:10 {ON}",
                "07-01 15:00:10 context-end Hot key=null", f"07-01 15:00:10 {OFF}"],
    "EXTEND": ["07-01 14:00:00 context-start Hot key=null", f"07-01 14:00:00 {ON}",
               "07-01 15:00:10 context-end Hot key=null", f"07-01 15:00:10 {OFF}"],
}


@pytest.mark.parametrize("policy", list(AC_CASES))
def test_air_conditioner_policies(policy):
    lines = run_rules(AC_RULES % policy, AC_TRACE, until="2026-07-01T17:00:00")
    assert lines == AC_CASES[policy]


def test_default_policy_is_ignore():
    rules = (AC_RULES % "IGNORE").replace(" POLICY IGNORE", "")
    assert run_rules(rules, AC_TRACE, until="2026-07-01T17:00:00") == AC_CASES["IGNORE"]


PARTIAL = """
SET TIMEZONE 'UTC';
CREATE EVENT Temperature (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temperature';
CREATE EVENT Window (open BOOL) FROM TOPIC 'home/window';
CREATE CONTEXT Hot INITIATED BY Temperature(value > 28) DURATION 1 hour POLICY %s;
@name('window_then_cool')
CONTEXT Hot
SELECT w.open AS open FROM PATTERN [ every w=Window(open = true) -> Temperature(value < 25) ];
"""
PARTIAL_TRACE = [("2026-07-01T14:00:00", "home/kitchen/temperature", {"value": 29}),
                 ("2026-07-01T14:05:00", "home/window", {"open": True}),
                 ("2026-07-01T14:10:00", "home/kitchen/temperature", {"value": 30}),
                 ("2026-07-01T14:20:00", "home/kitchen/temperature", {"value": 24})]


def test_refresh_drops_partial_matches():
    lines = run_rules(PARTIAL % "REFRESH", PARTIAL_TRACE, contexts=False)
    assert lines == []  # the window seen before the refresh is forgotten


def test_extend_keeps_partial_matches():
    lines = run_rules(PARTIAL % "EXTEND", PARTIAL_TRACE, contexts=False)
    assert lines == ['07-01 14:20:00 event window_then_cool key=null {"open": true}']


def test_terminated_by_closes_and_terminator_is_outside():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Door (status STRING) FROM TOPIC 'door' PAYLOAD AS status;
    CREATE EVENT Motion (room STRING) FROM TOPIC 'motion/{room}';
    CREATE CONTEXT Away INITIATED BY Door(status = 'LOCKED') TERMINATED BY Door(status = 'OPEN');
    @name('intruder') CONTEXT Away SELECT room FROM Motion;
    @name('door_in_away') CONTEXT Away SELECT status FROM Door;
    """
    trace = [("2026-01-01T09:00:00", "door", "LOCKED"), ("2026-01-01T10:00:00", "motion/hall", "{}"),
             ("2026-01-01T11:00:00", "door", "OPEN"), ("2026-01-01T11:01:00", "motion/hall", "{}")]
    assert run_rules(rules, trace) == [
        "01-01 09:00:00 context-start Away key=null",
        '01-01 09:00:00 event door_in_away key=null {"status": "LOCKED"}',
        '01-01 10:00:00 event intruder key=null {"room": "hall"}',
        "01-01 11:00:00 context-end Away key=null"]


def test_initiated_by_pattern():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Door (status STRING) FROM TOPIC 'door' PAYLOAD AS status;
    CREATE CONTEXT Visit INITIATED BY PATTERN [ every Door(status = 'OPEN') -> Door(status = 'CLOSED') ]
        DURATION 10 min;
    CONTEXT Visit ON START PUBLISH 'visit' PAYLOAD 'started';
    """
    trace = [("2026-01-01T09:00:00", "door", "OPEN"), ("2026-01-01T09:00:05", "door", "CLOSED")]
    assert run_rules(rules, trace, until="2026-01-01T10:00:00", contexts=False) == [
        '01-01 09:00:05 publish visit "started"']


# ---------------------------------------------------------------- recurring intervals

NIGHT = """
SET TIMEZONE '%s';
CREATE EVENT Ping (n INT) FROM TOPIC 'ping';
CREATE CONTEXT Night START %s END %s%s;
CONTEXT Night ON START PUBLISH 'night' PAYLOAD 'start';
CONTEXT Night ON END PUBLISH 'night' PAYLOAD 'end';
@name('seen') CONTEXT Night SELECT n FROM Ping;
"""


def night(zone, start, end, days=""):
    return NIGHT % (zone, start, end, f" ON {days}" if days else "")


def test_night_crosses_midnight_and_starts_open():
    """The clock starts at 23:10 inside the interval: open from the first moment."""
    lines = run_rules(night("Asia/Taipei", "22:00", "07:00"),
                      [("2026-11-20T23:10:00", "ping", {"n": 1}),
                       ("2026-11-21T06:59:59", "ping", {"n": 2}),
                       ("2026-11-21T07:00:00", "ping", {"n": 3}),
                       ("2026-11-21T22:00:00", "ping", {"n": 4})],
                      until="2026-11-22T08:00:00", contexts=False)
    assert lines == ['11-20 23:10:00 publish night "start"',
                     '11-20 23:10:00 event seen key=null {"n": 1}',
                     '11-21 06:59:59 event seen key=null {"n": 2}',
                     '11-21 07:00:00 publish night "end"',
                     '11-21 22:00:00 publish night "start"',
                     '11-21 22:00:00 event seen key=null {"n": 4}',
                     '11-22 07:00:00 publish night "end"']


def test_on_days_name_the_start_day():
    # 2026-11-20 is a Friday: only the Friday and Saturday nights open.
    lines = run_rules(night("UTC", "22:00", "02:00", "FRI-SAT"),
                      [("2026-11-19T12:00:00", "ping", {"n": 0})],
                      until="2026-11-24T00:00:00")
    assert [line for line in lines if "context" in line] == [
        "11-20 22:00:00 context-start Night key=null", "11-21 02:00:00 context-end Night key=null",
        "11-21 22:00:00 context-start Night key=null", "11-22 02:00:00 context-end Night key=null"]


DST = [
    # zone, start, end, trace start, until, expected context lines (local time)
    ("Europe/Berlin", "02:30", "03:30", "2026-03-27T12:00:00", "2026-03-30T12:00:00",
     # 29 March: 02:00-03:00 is skipped: the start happens at the first instant after the gap
     ["03-28 02:30:00", "03-28 03:30:00", "03-29 03:00:00", "03-29 03:30:00",
      "03-30 02:30:00", "03-30 03:30:00"]),
    ("Europe/Berlin", "02:30", "06:00", "2026-10-24T12:00:00", "2026-10-26T12:00:00",
     # 25 October: 02:00-03:00 happens twice: the start is the first 02:30 (+02:00)
     ["10-25 02:30:00+0200", "10-25 06:00:00+0100", "10-26 02:30:00+0100",
      "10-26 06:00:00+0100"]),
    ("America/New_York", "22:00", "02:30", "2026-03-07T12:00:00", "2026-03-09T12:00:00",
     # 8 March: 02:00-03:00 skipped: the night of the 7th ends at 03:00 (first instant after)
     ["03-07 22:00:00", "03-08 03:00:00", "03-08 22:00:00", "03-09 02:30:00"]),
    ("America/New_York", "01:30", "05:00", "2026-10-31T12:00:00", "2026-11-02T12:00:00",
     # 1 November: 01:00-02:00 twice; one occurrence per day, never two
     ["11-01 01:30:00-0400", "11-01 05:00:00-0500", "11-02 01:30:00-0500",
      "11-02 05:00:00-0500"]),
]


@pytest.mark.parametrize("zone,start,end,first,until,expected", DST,
                         ids=["berlin-spring", "berlin-autumn", "newyork-spring", "newyork-fall"])
def test_daylight_saving_days(zone, start, end, first, until, expected):
    from datetime import datetime

    from helpers import load

    from cep.language.timezones import get_zone
    from cep.runtime.engine import Engine

    loaded = load(night(zone, start, end))
    outputs = []
    tz = get_zone(zone)
    engine = Engine(loaded.catalog, outputs.append, tz, show_contexts=True)
    engine.start(datetime.fromisoformat(first).replace(tzinfo=tz).timestamp())
    engine.advance(datetime.fromisoformat(until).replace(tzinfo=tz).timestamp())
    with_offset = any("+" in e[8:] or "-" in e[8:] for e in expected)
    fmt = "%m-%d %H:%M:%S%z" if with_offset else "%m-%d %H:%M:%S"
    got = [datetime.fromtimestamp(o["ts"], tz).strftime(fmt) for o in outputs
           if o["kind"].startswith("context")]
    kinds = [o["kind"] for o in outputs if o["kind"].startswith("context")]
    assert got == expected
    assert kinds == ["context-start", "context-end"] * (len(expected) // 2)


# ---------------------------------------------------------------- partitions

IDLE_ROOM = """
SET TIMEZONE 'UTC';
CREATE EVENT Motion (room STRING, occupancy BOOL) FROM TOPIC 'zigbee2mqtt/{room}_motion';
CREATE CONTEXT PerRoom PARTITION BY room;
@name('idle_room')
CONTEXT PerRoom
SELECT context.key AS room
FROM PATTERN [ every Motion(occupancy = false) -> (timer:interval(30 min) and not Motion(occupancy = true)) ]
PUBLISH 'home/{room}/light/set' PAYLOAD {"state": "OFF"};
"""


def test_partitioned_idle_room():
    trace = [("2026-01-01T10:00:00", "zigbee2mqtt/kitchen_motion", {"occupancy": False}),
             ("2026-01-01T10:05:00", "zigbee2mqtt/hall_motion", {"occupancy": False}),
             ("2026-01-01T10:20:00", "zigbee2mqtt/hall_motion", {"occupancy": True}),
             ("2026-01-01T10:25:00", "zigbee2mqtt/kitchen_motion", {})]
    lines = run_rules(IDLE_ROOM, trace, until="2026-01-01T12:00:00")
    assert lines == [
        '01-01 10:00:00 context-start PerRoom key="kitchen"',
        '01-01 10:05:00 context-start PerRoom key="hall"',
        '01-01 10:30:00 event idle_room key="kitchen" {"room": "kitchen"}',
        '01-01 10:30:00 publish home/kitchen/light/set {"state": "OFF"}']


def test_partition_by_two_attributes_and_missing_key():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Reading (floor STRING, room STRING, value INT) FROM TOPIC 'r/{floor}';
    CREATE CONTEXT PerPlace PARTITION BY floor, room;
    @name('count') CONTEXT PerPlace SELECT context.key AS k, value FROM Reading;
    """
    trace = [("2026-01-01T10:00:00", "r/1", {"room": "a", "value": 1}),
             ("2026-01-01T10:00:01", "r/1", {"value": 2})]
    assert run_rules(rules, trace, contexts=False) == [
        '01-01 10:00:00 event count key=["1", "a"] {"k": ["1", "a"], "value": 1}']


# ---------------------------------------------------------------- spatial

SPATIAL = """
SET TIMEZONE 'UTC';
CREATE LOCATION bedroom AREA ((0,0), (4,0), (4,3), (0,3));
CREATE LOCATION bed CIRCLE (1, 1) RADIUS 0.5 m;
CREATE LOCATION park CIRCLE GEO (25.0330, 121.5654) RADIUS 150 m;
CREATE EVENT Sound (x FLOAT, y FLOAT, db INT) FROM TOPIC 'sound' LOCATED AT (x, y);
CREATE EVENT Tag (place STRING) FROM TOPIC 'tag' LOCATED IN place;
CREATE EVENT Phone (who STRING, lat FLOAT, lon FLOAT) FROM TOPIC 'phone/{who}'
    LOCATED AT GEO (lat, lon) ENTITY who;
CREATE EVENT Robot (who STRING, x FLOAT, y FLOAT) FROM TOPIC 'robot/{who}'
    LOCATED AT (x, y) ENTITY who;
CREATE EVENT Leak (x FLOAT, y FLOAT) FROM TOPIC 'leak' LOCATED AT (x, y);
"""


def test_fixed_location_plane_boundary_and_located_in():
    rules = SPATIAL + """
    CREATE CONTEXT InBedroom LOCATION bedroom;
    @name('loud') CONTEXT InBedroom SELECT db FROM Sound;
    @name('tagged') CONTEXT InBedroom SELECT place FROM Tag;
    """
    trace = [("2026-01-01T10:00:00", "sound", {"x": 4, "y": 3, "db": 1}),    # corner: inside
             ("2026-01-01T10:00:01", "sound", {"x": 4.01, "y": 1, "db": 2}),  # outside
             ("2026-01-01T10:00:02", "tag", {"place": "bed"}),               # bed is in bedroom
             ("2026-01-01T10:00:03", "tag", {"place": "park"})]
    assert run_rules(rules, trace, contexts=False) == [
        '01-01 10:00:00 event loud key=null {"db": 1}',
        '01-01 10:00:02 event tagged key=null {"place": "bed"}']


def test_fixed_location_geo_circle():
    rules = SPATIAL + """
    CREATE CONTEXT InPark LOCATION park;
    @name('in_park') CONTEXT InPark SELECT who FROM Phone;
    """
    trace = [("2026-01-01T10:00:00", "phone/alice", {"lat": 25.0340, "lon": 121.5654}),  # ~111 m
             ("2026-01-01T10:00:01", "phone/bob", {"lat": 25.0350, "lon": 121.5654})]    # ~222 m
    assert run_rules(rules, trace, contexts=False) == [
        '01-01 10:00:00 event in_park key=null {"who": "alice"}']


def test_entity_distance_follows_last_position():
    rules = SPATIAL + """
    CREATE CONTEXT NearAlice WITHIN 3 m OF ENTITY 'alice';
    @name('near') CONTEXT NearAlice SELECT db FROM Sound;
    """
    trace = [("2026-01-01T10:00:00", "sound", {"x": 1, "y": 1, "db": 1}),   # alice unknown
             ("2026-01-01T10:00:01", "robot/alice", {"x": 0, "y": 0}),
             ("2026-01-01T10:00:02", "sound", {"x": 3, "y": 0, "db": 2}),   # exactly 3 m
             ("2026-01-01T10:00:03", "robot/alice", {"x": 10, "y": 10}),
             ("2026-01-01T10:00:04", "sound", {"x": 3, "y": 0, "db": 3})]
    assert run_rules(rules, trace, contexts=False) == ['01-01 10:00:02 event near key=null {"db": 2}']


@pytest.mark.parametrize("policy,expected", [
    ("IGNORE", ["10:00:00 context-start", "10:30:00 context-end"]),
    ("ADD", ["10:00:00 context-start", "10:10:00 context-start", "10:30:00 context-end",
             "10:40:00 context-end"]),
    ("REFRESH", ["10:00:00 context-start", "10:10:00 context-end", "10:10:00 context-start",
                 "10:40:00 context-end"]),
    ("EXTEND", ["10:00:00 context-start", "10:40:00 context-end"]),
])
def test_event_distance_policies(policy, expected):
    rules = SPATIAL + f"""
    CREATE CONTEXT NearLeak WITHIN 5 m OF Leak DURATION 30 min POLICY {policy};
    @name('near_leak') CONTEXT NearLeak SELECT db FROM Sound;
    """
    trace = [("2026-01-01T10:00:00", "leak", {"x": 0, "y": 0}),
             ("2026-01-01T10:10:00", "leak", {"x": 3, "y": 0})]
    lines = run_rules(rules, trace, until="2026-01-01T12:00:00")
    assert [" ".join(line.split()[1:3]) for line in lines] == expected


def test_event_distance_membership_and_far_initiator():
    rules = SPATIAL + """
    CREATE CONTEXT NearLeak WITHIN 5 m OF Leak DURATION 30 min;
    @name('near_leak') CONTEXT NearLeak SELECT db FROM Sound;
    """
    trace = [("2026-01-01T10:00:00", "leak", {"x": 0, "y": 0}),
             ("2026-01-01T10:01:00", "leak", {"x": 100, "y": 0}),   # far: its own instance
             ("2026-01-01T10:02:00", "sound", {"x": 4, "y": 3, "db": 1}),    # 5 m: inside
             ("2026-01-01T10:03:00", "sound", {"x": 50, "y": 0, "db": 2}),   # in neither
             ("2026-01-01T10:30:30", "sound", {"x": 100, "y": 1, "db": 3})]  # second still open
    lines = run_rules(rules, trace)
    assert lines == ["01-01 10:00:00 context-start NearLeak key=null",
                     "01-01 10:01:00 context-start NearLeak key=null",
                     '01-01 10:02:00 event near_leak key=null {"db": 1}',
                     "01-01 10:30:00 context-end NearLeak key=null",
                     '01-01 10:30:30 event near_leak key=null {"db": 3}']


# ---------------------------------------------------------------- composition


def test_composite_night_by_room():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Motion (room STRING) FROM TOPIC 'motion/{room}';
    CREATE CONTEXT Night START 22:00 END 06:00;
    CREATE CONTEXT PerRoom PARTITION BY room;
    CREATE CONTEXT NightRoom AS Night AND PerRoom;
    CONTEXT NightRoom ON START PUBLISH 'home/{room}/night' PAYLOAD 'watching';
    @name('night_motion')
    CONTEXT NightRoom
    SELECT context.key AS room, count AS n
    FROM PATTERN [ every [2] m=Motion ]
    """.replace("count AS n", "m[1].room AS second") + ";"
    trace = [("2026-01-01T21:00:00", "motion/hall", "{}"),
             ("2026-01-01T22:10:00", "motion/hall", "{}"),
             ("2026-01-01T22:20:00", "motion/kitchen", "{}"),
             ("2026-01-01T22:30:00", "motion/hall", "{}"),
             ("2026-01-02T05:59:00", "motion/kitchen", "{}"),
             ("2026-01-02T06:10:00", "motion/kitchen", "{}")]
    assert run_rules(rules, trace, until="2026-01-02T07:00:00") == [
        '01-01 21:00:00 context-start PerRoom key="hall"',
        "01-01 22:00:00 context-start Night key=null",
        '01-01 22:10:00 context-start NightRoom key="hall"',
        '01-01 22:10:00 publish home/hall/night "watching"',
        '01-01 22:20:00 context-start PerRoom key="kitchen"',
        '01-01 22:20:00 context-start NightRoom key="kitchen"',
        '01-01 22:20:00 publish home/kitchen/night "watching"',
        '01-01 22:30:00 event night_motion key="hall" {"room": "hall", "second": "hall"}',
        '01-02 05:59:00 event night_motion key="kitchen" {"room": "kitchen", "second": "kitchen"}',
        '01-02 06:00:00 context-end NightRoom key="hall"',
        '01-02 06:00:00 context-end NightRoom key="kitchen"',
        "01-02 06:00:00 context-end Night key=null"]


def test_entity_and_event_distance_in_geo():
    rules = SPATIAL + """
    CREATE EVENT Bell (lat FLOAT, lon FLOAT) FROM TOPIC 'bell' LOCATED AT GEO (lat, lon);
    CREATE CONTEXT NearBob WITHIN 100 m OF ENTITY 'bob';
    CREATE CONTEXT NearBell WITHIN 50 m OF Bell DURATION 5 min;
    @name('near_bob') CONTEXT NearBob SELECT who FROM Phone(who = 'alice');
    @name('near_bell') CONTEXT NearBell SELECT who FROM Phone;
    """
    trace = [("2026-01-01T10:00:00", "phone/bob", {"lat": 25.0330, "lon": 121.5654}),
             ("2026-01-01T10:00:01", "bell", {"lat": 25.0330, "lon": 121.5654}),
             ("2026-01-01T10:00:02", "phone/alice", {"lat": 25.0334, "lon": 121.5654}),  # ~44 m
             ("2026-01-01T10:00:03", "phone/alice", {"lat": 25.0338, "lon": 121.5654}),  # ~89 m
             ("2026-01-01T10:00:04", "phone/alice", {"lat": 25.0340, "lon": 121.5654})]  # ~111 m
    assert run_rules(rules, trace, contexts=False) == [
        '01-01 10:00:02 event near_bob key=null {"who": "alice"}',
        '01-01 10:00:02 event near_bell key=null {"who": "alice"}',
        '01-01 10:00:03 event near_bob key=null {"who": "alice"}']


def test_partition_on_start_without_rules_reading_and_in_rule_order():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Temperature (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temperature';
    CREATE CONTEXT PerRoom PARTITION BY room;
    CONTEXT PerRoom ON START PUBLISH 'home/{room}/hello';
    @name('everywhere') SELECT room FROM Temperature;
    """
    trace = [("2026-01-01T10:00:00", "home/kitchen/temperature", {"value": 20})]
    assert run_rules(rules, trace) == [
        '01-01 10:00:00 context-start PerRoom key="kitchen"',
        '01-01 10:00:00 publish home/kitchen/hello ""',
        '01-01 10:00:00 event everywhere key=null {"room": "kitchen"}']


def test_composite_lifecycle_names_come_from_its_own_key():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Temperature (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temperature';
    CREATE CONTEXT PerRoom PARTITION BY room;
    CREATE CONTEXT Hot INITIATED BY Temperature(value > 28) DURATION 1 hour;
    CREATE CONTEXT HotRoom AS PerRoom AND Hot;
    CONTEXT HotRoom ON START PUBLISH 'home/{room}/fan' PAYLOAD {"key": context.key, "room": room};
    """
    trace = [("2026-01-01T10:00:00", "home/kitchen/temperature", {"value": 30}),
             ("2026-01-01T10:01:00", "home/hall/temperature", {"value": 20})]
    lines = run_rules(rules, trace, contexts=False)
    assert lines == ['01-01 10:00:00 publish home/kitchen/fan {"key": "kitchen", "room": "kitchen"}',
                     '01-01 10:01:00 publish home/hall/fan {"key": "hall", "room": "hall"}']
