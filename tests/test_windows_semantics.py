"""The state of the home, table-driven: windows and aggregates, named windows, prior,
output rate limiting, changed() and the new expressions, each case a rule set, the
events it gets and the exact results (seconds after 10:00 UTC, result attributes).

Events are (seconds, type, attributes[, source]); the source stands for the MQTT topic
that `changed()` tells devices apart by (None: the type is the source).
"""

from datetime import UTC, datetime

import pytest
from helpers import RESTARTS, load, restarted

from cep.runtime.engine import Engine
from cep.runtime.events import Event
from cep.runtime.rate import PRUNE_ABOVE

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC).timestamp()  # a Thursday

PRELUDE = """
CREATE EVENT Temp (room STRING, value FLOAT);
CREATE EVENT Reading (room STRING, value INT);
CREATE EVENT Presence (person STRING, state STRING);
CREATE EVENT Door (door STRING, contact BOOL);
CREATE EVENT Bell (room STRING);
CREATE EVENT Tick (n INT);
CREATE CONTEXT PerRoom PARTITION BY room;
"""


def run(rules: str, events: list[tuple], until: float | None = None,
        kinds: tuple[str, ...] = ("event",)) -> list[tuple]:
    loaded = load(PRELUDE + rules)
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    outputs: list[dict] = []
    engine = Engine(loaded.catalog, outputs.append)
    engine.start(T0)  # as a trace whose first line is at 10:00
    # with CEP_TEST_RESTARTS=1 a restart before every event (every 37th in long runs)
    every = 1 if len(events) <= 300 else 37
    for i, item in enumerate(events):
        seconds, type_name, attrs = item[:3]
        source = item[3] if len(item) > 3 else None
        if RESTARTS and not i % every:
            engine = restarted(engine)
        engine.process(Event(type_name, T0 + seconds, dict(attrs), source))
    if until is not None:
        if RESTARTS:
            engine = restarted(engine)
        engine.advance(T0 + until)
    found = []
    for o in outputs:
        if o["kind"] not in kinds:
            continue
        when = round(o["ts"] - T0, 6)
        if o["kind"] == "publish":
            found.append((when, o["topic"], o["payload"]))
        elif o.get("key") is not None:
            found.append((when, o["key"], o["attrs"]))
        else:
            found.append((when, o["attrs"]))
    return found


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-12)


def t(value: float, room: str = "a") -> dict:
    return {"room": room, "value": value}


