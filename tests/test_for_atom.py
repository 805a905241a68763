"""`X FOR d`, table-driven: a condition that lasts (Home Assistant's `for: 5 minutes`).

Each case is a pattern, the events it gets and the exact matches, as (seconds after T0,
{tag: event id, or a list of ids for a repeated tag}), or (seconds, key, {...}) in a
PARTITION BY context.  Events are made by `opened`, `closed`, `reading`, `alarm`; a door
event's id is `door@seconds` and its source (the MQTT topic `changed()` and FOR tell
devices apart by) is `zigbee2mqtt/door` unless given (None: the type is the source).
zigbee2mqtt reports an open door as `contact: false`.
"""

from __future__ import annotations

import random

import pytest
from helpers import load

from cep.runtime.contexts import PartitionRuntime
from cep.runtime.engine import Engine
from cep.runtime.events import Event
from cep.runtime.lasting import ForNode
from cep.runtime.matcher import atom_nodes

T0 = 1_700_000_000.0

PRELUDE = """
CREATE EVENT Door (id STRING, door STRING, contact BOOL, battery INT)
    FROM TOPIC 'zigbee2mqtt/{door}';
CREATE EVENT Temp (id STRING, room STRING, value FLOAT) FROM TOPIC 'zigbee2mqtt/{room}_temp';
CREATE EVENT Alarm (id STRING, state STRING) FROM TOPIC 'alarm/state';
CREATE CONTEXT PerDoor PARTITION BY door;
"""

# ------------------------------------------------------------------ events

SOURCE = object()  # the default: zigbee2mqtt/<door>


def _door(door: str, at: float, contact: bool, source, battery: int | None) -> Event:
    attrs = {"id": f"{door}@{at:g}", "door": door, "contact": contact}
    if battery is not None:
        attrs["battery"] = battery
    return Event("Door", T0 + at, attrs, f"zigbee2mqtt/{door}" if source is SOURCE else source)


def opened(door: str, at: float, source=SOURCE, battery: int | None = None) -> Event:
    return _door(door, at, False, source, battery)


def closed(door: str, at: float, source=SOURCE, battery: int | None = None) -> Event:
    return _door(door, at, True, source, battery)


def reading(room: str, at: float, value: float) -> Event:
    return Event("Temp", T0 + at, {"id": f"{room}@{at:g}", "room": room, "value": value},
                 f"zigbee2mqtt/{room}_temp")


def alarm(at: float, state: str = "armed") -> Event:
    return Event("Alarm", T0 + at, {"id": f"alarm@{at:g}", "state": state}, "alarm/state")


# ------------------------------------------------------------------ running


def engine_for(pattern: str, context: str = "", warnings: list[str] | None = None,
               outputs: list[dict] | None = None) -> Engine:
    loaded = load(PRELUDE + f"@name('p') {context} SELECT * FROM PATTERN [ {pattern} ];")
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    sink = outputs if outputs is not None else []
    log = warnings if warnings is not None else []
    engine = Engine(loaded.catalog, sink.append, warn=log.append)
    engine.start(T0)
    return engine


def matches(outputs: list[dict]) -> list[tuple]:
    def ids(value):
        if isinstance(value, list):
            return [ids(item) for item in value]
        return value["id"] if isinstance(value, dict) else value

    found: list[tuple] = []
    for o in outputs:
        if o["kind"] != "event":
            continue
        when = round(o["ts"] - T0, 6)
        tags = {tag: ids(v) for tag, v in o["attrs"].items() if v is not None}
        found.append((when, o["key"], tags) if o["key"] is not None else (when, tags))
    return found


def run(pattern: str, events: list[Event], until: float = 3600, context: str = "",
        warnings: list[str] | None = None) -> tuple[list[tuple], Engine]:
    outputs: list[dict] = []
    engine = engine_for(pattern, context, warnings, outputs)
    for event in events:
        engine.process(event)
    engine.advance(T0 + until)
    return matches(outputs), engine


# ------------------------------------------------------------------ the cases

OPEN = "d=Door(contact = false, changed(contact)) FOR 5 min"  # "a door stays open 5 min"
EVERY_OPEN = f"every ({OPEN})"
PER_DOOR = "CONTEXT PerDoor"

