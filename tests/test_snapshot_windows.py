"""Snapshots of windows, aggregates, named windows, output rate limiting and the memory of
changed(): saved as JSON and read back, they go on as the saved ones would have.

The twin test: two engines of the same rules take the same events up to a cut; then the
second one's windows, limiters and changed() memory are emptied (their timers dropped)
and refilled from the first one's snapshot, taken through JSON text; both then take the
rest of the events, and must write the same records at the same times, with the same
timers pending.  The table-driven cases of test_windows_semantics are cut at every event
and between events.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from typing import Any

import pytest
from helpers import load
from test_windows_semantics import CHANGED, NAMED, OUTPUT, PRELUDE, T0, WINDOWS

from cep.runtime.aggregates import make_aggregator
from cep.runtime.clock import TimerQueue
from cep.runtime.engine import Engine
from cep.runtime.events import Event
from cep.runtime.rate import OutputLimiter
from cep.runtime.snapshot import Json, StateFormatError, StateReader, StateWriter
from cep.runtime.windows import EventWindow, GroupedWindow

# ------------------------------------------------------------------ the twin harness


def _engine(rules: str, outputs: list[dict]) -> Engine:
    loaded = load(PRELUDE + rules)
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    engine = Engine(loaded.catalog, outputs.append)
    engine.start(T0)
    return engine


def _instances(engine: Engine) -> list[Any]:
    found = [engine.global_instance]
    for runtime in engine.contexts.values():
        found += runtime.open
    return found


def _windows_of(agent: Any) -> dict[Any, GroupedWindow]:
    return getattr(getattr(agent, "source", None), "windows", {})


def snapshot_parts(engine: Engine) -> Json:
    """The sections of this part of the state, through JSON text (as a checkpoint is)."""
    w = StateWriter()
    for instance in _instances(engine):
        w.add_instance(instance)
    state = {
        "changes": engine.changes.snapshot(w),
        "windows": engine.windows.snapshot(w),
        "rules": [[agent.limiter.snapshot(w) if agent.limiter is not None else None,
                   [[w.instance(i), window.snapshot(w)]
                    for i, window in _windows_of(agent).items()]]
                  for agent in engine.agents]}
    return json.loads(json.dumps({"state": state, "events": w.events}, allow_nan=False))


def _clear_window(window: EventWindow) -> None:
    """As built: expressions hold the named windows themselves, so they are emptied."""
    window.disarm()
    window.entries.clear()
    window.by_key.clear()
    window.seq = 0


def restore_parts(engine: Engine, saved: Json) -> StateReader:
    """Empty the engine's windows, limiters and changed() memory (dropping their timers)
    and fill them from `saved`."""
    for window in engine.windows.contents.values():
        _clear_window(window)
    for agent in engine.agents:
        if agent.limiter is not None:
            for state in agent.limiter.instances.values():
                if state.timer is not None:
                    state.timer.cancel()
        for window in _windows_of(agent).values():
            window.disarm()
    queue = engine.timers  # the cancelled timers out, so that restored ones take their place
    queue.heap[:] = [entry for entry in queue.heap if not entry[3].cancelled]
    heapq.heapify(queue.heap)
    queue.cancelled_entries = 0
    for sources in engine.changes.memory.values():
        sources.clear()

    r = StateReader(saved["events"], queue)
    for number, instance in enumerate(_instances(engine)):
        r.add_instance(number, instance)
    state = saved["state"]
    engine.changes.restore(state["changes"], r)
    engine.windows.restore(state["windows"], r)
    for agent, (limiter, windows) in zip(engine.agents, state["rules"], strict=True):
        if agent.limiter is not None:
            agent.limiter = OutputLimiter(agent.info.rule.output, engine, agent.release)
            agent.limiter.restore(limiter, r)
        if windows:
            source = agent.source
            source.windows.clear()
            for number, body in windows:
                window = GroupedWindow(source.spec, source.slot.specs, engine.schedule,
                                       engine.env.now)
                window.restore(body, r)
                source.windows[r.instance(number)] = window
    return r


def _pending(engine: Engine) -> list[tuple[float, int, int]]:
    return sorted(entry[:3] for entry in engine.timers.heap if not entry[3].cancelled)


def _feed(engine: Engine, item: tuple) -> None:
    seconds, type_name, attrs = item[:3]
    source = item[3] if len(item) > 3 else None
    engine.process(Event(type_name, T0 + seconds, dict(attrs), source))


def twin(rules: str, events: list[tuple], cut: int, until: float | None,
         pause: float | None = None) -> None:
    """Cut after `cut` events (and, with `pause`, after advancing to it)."""
    first: list[dict] = []
    second: list[dict] = []
    a, b = _engine(rules, first), _engine(rules, second)
    for engine in (a, b):
        for item in events[:cut]:
            _feed(engine, item)
        if pause is not None:
            engine.advance(T0 + pause)
    saved = snapshot_parts(a)
    r = restore_parts(b, saved)
    assert r.timer_count == sum(1 for _ in _saved_timers(saved["state"]))
    assert snapshot_parts(b) == saved  # read back, it writes what it read
    assert _pending(a) == _pending(b)
    assert first == second
    for item in events[cut:]:
        _feed(a, item)
        _feed(b, item)
        assert first == second and _pending(a) == _pending(b)
    if until is not None:
        a.advance(T0 + until)
        b.advance(T0 + until)
    assert first == second
    assert snapshot_parts(a) == snapshot_parts(b)


def _saved_timers(data: Json) -> Any:
    """Every saved timer in a section (a `timer` field that is not null)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "timer" and value is not None:
                yield value
            else:
                yield from _saved_timers(value)
    elif isinstance(data, list):
        for item in data:
            yield from _saved_timers(item)