WINDOWS = [
    ("time-window-edge-exactly-d-old-has-left",
     "SELECT count(*) AS n, sum(value) AS s FROM Temp#time(10 sec);",
     [(0, "Temp", t(1.0)), (5, "Temp", t(2.0)), (10, "Temp", t(4.0)), (14.999, "Temp", t(8.0))],
     [(0, {"n": 1, "s": 1.0}), (5, {"n": 2, "s": 3.0}), (10, {"n": 2, "s": 6.0}),
      (14.999, {"n": 3, "s": 14.0})]),
    ("expiry-alone-makes-no-result",
     "SELECT count(*) AS n FROM Temp#time(10 sec);",
     [(0, "Temp", t(1.0))], [(0, {"n": 1})]),
    ("an-emptied-window-starts-from-nothing",
     "SELECT count(*) AS n, avg(value) AS m, min(value) AS lo FROM Temp#time(10 sec);",
     [(0, "Temp", t(5.0)), (30, "Temp", t(1.0))],
     [(0, {"n": 1, "m": 5.0, "lo": 5.0}), (30, {"n": 1, "m": 1.0, "lo": 1.0})]),
    ("length-keeps-the-last-n",
     "SELECT count(*) AS n, sum(value) AS s, first(value) AS f, last(value) AS l "
     "FROM Reading#length(3);",
     [(i, "Reading", {"room": "a", "value": v}) for i, v in enumerate([1, 2, 3, 4, 5])],
     [(0, {"n": 1, "s": 1, "f": 1, "l": 1}), (1, {"n": 2, "s": 3, "f": 1, "l": 2}),
      (2, {"n": 3, "s": 6, "f": 1, "l": 3}), (3, {"n": 3, "s": 9, "f": 2, "l": 4}),
      (4, {"n": 3, "s": 12, "f": 3, "l": 5})]),
    ("length-with-group-by-groups-the-last-n",
     "SELECT room, count(*) AS n, sum(value) AS s FROM Reading#length(3) GROUP BY room;",
     [(0, "Reading", {"room": "a", "value": 1}), (1, "Reading", {"room": "b", "value": 10}),
      (2, "Reading", {"room": "a", "value": 2}), (3, "Reading", {"room": "b", "value": 20}),
      (4, "Reading", {"room": "b", "value": 30})],
     [(0, {"room": "a", "n": 1, "s": 1}), (1, {"room": "b", "n": 1, "s": 10}),
      (2, {"room": "a", "n": 2, "s": 3}), (3, {"room": "b", "n": 2, "s": 30}),
      (4, {"room": "b", "n": 2, "s": 50})]),
    ("lastevent-holds-one",
     "SELECT count(*) AS n, list(value) AS all FROM Reading#lastevent;",
     [(0, "Reading", {"room": "a", "value": 1}), (1, "Reading", {"room": "a", "value": 2})],
     [(0, {"n": 1, "all": [1]}), (1, {"n": 1, "all": [2]})]),
    ("unique-replaces-a-key-and-re-enters-it-last",
     "SELECT count(*) AS n, list(room) AS rooms, sum(value) AS s FROM Reading#unique(room);",
     [(0, "Reading", {"room": "a", "value": 1}), (1, "Reading", {"room": "b", "value": 2}),
      (2, "Reading", {"room": "a", "value": 5})],
     [(0, {"n": 1, "rooms": ["a"], "s": 1}), (1, {"n": 2, "rooms": ["a", "b"], "s": 3}),
      (2, {"n": 2, "rooms": ["b", "a"], "s": 7})]),
    ("unique-min-max-when-the-extreme-is-replaced",
     "SELECT min(value) AS lo, max(value) AS hi FROM Reading#unique(room);",
     [(0, "Reading", {"room": "a", "value": 9}), (1, "Reading", {"room": "b", "value": 1}),
      (2, "Reading", {"room": "a", "value": 4}), (3, "Reading", {"room": "b", "value": 7})],
     [(0, {"lo": 9, "hi": 9}), (1, {"lo": 1, "hi": 9}), (2, {"lo": 1, "hi": 4}),
      (3, {"lo": 4, "hi": 7})]),
    ("min-max-follow-expiry",
     "SELECT min(value) AS lo, max(value) AS hi FROM Reading#length(2);",
     [(i, "Reading", {"room": "a", "value": v}) for i, v in enumerate([5, 1, 3, 3, 9])],
     [(0, {"lo": 5, "hi": 5}), (1, {"lo": 1, "hi": 5}), (2, {"lo": 1, "hi": 3}),
      (3, {"lo": 3, "hi": 3}), (4, {"lo": 3, "hi": 9})]),
    ("aggregates-ignore-nulls",
     "SELECT count(*) AS n, count(value) AS c, sum(value) AS s, avg(value) AS m, "
     "min(value) AS lo, first(value) AS f, last(value) AS l, stddev(value) AS sd, "
     "list(value) AS all FROM Temp#length(5);",
     [(0, "Temp", {"room": "a"}), (1, "Temp", t(2.0)), (2, "Temp", {"room": "a"}),
      (3, "Temp", t(4.0))],
     [(0, {"n": 1, "c": 0, "s": None, "m": None, "lo": None, "f": None, "l": None,
           "sd": None, "all": []}),
      (1, {"n": 2, "c": 1, "s": 2.0, "m": 2.0, "lo": 2.0, "f": 2.0, "l": 2.0, "sd": None,
           "all": [2.0]}),
      (2, {"n": 3, "c": 1, "s": 2.0, "m": 2.0, "lo": 2.0, "f": 2.0, "l": 2.0, "sd": None,
           "all": [2.0]}),
      (3, {"n": 4, "c": 2, "s": 6.0, "m": 3.0, "lo": 2.0, "f": 2.0, "l": 4.0,
           "sd": 1.4142135623730951, "all": [2.0, 4.0]})]),
    ("stddev-is-the-sample-one",
     "SELECT stddev(value) AS sd, avg(value) AS m FROM Reading#length(8);",
     [(i, "Reading", {"room": "a", "value": v}) for i, v in enumerate([2, 4, 4, 4, 5, 5, 7, 9])],
     # (Welford's running update: equal to the two-pass value within rounding)
     [(0, {"sd": None, "m": 2.0}), (1, {"sd": approx(1.4142135623730951), "m": 3.0}),
      (2, {"sd": approx(1.1547005383792515), "m": 3.3333333333333335}),
      (3, {"sd": approx(1.0), "m": 3.5}), (4, {"sd": approx(1.0954451150103321), "m": 3.8}),
      (5, {"sd": approx(1.0954451150103321), "m": 4.0}),
      (6, {"sd": approx(1.5118578920369088), "m": 4.428571428571429}),
      (7, {"sd": approx(2.138089935299395), "m": 5.0})]),
    ("sums-come-back-after-values-leave",
     "SELECT sum(value) AS s FROM Temp#length(2);",
     [(0, "Temp", t(0.1)), (1, "Temp", t(0.2)), (2, "Temp", t(0.3))],
     [(0, {"s": 0.1}), (1, {"s": 0.30000000000000004}), (2, {"s": 0.5})]),
    ("where-filters-before-the-window-and-having-after",
     "SELECT count(*) AS n FROM Reading#length(10) WHERE value > 0 HAVING count(*) >= 2;",
     [(0, "Reading", {"room": "a", "value": 1}), (1, "Reading", {"room": "a", "value": -1}),
      (2, "Reading", {"room": "a", "value": 3})],
     [(2, {"n": 2})]),
    ("a-plain-attribute-is-the-arriving-events",
     "SELECT room, value, max(value) AS hi FROM Reading#length(3) GROUP BY room;",
     [(0, "Reading", {"room": "a", "value": 7}), (1, "Reading", {"room": "a", "value": 2})],
     [(0, {"room": "a", "value": 7, "hi": 7}), (1, {"room": "a", "value": 2, "hi": 7})]),
    ("group-by-two-attributes",
     "SELECT room, value, count(*) AS n FROM Reading#time(1 min) GROUP BY room, value;",
     [(0, "Reading", {"room": "a", "value": 1}), (1, "Reading", {"room": "a", "value": 2}),
      (2, "Reading", {"room": "a", "value": 1})],
     [(0, {"room": "a", "value": 1, "n": 1}), (1, {"room": "a", "value": 2, "n": 1}),
      (2, {"room": "a", "value": 1, "n": 2})]),
]