CASES = [
    # id, pattern, events, context, matches
    ("stays-open-fires-at-plus-d", EVERY_OPEN, [opened("front", 0)], "",
     [(300, {"d": "front@0"})]),
    ("closed-at-3-min-nothing", EVERY_OPEN, [opened("front", 0), closed("front", 180)], "",
     []),
    ("repeated-open-reports-do-not-cancel", EVERY_OPEN,
     [opened("front", 0), opened("front", 60), opened("front", 120), opened("front", 299)], "",
     [(300, {"d": "front@0"})]),
    ("another-doors-close-does-not-cancel", EVERY_OPEN,
     [opened("front", 0), closed("back", 60)], "", [(300, {"d": "front@0"})]),
    ("another-doors-open-is-ignored-under-every", EVERY_OPEN,
     [opened("front", 0), opened("back", 60)], "", [(300, {"d": "front@0"})]),
    ("the-ignored-door-does-not-start-later", EVERY_OPEN,
     # back opened during front's wait; its later reports are no change: no start
     [opened("front", 0), opened("back", 60), closed("front", 120), opened("back", 200)], "",
     []),
    ("per-door-waits-in-a-partition", EVERY_OPEN,
     [opened("front", 0), opened("back", 60), closed("front", 120), opened("back", 200)],
     PER_DOOR, [(360, "back", {"d": "back@60"})]),
    ("per-door-both-stay-open", EVERY_OPEN,
     [opened("front", 0), opened("back", 60)], PER_DOOR,
     [(300, "front", {"d": "front@0"}), (360, "back", {"d": "back@60"})]),
    ("every-fires-again-after-a-new-start", EVERY_OPEN,
     [opened("front", 0), closed("front", 400), opened("front", 500)], "",
     [(300, {"d": "front@0"}), (800, {"d": "front@500"})]),
    ("every-restarts-after-a-cancel", EVERY_OPEN,
     [opened("front", 0), closed("front", 100), opened("front", 200)], "",
     [(500, {"d": "front@200"})]),
    ("still-open-after-the-match-starts-nothing", EVERY_OPEN,
     [opened("front", 0), opened("front", 400)], "", [(300, {"d": "front@0"})]),
    ("without-every-once", OPEN,
     [opened("front", 0), closed("front", 400), opened("front", 500)], "",
     [(300, {"d": "front@0"})]),
    ("without-every-a-cancel-is-final", OPEN,
     [opened("front", 0), closed("front", 100), opened("front", 200)], "", []),
    # half-open: [start, start + d)
    ("failing-exactly-at-plus-d-is-too-late", EVERY_OPEN,
     [opened("front", 0), closed("front", 300)], "", [(300, {"d": "front@0"})]),
    ("failing-just-before-plus-d-cancels", EVERY_OPEN,
     [opened("front", 0), closed("front", 299.999)], "", []),
    # sources: None means the type is the source
    ("no-source-the-type-is-the-source", EVERY_OPEN,
     [opened("front", 0, source=None), closed("back", 60, source=None)], "", []),
    ("same-topic-same-source", EVERY_OPEN,
     [opened("front", 0, source="hub/doors"), closed("back", 60, source="hub/doors")], "", []),
    # filters
    ("no-changed-every-report-can-start", "every (d=Door(contact = false) FOR 1 min)",
     [opened("front", 0), opened("front", 30), opened("front", 70)], "",
     # front@30 came during the wait (ignored); at 60 the restarted atom takes front@70
     [(60, {"d": "front@0"}), (130, {"d": "front@70"})]),
    ("only-changed-conditions-nothing-ends-the-wait", "every (d=Door(changed(contact)) FOR 1 min)",
     [opened("front", 0), closed("front", 30)], "", [(60, {"d": "front@0"})]),
    ("changed-inside-a-conjunct-is-left-out",
     "every (d=Door(contact = false and (changed(contact) or battery < 10)) FOR 1 min)",
     [opened("front", 0), opened("front", 30), closed("front", 50), opened("front", 70)], "",
     [(130, {"d": "front@70"})]),
    ("a-threshold-that-lasts", "every (t=Temp(value > 25) FOR 10 min)",
     [reading("attic", 0, 26), reading("attic", 60, 27), reading("cellar", 120, 12),
      reading("attic", 300, 24), reading("attic", 400, 28), reading("attic", 500, 29)], "",
     [(1000, {"t": "attic@400"})]),
    ("untagged", "every (Door(contact = false, changed(contact)) FOR 5 min)",
     [opened("front", 0)], "", [(300, {})]),
    # composition
    ("after-followed-by-sees-later-events-only",
     "a=Alarm(state = 'armed') -> d=Door(contact = false) FOR 1 min",
     [opened("front", 0), alarm(10), opened("front", 20)], "",
     [(80, {"a": "alarm@10", "d": "front@20"})]),
    ("each-alarm-its-own-wait", "every a=Alarm -> d=Door(contact = false) FOR 1 min",
     [alarm(0), alarm(10), opened("front", 20), closed("front", 100)], "",
     [(80, {"a": "alarm@0", "d": "front@20"}), (80, {"a": "alarm@10", "d": "front@20"})]),
    ("not-nothing-open", "a=Alarm -> (timer:interval(10 min) and not Door(contact = false) FOR 1 min)",
     [alarm(0)], "", [(600, {"a": "alarm@0"})]),
    ("not-a-door-held-open-ends-it",
     "a=Alarm -> (timer:interval(10 min) and not Door(contact = false) FOR 1 min)",
     [alarm(0), opened("front", 60)], "", []),
    ("not-a-door-closed-in-time-keeps-it",
     "a=Alarm -> (timer:interval(10 min) and not Door(contact = false) FOR 1 min)",
     [alarm(0), opened("front", 60), closed("front", 90)], "", [(600, {"a": "alarm@0"})]),
    ("not-is-about-the-first-wait",  # FOR is one wait; `not every` is about any of them
     "a=Alarm -> (timer:interval(10 min) and not Door(contact = false) FOR 1 min)",
     [alarm(0), opened("front", 60), closed("front", 90), opened("front", 200)], "",
     [(600, {"a": "alarm@0"})]),
    ("not-every-is-about-any-wait",
     "a=Alarm -> (timer:interval(10 min) and not every (Door(contact = false) FOR 1 min))",
     [alarm(0), opened("front", 60), closed("front", 90), opened("front", 200)], "", []),
    ("not-held-until-the-same-instant-timers-in-the-order-set",
     "a=Alarm -> (timer:interval(10 min) and not Door(contact = false) FOR 1 min)",
     [alarm(0), opened("front", 540)], "", [(600, {"a": "alarm@0"})]),
    ("within-in-time", f"every a=Alarm -> {OPEN.replace('5 min', '1 min')} "
                       "where timer:within(2 min)",
     [alarm(0), opened("front", 30)], "", [(90, {"a": "alarm@0", "d": "front@30"})]),
    ("within-too-late", f"every a=Alarm -> {OPEN.replace('5 min', '1 min')} "
                        "where timer:within(2 min)",
     [alarm(0), opened("front", 70)], "", []),
    ("within-exactly-at-its-end-is-too-late",
     f"every a=Alarm -> {OPEN.replace('5 min', '1 min')} where timer:within(2 min)",
     [alarm(0), opened("front", 60)], "", []),
    ("repeat-rounds", "[2] d=Door(contact = false) FOR 1 min",
     [opened("front", 0), opened("front", 30), opened("front", 70)], "",
     [(130, {"d": ["front@0", "front@70"]})]),
    ("until-collects-the-waits",
     f"({OPEN.replace('5 min', '1 min')}) until a=Alarm",
     [opened("front", 0), closed("front", 80), opened("front", 100), alarm(200)], "",
     [(200, {"d": ["front@0", "front@100"], "a": "alarm@200"})]),
    ("until-stops-the-wait", f"({OPEN.replace('5 min', '1 min')}) until a=Alarm",
     [opened("front", 0), alarm(30)], "", [(30, {"d": [], "a": "alarm@30"})]),
    ("and-two-doors", "every ((f=Door(door = 'front', contact = false) FOR 1 min) and "
                      "(b=Door(door = 'back', contact = false) FOR 1 min))",
     [opened("front", 0), opened("back", 30)], "", [(90, {"f": "front@0", "b": "back@30"})]),
    ("and-false-when-one-side-is", "(f=Door(door = 'front', contact = false) FOR 1 min) and "
                                   "(b=Door(door = 'back', contact = false) FOR 1 min)",
     [opened("front", 0), opened("back", 30), closed("back", 60)], "", []),
    ("or-the-first-to-happen", f"({OPEN}) or a=Alarm", [opened("front", 0), alarm(30)], "",
     [(30, {"a": "alarm@30"})]),
    ("or-the-wait-first", f"({OPEN}) or a=Alarm", [opened("front", 0), alarm(400)], "",
     [(300, {"d": "front@0"})]),
]