def _cuts(events: list[tuple]) -> list[tuple[int, float | None]]:
    cuts: list[tuple[int, float | None]] = [(k, None) for k in range(len(events) + 1)]
    for k in range(1, len(events)):
        before, after = events[k - 1][0], events[k][0]
        if after > before:
            cuts.append((k, (before + after) / 2))
    return cuts


OWN = [
    ("unique-groups-leave-in-any-order",
     "SELECT room, count(*) AS n, min(value) AS lo, max(value) AS hi, first(value) AS f, "
     "last(value) AS l, list(value) AS vs, sum(value) AS s, avg(value) AS m, "
     "stddev(value) AS sd FROM Temp#unique(value) GROUP BY room;",
     [(i * 0.5, "Temp", {"room": "ab"[i % 2], "value": float(v)})
      for i, v in enumerate([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9])]),
    ("floats-that-round",
     "SELECT sum(value) AS s, avg(value) AS m, stddev(value) AS sd, min(value) AS lo, "
     "max(value) AS hi FROM Temp#length(4);",
     [(i, "Temp", {"room": "a", "value": v})
      for i, v in enumerate([0.1, 0.2, 0.3, 1e16, 0.1, -1e16, 0.7, 1 / 3, 2 / 3, 0.1])]),
    ("a-time-window-per-instance-with-groups",
     "CONTEXT PerRoom SELECT room, value, count(*) AS n, avg(value) AS m "
     "FROM Reading#time(10 sec) GROUP BY value;",
     [(t, "Reading", {"room": r, "value": v}) for t, r, v in
      [(0, "a", 1), (1, "b", 1), (2, "a", 2), (7, "a", 1), (11, "b", 3), (12.5, "a", 2),
       (30, "a", 1), (31, "b", 1), (39.9, "b", 2)]]),
    ("last-held-results-with-insert-into",
     "INSERT INTO Hot SELECT room, max(value) AS hi FROM Reading#length(3) GROUP BY room "
     "OUTPUT LAST EVERY 30 sec PUBLISH 'hot/{room}' PAYLOAD {\"hi\": hi};\n"
     "CREATE WINDOW Hots#time(45 sec) FROM Hot;\n"
     "SELECT (SELECT count(*) FROM Hots) AS n, Hots.hi AS h FROM Tick;",
     [(1, "Reading", {"room": "a", "value": 3}), (2, "Reading", {"room": "b", "value": 5}),
      (20, "Reading", {"room": "a", "value": 1}), (31, "Tick", {"n": 1}),
      (50, "Reading", {"room": "b", "value": 9}), (70, "Tick", {"n": 2}),
      (100, "Tick", {"n": 3}), (130, "Tick", {"n": 4})]),
    ("on-rule-last-and-first-per-instance",
     "CONTEXT PerRoom ON Bell OUTPUT LAST EVERY 20 sec PUBLISH 'last/{room}';\n"
     "CONTEXT PerRoom ON Bell OUTPUT FIRST EVERY 20 sec PUBLISH 'first/{room}';",
     [(0, "Bell", {"room": "a"}), (5, "Bell", {"room": "b"}), (15, "Bell", {"room": "a"}),
      (21, "Bell", {"room": "a"}), (45, "Bell", {"room": "b"})]),
    ("named-unique-and-time-windows",
     "CREATE WINDOW People#unique(person) FROM Presence;\n"
     "CREATE WINDOW Recent#time(5 sec) FROM Presence;\n"
     "SELECT (SELECT count(*) FROM People WHERE state = 'home') AS home, "
     "(SELECT count(*) FROM Recent) AS recent, People['bob'].state AS bob FROM Tick;",
     [(0, "Presence", {"person": "bob", "state": "home"}),
      (1, "Presence", {"person": "ann", "state": "home"}),
      (2, "Tick", {"n": 1}), (3, "Presence", {"person": "bob", "state": "away"}),
      (6.5, "Tick", {"n": 2}), (7, "Presence", {"person": "eve", "state": "home"}),
      (20, "Tick", {"n": 3})]),
    ("changed-with-null-and-several-attributes",
     "SELECT door FROM Door(changed(contact));\n"
     "SELECT door FROM Door(changed(door));",
     [(0, "Door", {"door": "a", "contact": True}, "t1"), (1, "Door", {"door": "a"}, "t1"),
      (2, "Door", {"door": "b"}, "t1"), (3, "Door", {"door": "b", "contact": True}, "t2"),
      (4, "Door", {"door": "b", "contact": True}, "t2")]),
]