@pytest.mark.parametrize("rules,events,expected", [c[1:] for c in WINDOWS],
                         ids=[c[0] for c in WINDOWS])
def test_windows_and_aggregates(rules, events, expected):
    assert run(rules, events) == expected


def test_windows_and_groups_are_per_context_instance():
    rules = ("CONTEXT PerRoom SELECT count(*) AS n, avg(value) AS m "
             "FROM Reading#time(1 min);")
    events = [(0, "Reading", {"room": "a", "value": 2}), (1, "Reading", {"room": "b", "value": 10}),
              (2, "Reading", {"room": "a", "value": 4})]
    assert run(rules, events) == [(0, "a", {"n": 1, "m": 2.0}), (1, "b", {"n": 1, "m": 10.0}),
                                  (2, "a", {"n": 2, "m": 3.0})]


NAMED = [
    ("newest-event-and-null-when-empty",
     "CREATE WINDOW Last#lastevent FROM Reading;\n"
     "SELECT Last.value AS v FROM Tick;",
     [(0, "Tick", {"n": 1}), (1, "Reading", {"room": "a", "value": 5}), (2, "Tick", {"n": 2})],
     [(0, {"v": None}), (2, {"v": 5})]),
    ("filled-before-any-rule-sees-the-event",
     "CREATE WINDOW Last#lastevent FROM Reading;\n"
     "SELECT value, Last.value AS w FROM Reading;",
     [(0, "Reading", {"room": "a", "value": 5})],
     [(0, {"value": 5, "w": 5})]),
    ("a-window-filter-keeps-events-out",
     "CREATE WINDOW Warm#lastevent FROM Reading(value > 20);\n"
     "SELECT Warm.value AS w FROM Tick;",
     [(0, "Reading", {"room": "a", "value": 25}), (1, "Reading", {"room": "a", "value": 5}),
      (2, "Tick", {"n": 1})],
     [(2, {"w": 25})]),
    ("keyed-read-of-a-unique-window",
     "CREATE WINDOW People#unique(person) FROM Presence;\n"
     "SELECT People['bob'].state AS bob, People['eve'].state AS eve FROM Tick;",
     [(0, "Presence", {"person": "bob", "state": "home"}),
      (1, "Presence", {"person": "bob", "state": "away"}), (2, "Tick", {"n": 1})],
     [(2, {"bob": "away", "eve": None})]),
    ("keyed-read-with-two-keys-and-a-whole-number-key",
     "CREATE WINDOW ByBoth#unique(room, value) FROM Reading;\n"
     "CREATE WINDOW ByValue#unique(value) FROM Reading;\n"
     "SELECT ByBoth['a', 2].room AS r, ByBoth['a', 3].room AS none, ByValue[2].room AS v "
     "FROM Tick;",
     [(0, "Reading", {"room": "a", "value": 2}), (1, "Tick", {"n": 1})],
     [(1, {"r": "a", "none": None, "v": "a"})]),
    ("subquery-count-nobody-home",
     "CREATE WINDOW People#unique(person) FROM Presence;\n"
     "SELECT person FROM Presence(state = 'away') "
     "WHERE (SELECT count(*) FROM People WHERE state = 'home') = 0;",
     [(0, "Presence", {"person": "bob", "state": "home"}),
      (1, "Presence", {"person": "ann", "state": "home"}),
      (2, "Presence", {"person": "bob", "state": "away"}),
      (3, "Presence", {"person": "ann", "state": "away"}),
      (4, "Presence", {"person": "ann", "state": "away"})],
     [(3, {"person": "ann"}), (4, {"person": "ann"})]),
    ("subquery-correlated-through-the-outer-alias",
     "CREATE WINDOW Rooms#unique(room) FROM Reading;\n"
     "SELECT room, (SELECT count(*) FROM Rooms WHERE value > r.value) AS warmer, "
     "(SELECT room FROM Rooms WHERE value > r.value) AS newest_warmer, "
     "(SELECT avg(value) FROM Rooms) AS mean FROM Reading AS r;",
     [(0, "Reading", {"room": "a", "value": 20}), (1, "Reading", {"room": "b", "value": 25}),
      (2, "Reading", {"room": "c", "value": 22}), (3, "Reading", {"room": "d", "value": 10})],
     [(0, {"room": "a", "warmer": 0, "newest_warmer": None, "mean": 20.0}),
      (1, {"room": "b", "warmer": 0, "newest_warmer": None, "mean": 22.5}),
      (2, {"room": "c", "warmer": 1, "newest_warmer": "b", "mean": 22.333333333333332}),
      (3, {"room": "d", "warmer": 3, "newest_warmer": "c", "mean": 19.25})]),
    ("a-time-window-forgets",
     "CREATE WINDOW Recent#time(1 min) FROM Reading;\n"
     "SELECT (SELECT count(*) FROM Recent) AS n, Recent.value AS v FROM Tick;",
     [(0, "Reading", {"room": "a", "value": 1}), (30, "Reading", {"room": "a", "value": 2}),
      (59, "Tick", {"n": 1}), (60, "Tick", {"n": 2}), (90, "Tick", {"n": 3})],
     [(59, {"n": 2, "v": 2}), (60, {"n": 1, "v": 2}), (90, {"n": 0, "v": None})]),
    ("a-length-window-and-reading-never-triggers",
     "CREATE WINDOW Three#length(3) FROM Reading;\n"
     "SELECT (SELECT sum(value) FROM Three) AS s FROM Tick;",
     [(i, "Reading", {"room": "a", "value": v}) for i, v in enumerate([1, 2, 3, 4])] +
     [(5, "Tick", {"n": 1})],
     [(5, {"s": 9})]),
    ("derived-events-fill-windows-when-delivered",
     "CREATE WINDOW Alarms#lastevent FROM Alarm;\n"
     "INSERT INTO Alarm SELECT value FROM Reading(value > 50);\n"
     "SELECT value, Alarms.value AS last_alarm FROM Reading;",
     [(0, "Reading", {"room": "a", "value": 60}), (1, "Reading", {"room": "a", "value": 1})],
     [(0, {"value": 60}), (0, {"value": 60, "last_alarm": None}),
      (1, {"value": 1, "last_alarm": 60})]),
    ("in-a-filter-and-in-publish",
     "CREATE WINDOW Lux#lastevent FROM Reading(room = 'lux');\n"
     "ON Bell(Lux.value < 30) PUBLISH 'light/{room}' PAYLOAD {\"lux\": Lux.value};",
     [(0, "Bell", {"room": "hall"}), (1, "Reading", {"room": "lux", "value": 10}),
      (2, "Bell", {"room": "hall"}), (3, "Reading", {"room": "lux", "value": 90}),
      (4, "Bell", {"room": "hall"})],
     [(2, "light/hall", {"lux": 10})]),
]