@pytest.mark.parametrize("case_id,pattern,events,context,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_for_case(case_id, pattern, events, context, expected):
    found, engine = run(pattern, events, context=context)
    assert found == expected
    assert engine.stats["rule_errors"] == 0


# ------------------------------------------------------------------ memory

MEMORY = [
    # id, pattern, events, live states left (atoms + timers), context
    ("waiting-for-a-start", EVERY_OPEN, [opened("front", 0), closed("front", 100)], 1, ""),
    ("done-without-every", OPEN, [opened("front", 0)], 0, ""),
    ("cancelled-without-every", OPEN, [opened("front", 0), closed("front", 60)], 0, ""),
    ("within-expired", f"every a=Alarm -> {OPEN} where timer:within(2 min)",
     # the every's Alarm atom; the last alarm's within timer, hold atom and FOR timer
     [alarm(0), opened("front", 30), alarm(3500), closed("front", 3540),
      opened("front", 3550)], 4, ""),
    ("until-stopped", f"({OPEN}) until a=Alarm", [opened("front", 0), alarm(30)], 0, ""),
    ("or-done", f"({OPEN}) or a=Alarm", [opened("front", 0), alarm(30)], 0, ""),
    ("and-false", "(f=Door(door = 'front', contact = false) FOR 1 min) and "
                  "(b=Door(door = 'back', contact = false) FOR 1 min)",
     [opened("front", 0), opened("back", 30), closed("back", 40)], 0, ""),
    ("not-ended", "a=Alarm -> (timer:interval(10 min) and not Door(contact = false) FOR 1 min)",
     [alarm(0), opened("front", 60)], 0, ""),
    ("per-door", EVERY_OPEN, [opened(f"door{i}", i) for i in range(10)], 10, PER_DOOR),
]


@pytest.mark.parametrize("case_id,pattern,events,live,context", MEMORY,
                         ids=[m[0] for m in MEMORY])
def test_nothing_is_left_behind(case_id, pattern, events, live, context):
    _, engine = run(pattern, events, context=context)
    assert engine.partial_matches() == {"p": live}
    runs = engine.agents[0].source.runs.values()
    timers = sum(len(r.timers) for r in runs if not r.finished)
    assert engine.timers.pending() == timers  # no timer outlives its state


def test_a_wait_holds_its_atom_and_its_timer_and_gives_them_back():
    engine = engine_for(EVERY_OPEN)
    assert engine.partial_matches() == {"p": 1}  # the start atom
    (run_,) = engine.agents[0].source.runs.values()
    assert run_.at_rest()
    engine.process(opened("front", 0))
    assert engine.partial_matches() == {"p": 2}  # the hold atom and the timer
    assert not run_.at_rest() and engine.timers.pending() == 1
    engine.process(closed("front", 10))
    assert engine.partial_matches() == {"p": 1} and engine.timers.pending() == 0
    assert run_.at_rest()


def test_a_wait_stopped_from_outside_cancels_its_timer():
    """A `within` ending the wait: its timer is cancelled, its atom unregistered."""
    engine = engine_for(f"a=Alarm -> {OPEN} where timer:within(2 min)")
    engine.process(alarm(0))
    engine.process(opened("front", 30))
    assert engine.partial_matches() == {"p": 3}  # within's timer, the hold atom, FOR's timer
    engine.advance(T0 + 120)
    assert engine.partial_matches() == {"p": 0} and engine.timers.pending() == 0
    (run_,) = engine.agents[0].source.runs.values()
    assert run_.index == {} and run_.priority_index == {}


def test_the_closing_event_reaches_the_wait_despite_the_start_key():
    """The start atom is filed under `contact = false`; the rule still takes every Door
    event, or a closing door would never reach the wait."""
    engine = engine_for(EVERY_OPEN)
    interest = engine.agents[0].source.interest
    assert interest.wants(closed("front", 0)) and interest.wants(opened("front", 0))
    (node,) = [n for n in _walk(engine.agents[0].source.node) if isinstance(n, ForNode)]
    assert node.start.key == ("contact", False) and node.hold is not None
    assert node.hold.key is None


def _walk(node):
    yield node
    for child in node.children():
        yield from _walk(child)


# ------------------------------------------------------------------ a filter that raises


def _failing(fn, raising: bool):
    """`fn` made to fail on an event whose battery is 13: raising, or (for the reference
    run) answering False."""
    def wrapped(a, m, c):
        if a is not None and a.get("battery") == 13:
            if raising:
                raise TypeError("unsupported operand for 13")
            return False
        return fn(a, m, c) if fn is not None else True
    return wrapped


FAULTS = [
    # id, which atom fails, events, matches
    ("at-the-start-it-starts-nothing", "start",
     [opened("front", 0, battery=13), opened("front", 10), closed("front", 20),
      opened("front", 30)],
     [(330, {"d": "front@30"})]),
    ("during-the-wait-it-ends-the-wait", "hold",
     [opened("front", 0), opened("front", 60, battery=13), opened("front", 70)], []),
    ("another-source-failing-changes-nothing", "hold",
     [opened("front", 0), opened("back", 60, battery=13)], [(300, {"d": "front@0"})]),
]


def _fault_run(which: str, events: list[Event], raising: bool):
    warnings: list[str] = []
    outputs: list[dict] = []
    engine = engine_for(EVERY_OPEN, warnings=warnings, outputs=outputs)
    start, hold = atom_nodes(engine.agents[0].source.node)
    atom = start if which == "start" else hold
    atom.filter = _failing(atom.filter, raising)
    for event in events:
        engine.process(event)
    engine.advance(T0 + 3600)
    return matches(outputs), warnings, engine


@pytest.mark.parametrize("case_id,which,events,expected", FAULTS, ids=[f[0] for f in FAULTS])
def test_a_filter_that_raises_is_reported_and_counts_as_false(case_id, which, events,
                                                              expected):
    found, warnings, engine = _fault_run(which, events, raising=True)
    reference, quiet, _ = _fault_run(which, events, raising=False)
    assert found == reference == expected
    assert quiet == []
    failing = [e for e in events if e.attrs.get("battery") == 13]
    when = engine.show_time(failing[0].ts)
    if case_id.startswith("another"):  # offered to the wait, but not its source: not run
        assert warnings == [] and engine.stats["rule_errors"] == 0
        return
    assert engine.stats["rule_errors"] == 1
    assert warnings == [f"rule 'p': a pattern filter failed on a Door event at {when}: "
                        "TypeError: unsupported operand for 13"]


# ------------------------------------------------------------------ partitions at rest


def _partition_run(floor: int, seed: int):
    rnd = random.Random(seed)
    PartitionRuntime.RELEASE_FLOOR = floor
    outputs: list[dict] = []
    engine = engine_for("every (d=Door(contact = false, changed(contact)) FOR 30 sec)",
                        PER_DOOR, outputs=outputs)
    newest = 0
    for i in range(3000):
        if i % 5 == 0:
            newest += 1
        door = f"door{max(0, newest - rnd.randrange(20))}"
        make = opened if rnd.random() < 0.5 else closed
        engine.process(make(door, i * 2.0))
    engine.advance(T0 + 3000 * 2.0 + 60)
    return outputs, engine


@pytest.fixture
def _floor():
    original = PartitionRuntime.__dict__["RELEASE_FLOOR"]
    yield
    PartitionRuntime.RELEASE_FLOOR = original


@pytest.mark.usefixtures("_floor")
@pytest.mark.parametrize("seed", [1, 2])
def test_doors_waiting_for_nothing_are_released_without_changing_the_output(seed):
    released, engine = _partition_run(4, seed)
    kept, reference = _partition_run(10**9, seed)
    assert released == kept
    assert len(matches(released)) > 50
    assert reference.stats["released"] == 0
    assert engine.stats["released"] > 100
    assert engine.stats["rule_errors"] == 0