CASES = ([(name, rules, events, None) for name, rules, events, _ in WINDOWS + NAMED + CHANGED]
         + [(name, rules, events, 300.0) for name, rules, events, _ in OUTPUT]
         + [(name, rules, events, 200.0) for name, rules, events in OWN])


@pytest.mark.parametrize("rules,events,until", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_restored_part_goes_on_as_the_saved_one_would_have(rules, events, until):
    for cut, pause in _cuts(events):
        twin(rules, events, cut, until, pause)


def test_a_snapshot_is_taken_as_the_window_is_and_a_timer_keeps_its_place():
    # entries that are due to leave but have not (nobody read the window) are saved as
    # they are; the restored window's timer fires when the saved one would have
    rules = "SELECT count(*) AS n FROM Reading#time(8 sec);"
    events = [(t / 10, "Reading", {"room": "a", "value": t}) for t in range(0, 100, 3)]
    first: list[dict] = []
    a = _engine(rules, first)
    for item in events:
        _feed(a, item)
    a.advance(T0 + 9.95)
    (window,) = a.agents[0].source.windows.values()
    assert window.timer is not None
    due = window.timer.deadline
    saved = snapshot_parts(a)
    (body,) = saved["state"]["rules"][0][1]
    assert body[1]["timer"][0] == due and body[1]["timer"][1] == -2
    b = _engine(rules, [])
    for item in events:
        _feed(b, item)
    b.advance(T0 + 9.95)
    restore_parts(b, saved)
    (restored,) = b.agents[0].source.windows.values()
    assert list(restored.entries) != [] and restored.timer.deadline == due
    b.advance(due)
    a.advance(due)
    assert snapshot_parts(a) == snapshot_parts(b) and restored.timer is not window.timer


# ------------------------------------------------------------------ aggregators


def _round_trip(aggregator: Any) -> Any:
    w = StateWriter()
    data = json.loads(json.dumps(aggregator.snapshot(w), allow_nan=False))
    return data, StateReader(json.loads(json.dumps(w.events)), TimerQueue())


@pytest.mark.parametrize("name", ["count", "count(*)", "sum", "avg", "stddev", "min", "max",
                                  "first", "last", "list"])
@pytest.mark.parametrize("fifo", [True, False])
def test_an_aggregator_goes_on_from_its_exact_accumulators(name, fifo):
    rng = random.Random(7)
    counts_all = name == "count(*)"
    name = "count" if counts_all else name
    live = make_aggregator(name, counts_all, fifo)
    kept: list[tuple[int, Any]] = []
    pool = [0.1, 0.2, 0.3, 1e16, -1e16, 1 / 3, None, 7, -2, math.nan, math.inf, 2.5]

    def step(aggregators: list[Any], seq: int) -> None:
        if kept and rng.random() < 0.4:
            index = 0 if fifo else rng.randrange(len(kept))
            old_seq, old = kept.pop(index)
            for aggregator in aggregators:
                aggregator.remove(old_seq, old)
        else:
            value = True if counts_all else rng.choice(pool)
            kept.append((seq, value))
            for aggregator in aggregators:
                aggregator.add(seq, value)

    for seq in range(1, 60):
        step([live], seq)
    data, r = _round_trip(live)
    restored = make_aggregator(name, counts_all, fifo)
    restored.restore(data, r)
    w = StateWriter()
    assert json.loads(json.dumps(restored.snapshot(w), allow_nan=False)) == data
    for seq in range(60, 200):
        step([live, restored], seq)
        a, b = live.result(), restored.result()
        assert repr(a) == repr(b)  # floats to the last bit, NaN as NaN


def test_a_sum_keeps_what_its_rounding_lost():
    live = make_aggregator("sum", False, True)
    for seq, value in enumerate([1e16, 1.0, 1.0, -1e16], 1):
        live.add(seq, value)
    data, r = _round_trip(live)
    restored = make_aggregator("sum", False, True)
    restored.restore(data, r)
    assert restored.result() == live.result() == 2.0  # not 0.0: the compensation came too


# ------------------------------------------------------------------ damaged data


def _saved_of(rules: str, events: list[tuple]) -> tuple[Engine, Json]:
    a = _engine(rules, [])
    for item in events:
        _feed(a, item)
    return a, snapshot_parts(a)


def _damaged(rules: str, events: list[tuple], damage: Any) -> None:
    _, saved = _saved_of(rules, events)
    damage(saved["state"])
    b = _engine(rules, [])
    for item in events:
        _feed(b, item)
    with pytest.raises(StateFormatError):
        restore_parts(b, saved)


GROUPED = ("CONTEXT PerRoom SELECT room, sum(value) AS s, list(value) AS l "
           "FROM Reading#unique(value) GROUP BY room OUTPUT LAST EVERY 1 min;")
GROUPED_EVENTS = [(1, "Reading", {"room": "a", "value": 1}),
                  (2, "Reading", {"room": "a", "value": 2})]


def _window_body(state: Json) -> Json:
    return state["rules"][0][1][0][1]


def _set(path: list[Any], value: Any) -> Any:
    def damage(state: Json) -> None:
        target = state
        for step in path[:-1]:
            target = target[step] if not callable(step) else step(target)
        target[path[-1]] = value
    return damage


@pytest.mark.parametrize("damage", [
    _set([_window_body, "seq"], -1),
    _set([_window_body, "entries"], {}),
    _set([_window_body, "entries", 0], [1, 2, 3]),
    _set([_window_body, "entries", 0, 0], 5),          # out of order
    _set([_window_body, "entries", 0, 2], 999),        # no such event
    _set([_window_body, "entries", 0, 3], 7),          # no such group
    _set([_window_body, "entries", 0, 4], []),         # values of no aggregate
    _set([_window_body, "keys"], [1]),
    _set([_window_body, "keys", 0], [1, 2]),           # a list cannot be a key
    _set([_window_body, "keys", 0], 2),                # a key given twice
    _set([_window_body, "groups", 0, 0], {"$d": []}),
    _set([_window_body, "groups", 0, 1], [3]),
    _set([_window_body, "groups", 0, 1, 0], [1, 1, 3, "x", 0.0]),
    _set([_window_body, "groups", 0, 1, 1], [[2, 1], [1, 2]]),
    _set([_window_body, "timer"], [T0, -2, 1]),        # #unique sets no timer
    _set(["rules", 0, 0, "instances", 0, 0], 42),      # no such instance
    _set(["rules", 0, 0, "instances", 0, 1, "held"], [[1]]),
    _set(["rules", 0, 0, "instances", 0, 1, "prune"], "x"),
    _set(["rules", 0, 0, "instances", 0, 1, "timer"], "x"),
    _set(["rules", 0, 0, "parked"], [[[1], 2.0]]),
])
def test_damaged_window_and_limiter_data_is_refused(damage):
    _damaged(GROUPED, GROUPED_EVENTS, damage)


@pytest.mark.parametrize("damage", [
    _set(["changes"], []),
    _set(["changes", "Reading"], []),                   # no filter asks about Reading
    _set(["changes", "Door"], [["t", {"door": "x"}]]),  # not the attribute asked about
    _set(["changes", "Door"], [["t", {"contact": True}], ["t", {"contact": True}]]),
    _set(["windows"], {}),
    _set(["windows", "Nope"], {}),
    _set(["windows", "Last", "entries", 0, 1], "soon"),
    _set(["windows", "Last", "entries"], [[1, T0, 0, None, []], [2, T0, 0, None, []]]),
])
def test_damaged_memory_and_named_window_data_is_refused(damage):
    rules = "CREATE WINDOW Last#lastevent FROM Door;\nSELECT door FROM Door(changed(contact));"
    _damaged(rules, [(0, "Door", {"door": "a", "contact": True}, "t")], damage)


def test_what_changed_for_the_last_event_is_not_saved():
    # `current` answers for the event being delivered only: each read follows its observe
    a, saved = _saved_of("SELECT door FROM Door(changed(contact));",
                         [(0, "Door", {"door": "a", "contact": True}, "t")])
    assert a.changes.current == {"Door": frozenset({"contact"})}
    assert saved["state"]["changes"] == {"Door": [["t", {"contact": True}]]}