@pytest.mark.parametrize("rules,events,expected", [c[1:] for c in NAMED],
                         ids=[c[0] for c in NAMED])
def test_named_windows(rules, events, expected):
    assert run(rules, events, kinds=("event", "publish")) == expected


PRIOR = [
    ("prior-after-the-filter",
     "SELECT value, prior(1, value) AS p1, prior(2, value) AS p2 FROM Reading(value > 0);",
     [(0, "Reading", {"room": "a", "value": 1}), (1, "Reading", {"room": "a", "value": -5}),
      (2, "Reading", {"room": "a", "value": 2}), (3, "Reading", {"room": "a", "value": 3})],
     [(0, {"value": 1, "p1": None, "p2": None}), (2, {"value": 2, "p1": 1, "p2": None}),
      (3, {"value": 3, "p1": 2, "p2": 1})]),
    ("prior-counts-events-where-drops",
     "SELECT value, prior(1, value) AS p FROM Reading WHERE value > 1;",
     [(0, "Reading", {"room": "a", "value": 1}), (1, "Reading", {"room": "a", "value": 2})],
     [(1, {"value": 2, "p": 1})]),
    ("prior-per-context-instance",
     "CONTEXT PerRoom SELECT value, prior(1, value) AS p FROM Reading;",
     [(0, "Reading", {"room": "a", "value": 1}), (1, "Reading", {"room": "b", "value": 2}),
      (2, "Reading", {"room": "a", "value": 3})],
     [(0, "a", {"value": 1, "p": None}), (1, "b", {"value": 2, "p": None}),
      (2, "a", {"value": 3, "p": 1})]),
    ("prior-in-a-windowed-rule-rise-within-a-minute",
     "SELECT value, max(value) - min(value) AS rise, prior(1, value) AS before "
     "FROM Reading#time(1 min) HAVING max(value) - min(value) >= 5;",
     [(0, "Reading", {"room": "a", "value": 20}), (30, "Reading", {"room": "a", "value": 23}),
      (50, "Reading", {"room": "a", "value": 26}), (100, "Reading", {"room": "a", "value": 27})],
     [(50, {"value": 26, "rise": 6, "before": 23})]),
]


@pytest.mark.parametrize("rules,events,expected", [c[1:] for c in PRIOR],
                         ids=[c[0] for c in PRIOR])
def test_prior(rules, events, expected):
    assert run(rules, events) == expected


OUTPUT = [
    ("first-drops-for-d-and-exactly-d-later-passes",
     "SELECT room FROM Bell OUTPUT FIRST EVERY 30 sec;",
     [(0, "Bell", {"room": "a"}), (10, "Bell", {"room": "a"}), (30, "Bell", {"room": "a"}),
      (59, "Bell", {"room": "a"}), (61, "Bell", {"room": "a"})],
     [(0, {"room": "a"}), (30, {"room": "a"}), (61, {"room": "a"})]),
    ("first-per-group",
     "SELECT room, count(*) AS n FROM Bell#time(1 min) GROUP BY room OUTPUT FIRST EVERY 30 sec;",
     [(0, "Bell", {"room": "a"}), (5, "Bell", {"room": "b"}), (10, "Bell", {"room": "a"}),
      (31, "Bell", {"room": "a"})],
     [(0, {"room": "a", "n": 1}), (5, {"room": "b", "n": 1}), (31, {"room": "a", "n": 3})]),
    ("first-per-context-instance",
     "CONTEXT PerRoom SELECT room FROM Bell OUTPUT FIRST EVERY 30 sec;",
     [(0, "Bell", {"room": "a"}), (5, "Bell", {"room": "b"}), (10, "Bell", {"room": "a"})],
     [(0, "a", {"room": "a"}), (5, "b", {"room": "b"})]),
    ("last-at-each-periods-end-stamped-with-it",
     "SELECT value FROM Reading OUTPUT LAST EVERY 1 min;",
     [(10, "Reading", {"room": "a", "value": 1}), (20, "Reading", {"room": "a", "value": 2}),
      (60, "Reading", {"room": "a", "value": 3}), (190, "Reading", {"room": "a", "value": 4})],
     [(60, {"value": 2}), (120, {"value": 3}), (240, {"value": 4})]),
    ("last-of-each-group",
     "SELECT room, count(*) AS n FROM Reading#length(10) GROUP BY room "
     "OUTPUT LAST EVERY 1 min;",
     [(1, "Reading", {"room": "a", "value": 1}), (2, "Reading", {"room": "b", "value": 1}),
      (3, "Reading", {"room": "a", "value": 1})],
     [(60, {"room": "a", "n": 2}), (60, {"room": "b", "n": 1})]),
    ("last-periods-count-from-the-instance-start",
     "CREATE CONTEXT Visit INITIATED BY Bell DURATION 10 min;\n"
     "CONTEXT Visit SELECT value FROM Reading OUTPUT LAST EVERY 1 min;",
     [(30, "Bell", {"room": "a"}), (40, "Reading", {"room": "a", "value": 1}),
      (100, "Reading", {"room": "a", "value": 2})],
     [(90, {"value": 1}), (150, {"value": 2})]),
    ("snapshot-each-period-none-when-empty",
     "SELECT room, count(*) AS n, avg(value) AS m FROM Reading#time(2 min) GROUP BY room "
     "OUTPUT SNAPSHOT EVERY 1 min;",
     [(10, "Reading", {"room": "a", "value": 1}), (20, "Reading", {"room": "b", "value": 5}),
      (70, "Reading", {"room": "a", "value": 3})],
     [(60, {"room": "a", "n": 1, "m": 1.0}), (60, {"room": "b", "n": 1, "m": 5.0}),
      (120, {"room": "a", "n": 2, "m": 2.0}), (120, {"room": "b", "n": 1, "m": 5.0}),
      (180, {"room": "a", "n": 1, "m": 3.0})]),
    ("snapshot-takes-the-groups-newest-event",
     "SELECT room, value, sum(value) AS s FROM Reading#length(5) GROUP BY room "
     "HAVING sum(value) > 2 OUTPUT SNAPSHOT EVERY 1 min;",
     [(10, "Reading", {"room": "a", "value": 1}), (20, "Reading", {"room": "a", "value": 4}),
      (30, "Reading", {"room": "b", "value": 1})],
     [(at, {"room": "a", "value": 4, "s": 5}) for at in (60, 120, 180, 240, 300)]),
]


@pytest.mark.parametrize("rules,events,expected", [c[1:] for c in OUTPUT],
                         ids=[c[0] for c in OUTPUT])
def test_output_rate_limiting(rules, events, expected):
    assert run(rules, events, until=300) == expected


def test_on_rule_output_first_throttles_actions():
    rules = "ON Bell OUTPUT FIRST EVERY 30 sec PUBLISH 'notify/{room}';"
    events = [(0, "Bell", {"room": "a"}), (5, "Bell", {"room": "b"}), (31, "Bell", {"room": "b"})]
    assert run(rules, events, kinds=("publish",)) == [(0, "notify/a", ""), (31, "notify/b", "")]


def test_on_rule_output_last_acts_at_the_periods_end():
    rules = "ON Bell OUTPUT LAST EVERY 1 min PUBLISH 'notify/{room}';"
    events = [(0, "Bell", {"room": "a"}), (5, "Bell", {"room": "b"})]
    assert run(rules, events, until=120, kinds=("publish",)) == [(60, "notify/b", "")]


CHANGED = [
    ("first-report-counts-repeats-do-not",
     "SELECT door FROM Door(contact = false, changed(contact));",
     [(0, "Door", {"door": "front", "contact": False}, "z2m/front"),
      (1, "Door", {"door": "front", "contact": False}, "z2m/front"),
      (2, "Door", {"door": "front", "contact": True}, "z2m/front"),
      (3, "Door", {"door": "front", "contact": False}, "z2m/front")],
     [(0, {"door": "front"}), (3, {"door": "front"})]),
    ("per-source",
     "SELECT door FROM Door(changed(contact));",
     [(0, "Door", {"door": "front", "contact": False}, "z2m/front"),
      (1, "Door", {"door": "back", "contact": False}, "z2m/back"),
      (2, "Door", {"door": "front", "contact": False}, "z2m/front")],
     [(0, {"door": "front"}), (1, {"door": "back"})]),
    ("updated-whether-or-not-the-filter-passes",
     "SELECT door FROM Door(contact = false, changed(contact));",
     [(0, "Door", {"door": "d", "contact": True}, "z2m/d"),
      (1, "Door", {"door": "d", "contact": True}, "z2m/d"),
      (2, "Door", {"door": "d", "contact": False}, "z2m/d")],
     [(2, {"door": "d"})]),
    ("null-differs-two-nulls-do-not",
     "SELECT door FROM Door(changed(contact));",
     [(0, "Door", {"door": "d"}, "t"), (1, "Door", {"door": "d"}, "t"),
      (2, "Door", {"door": "d", "contact": True}, "t"), (3, "Door", {"door": "d"}, "t")],
     [(0, {"door": "d"}), (2, {"door": "d"}), (3, {"door": "d"})]),
    ("without-a-topic-the-type-is-the-source",
     "SELECT door FROM Door(changed(contact));",
     [(0, "Door", {"door": "a", "contact": True}), (1, "Door", {"door": "b", "contact": True})],
     [(0, {"door": "a"})]),
    ("engine-wide-not-per-instance",
     "CONTEXT PerRoom SELECT value FROM Reading(changed(value));",
     [(0, "Reading", {"room": "a", "value": 1}), (1, "Reading", {"room": "b", "value": 1})],
     [(0, "a", {"value": 1})]),
    ("in-a-pattern-atom",
     "SELECT d.door FROM PATTERN [every d=Door(contact = false, changed(contact))];",
     [(0, "Door", {"door": "f", "contact": False}, "f"),
      (1, "Door", {"door": "f", "contact": False}, "f")],
     [(0, {"door": "f"})]),
]


@pytest.mark.parametrize("rules,events,expected", [c[1:] for c in CHANGED],
                         ids=[c[0] for c in CHANGED])
def test_changed(rules, events, expected):
    assert run(rules, events) == expected


EXPRESSIONS = [
    ("case-searched", "CASE WHEN value > 20 THEN 'warm' WHEN value > 10 THEN 'mild' "
     "ELSE 'cold' END", [(25, "warm"), (15, "mild"), (5, "cold"), (None, "cold")]),
    ("case-without-else-is-null", "CASE WHEN value > 20 THEN 'warm' END",
     [(25, "warm"), (5, None)]),
    ("case-simple", "CASE value WHEN 1 THEN 'one' WHEN 2 THEN 'two' ELSE 'many' END",
     [(1, "one"), (2, "two"), (3, "many"), (None, "many")]),
    ("cast-float-to-int-truncates", "cast(value / 4, INT)", [(10, 2), (-10, -2), (None, None)]),
    ("cast-to-string", "cast(value, STRING)", [(21, "21")]),
    ("cast-float-to-string", "cast(value / 2, STRING)", [(43, "21.5"), (42, "21.0")]),
    ("concat-number", "'at ' + value / 2", [(43, "at 21.5"), (42, "at 21.0")]),
    ("concat-int-left", "value + ' W'", [(5, "5 W")]),
    ("concat-null-is-null", "'at ' + value", [(None, None)]),
    ("concat-bool", "'open: ' + (value > 1)", [(5, "open: true"), (0, "open: false")]),
    ("cast-string-to-int", "cast(room, INT)", [(0, None)]),
]


@pytest.mark.parametrize("expr,cases", [c[1:] for c in EXPRESSIONS],
                         ids=[c[0] for c in EXPRESSIONS])
def test_expressions(expr, cases):
    rules = f"SELECT {expr} AS x FROM Reading;"
    events = [(i, "Reading", {"room": "a"} if v is None else {"room": "a", "value": v})
              for i, (v, _) in enumerate(cases)]
    assert [attrs["x"] for _, attrs in run(rules, events)] == [x for _, x in cases]


CASTS = [("'21'", 21, "INT"), ("'21.5'", None, "INT"), ("'21.5'", 21.5, "FLOAT"),
         ("'ON'", True, "BOOL"), ("'off'", False, "BOOL"), ("'maybe'", None, "BOOL"),
         ("1", True, "BOOL"), ("21.9", 21, "INT"), ("-21.9", -21, "INT"), ("true", "true", "STRING"),
         ("21", 21.0, "FLOAT"), ("'x'", None, "FLOAT")]


@pytest.mark.parametrize("literal,expected,type_name", CASTS,
                         ids=[f"{c[0]}-as-{c[2]}" for c in CASTS])
def test_cast_converts_as_payloads_are(literal, expected, type_name):
    rules = f"SELECT cast({literal}, {type_name}) AS x FROM Tick;"
    ((_, attrs),) = run(rules, [(0, "Tick", {"n": 1})])
    assert attrs["x"] == expected and type(attrs["x"]) is type(expected)


def test_time_functions_read_the_moment_of_evaluation_in_the_files_zone():
    rules = ("SET TIMEZONE 'Europe/Berlin';\n"
             "SELECT hour() AS h, minute() AS m, weekday() AS d, current_timestamp() AS now, "
             "hour(current_timestamp() + 3600) AS later FROM Tick;")
    # 2026-01-04 is a Sunday; 10:00 UTC is 11:00 in Berlin
    ((_, attrs),) = run(rules, [(3 * 86400 + 125, "Tick", {"n": 1})])
    assert attrs == {"h": 11, "m": 2, "d": 7, "now": "2026-01-04T11:02:05.000+01:00",
                     "later": 12}


# ------------------------------------------------------------------ memory follows content


def _engine(rules: str) -> Engine:
    loaded = load(PRELUDE + rules)
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    engine = Engine(loaded.catalog, lambda record: None)
    engine.start(T0)
    return engine


def test_a_time_window_that_empties_keeps_nothing_and_sets_no_more_timers():
    engine = _engine("SELECT room, avg(value) AS m FROM Reading#time(1 min) GROUP BY room;")
    for i in range(1000):
        engine.process(Event("Reading", T0 + i * 0.05, {"room": f"r{i % 50}", "value": i}))
    (agent,) = engine.agents
    (window,) = agent.source.windows.values()
    assert len(window.groups) == 50 and len(window.entries) == 1000
    engine.advance(T0 + 3600)  # nothing arrives: the window's timer lets the events go
    assert not window.entries and not window.groups
    assert window.timer is None and engine.timers.pending() == 0


def test_a_busy_time_window_keeps_one_timer():
    engine = _engine("SELECT count(*) AS n FROM Reading#time(10 sec);")
    for i in range(2000):
        engine.process(Event("Reading", T0 + i * 0.1, {"room": "a", "value": i}))
    (agent,) = engine.agents
    (window,) = agent.source.windows.values()
    assert engine.timers.pending() == 1
    assert 100 <= len(window.entries) <= 100 + 13  # at most d/8 of expired events wait


def test_a_unique_window_holds_one_event_per_key():
    engine = _engine("CREATE WINDOW People#unique(person) FROM Presence;\n"
                     "SELECT count(*) AS n, list(person) AS p FROM Presence#unique(person);")
    for i in range(5000):
        engine.process(Event("Presence", T0 + i, {"person": f"p{i % 7}", "state": "home"}))
    assert len(engine.windows.contents["People"].by_key) == 7
    (agent,) = engine.agents
    (window,) = agent.source.windows.values()
    assert len(window.by_key) == 7
    (group,) = window.groups.values()
    assert group.size == 7 and len(group.order) == 7 and len(group.aggs[1].values) == 7


def test_changed_keeps_one_memory_per_source_and_only_the_attributes_asked_about():
    engine = _engine("SELECT door FROM Door(changed(contact));")
    for i in range(3000):
        engine.process(Event("Door", T0 + i, {"door": f"d{i}", "contact": i % 2 == 0},
                             f"z2m/d{i % 12}"))
    assert engine.changes.sources() == 12
    assert all(set(last) == {"contact"} for last in engine.changes.memory["Door"].values())


def test_output_first_forgets_finished_periods():
    engine = _engine("SELECT room, count(*) AS n FROM Bell#lastevent GROUP BY room "
                     "OUTPUT FIRST EVERY 1 sec;")
    outputs = []
    engine.sink = outputs.append
    for i in range(10_000):  # a new group every second, each one's period over at once
        engine.process(Event("Bell", T0 + i, {"room": f"r{i}"}))
    (agent,) = engine.agents
    (state,) = agent.limiter.instances.values()
    assert len(outputs) == 10_000
    assert len(state.until) <= PRUNE_ABOVE + 1


@pytest.mark.parametrize("clause", ["OUTPUT LAST EVERY 1 hour", "OUTPUT SNAPSHOT EVERY 1 hour"])
def test_periods_keep_their_start_when_a_partition_releases_instances(clause):
    """Periods run from the instance's start: a partition that releases quiet instances
    (to bound memory) must not restart them when the key comes back."""
    view = "#time(70 min)" if "SNAPSHOT" in clause else ""  # empty from 1:27 to 2:30
    rules = (f"CONTEXT PerRoom SELECT count(*) AS n FROM Reading(room = 'a'){view} {clause};"
             if view else f"CONTEXT PerRoom SELECT value FROM Reading(room = 'a') {clause};")
    events = [(17 * 60, "Reading", {"room": "a", "value": 1})]
    events += [(90 * 60, "Reading", {"room": f"k{i}", "value": 0}) for i in range(3000)]
    events += [(150 * 60, "Reading", {"room": "a", "value": 2})]
    times = [when for when, *_ in run(rules, events, until=4 * 3600)]
    assert times == [77 * 60, 197 * 60]


@pytest.mark.parametrize("rule", [
    "CONTEXT PerRoom SELECT value FROM Reading OUTPUT LAST EVERY 1 hour;",
    "CONTEXT PerRoom SELECT count(*) AS n FROM Reading#time(70 min) "
    "OUTPUT SNAPSHOT EVERY 1 hour;"])
def test_quiet_instances_with_output_periods_are_released_and_keep_their_start(rule):
    outputs: list[dict] = []
    engine = _engine(rule)
    engine.sink = outputs.append
    engine.process(Event("Reading", T0 + 17 * 60, {"room": "a", "value": 1}))
    for i in range(3000):
        engine.process(Event("Reading", T0 + 90 * 60, {"room": f"k{i}", "value": 0}))
    engine.process(Event("Reading", T0 + 150 * 60, {"room": "a", "value": 2}))
    engine.advance(T0 + 4 * 3600)
    assert engine.stats["released"] > 0  # the quiet keys' instances went
    times = [o["ts"] - T0 for o in outputs if o["key"] == "a"]
    assert times == [77 * 60, 197 * 60]
