"""Pattern runs saved and restored (`PatternRun.snapshot` / `PatternRun.restore`).

For each case of the pattern tables and each cut (after each event, or each step of the
clock), an engine runs the steps up to the cut; its rules' pattern runs are saved, the
data goes through JSON, and the runs are rebuilt in a second engine of the same rules
(started at the same time, its clock, event count and timer count copied), or in the same
engine in place of the old runs (PARTITION BY: the context's instances stay).  Both go
on over the remaining steps: what comes out after the cut is what an engine that never
stopped gives, and the runs end in the same state.

These are the general run's tests: every pattern runs the general way here
(CEP_EVERY_THEN=0); the run of `every a -> b` of its own is compared with it, snapshots
included, in tests/test_every_then.py.
"""

from __future__ import annotations

import heapq
import json
from typing import Any

import pytest
import test_for_atom as for_atom
import test_timer_at as timer_at
from helpers import PATTERN_TYPES, T0, load, parse_events
from test_pattern_semantics import CASES, EVERY_TABLE

from cep.runtime.agents import PatternSource
from cep.runtime.engine import Engine
from cep.runtime.events import Event
from cep.runtime.matcher import AtomIndex, PatternRun
from cep.runtime.snapshot import StateFormatError, StateReader, StateWriter

Step = Event | float  # an event to process, or a time to advance the clock to


@pytest.fixture(autouse=True)
def general_runs(monkeypatch):
    monkeypatch.setenv("CEP_EVERY_THEN", "0")


# ------------------------------------------------------------------ running


def build(text: str, start: float, outputs: list[dict]) -> Engine:
    loaded = load(text)
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    engine = Engine(loaded.catalog, outputs.append)
    engine.start(start)
    return engine


def play(engine: Engine, steps: list[Step]) -> None:
    for step in steps:
        if isinstance(step, Event):
            engine.process(step)
        else:
            engine.advance(step)


def sources(engine: Engine) -> list[PatternSource]:
    return [agent.source for agent in engine.agents
            if isinstance(getattr(agent, "source", None), PatternSource)]


def save_runs(engine: Engine) -> tuple[list[list[Any]], list[Any]]:
    """Every pattern run of every rule (in instance order), and the events table."""
    w = StateWriter()
    runs = [[run.snapshot(w) for run in source.runs.values()] for source in sources(engine)]
    return runs, w.events


def through_json(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


def index_shape(index: dict[str, AtomIndex]) -> dict[str, Any]:
    """What an index holds, by atom order: its plain atoms and keyed ones (in their order)."""
    return {type_name: ([a.order for a in atoms.plain],
                        {attr: {c: [a.order for a in states] for c, states in by.items()}
                         for attr, by in atoms.keyed.items()}, atoms.size)
            for type_name, atoms in index.items()}


def shape(run: PatternRun) -> Any:
    """What must be alike in a run and its restored copy, beyond its data."""
    return (run.live_states(), run.at_rest(), run.finished, run.eager, run.registered,
            index_shape(run.index), index_shape(run.priority_index),
            [(s.timer.deadline, s.timer.priority, s.timer.seq) for s in run.timers])


def restore_runs(engine: Engine, saved: list[list[Any]], events: list[Any]) -> None:
    """Replace every pattern run of `engine` by one restored from `saved` (same instances,
    in order), as an owner does: built as for `start`, then `restore` instead."""
    for source, datas in zip(sources(engine), saved, strict=True):
        assert len(source.runs) == len(datas)
        for old in source.runs.values():
            old.stop()
    # The old runs' timers are cancelled; they leave the heap, so that the restored timers
    # (with the seqs the old ones may have had) are the only ones there.
    queue = engine.timers
    queue.heap[:] = [entry for entry in queue.heap if not entry[3].cancelled]
    heapq.heapify(queue.heap)
    queue.cancelled_entries = 0
    r = StateReader(events, queue)
    for source, datas in zip(sources(engine), saved, strict=True):
        for (instance, old), data in zip(list(source.runs.items()), datas, strict=True):
            run = PatternRun(old.engine, old.ctx, old.on_match, old.owner, old.priority)
            run.restore(source.node, data, r)
            source.runs[instance] = run


def check_restart(text: str, start: float, steps: list[Step], cut: int,
                  fresh: bool = True) -> None:
    """Cut after `steps[:cut]`: the restored runs go on exactly as the saved ones."""
    straight: list[dict] = []
    reference = build(text, start, straight)
    play(reference, steps)

    outputs: list[dict] = []
    engine = build(text, start, outputs)
    play(engine, steps[:cut])
    before = [[shape(run) for run in source.runs.values()] for source in sources(engine)]
    saved, events = through_json(save_runs(engine))
    at_cut = len(outputs)
    if fresh:  # a second engine, where the first one was
        old = engine
        outputs = []
        engine = build(text, start, outputs)
        engine.now, engine.event_seq = old.now, old.event_seq
        engine.timers.seq = old.timers.seq
        w = StateWriter()
        changes = through_json(old.changes.snapshot(w))
        engine.changes.restore(changes, StateReader(through_json(w.events), engine.timers))
    mark = len(outputs)
    restore_runs(engine, saved, events)
    assert len(outputs) == mark, "restoring emits nothing"
    after = [[shape(run) for run in source.runs.values()] for source in sources(engine)]
    assert after == before
    again, again_events = through_json(save_runs(engine))
    assert (again, again_events) == (saved, events), "a restored run saves as it was saved"

    play(engine, steps[cut:])
    assert outputs[mark:] == straight[at_cut:], "what follows the cut differs"
    assert through_json(save_runs(engine)) == through_json(save_runs(reference))


def cuts(steps: list[Step]) -> range:
    return range(len(steps) + 1)


# ------------------------------------------------------------------ the pattern tables


def pattern_steps(events: str, until: float | None) -> list[Step]:
    steps: list[Step] = [Event(ident[0], T0 + at, {"id": ident, "v": v})
                         for ident, at, v in parse_events(events)]
    if until is not None:
        steps.append(T0 + until)
    return steps


def pattern_text(pattern: str) -> str:
    return PATTERN_TYPES + f"@name('p') SELECT * FROM PATTERN [ {pattern} ];"


MORE = [
    # keyed atoms (`attr = constant`): several groups in one index, and under `not`
    ("keyed-groups", "every (a=A(v = 1) or b=A(v = 2) or c=A)",
     "A1:v=1 A2:v=2 A3 A4:v=2 A5:v=1"),
    ("keyed-not", "every a=A(v = 1) -> (b=B(v = 2) and not c=C(v = 3))",
     "A1:v=1 A2:v=1 C1:v=1 B1:v=2 C2:v=3 B2:v=2 A3:v=1 B3:v=2"),
    ("keyed-followed-by", "every a=A(v = 1) -> every b=B(v = a.v)",
     "A1:v=1 B1:v=1 B2:v=2 A2:v=1 B3:v=1"),
    # within around several steps, with nots and repetitions inside
    ("within-not", "every a=A -> ((b=B and not c=C) where timer:within(3 sec))",
     "A1@0 A2@1 C1@2 B1@3 A3@5 B2@7.5 A4@9 B3@13"),
    ("repeat-every", "every [2] (a=A -> b=B)", "A1 B1 A2 A3 B2 B3 A4 B4"),
    ("repeat-within", "every [3] a=A where timer:within(4 sec)", "A1@0 A2@1 A3@2 A4@5 A5@9"),
    ("until-with-not", "every (a=A until (b=B and not c=C))", "A1 C1 A2 B1 A3 B2"),
    ("bounded-until-every", "every ([2] a=A until b=B)", "A1 A2 A3 B1 A4 B2 A5 A6"),
    ("and-three", "every (a=A and b=B and c=C)", "A1 B1 A2 C1 B2 C2 A3"),
    ("and-every-not", "every a=A and not b=B", "A1 A2 B1 A3"),
    ("or-intervals", "every (timer:interval(3 sec) or a=A)", "A1@1 A2@2 A3@7"),
    ("and-interval-every", "every a=A -> (timer:interval(2 sec) and every b=B)",
     "A1@0 B1@1 A2@1.5 B2@2 B3@3 B4@4"),
    ("done-once", "a=A -> b=B", "A1 B1 A2 B2"),
    ("false-at-once", "a=A where timer:within(1 sec)", "B1@2 A1@3"),
]


@pytest.mark.parametrize("case_id,pattern,events,expected", CASES, ids=[c[0] for c in CASES])
def test_pattern_cases_restart_anywhere(case_id, pattern, events, expected):
    steps = pattern_steps(events, 100)
    for cut in cuts(steps):
        check_restart(pattern_text(pattern), T0, steps, cut)


@pytest.mark.parametrize("pattern,events,expected", EVERY_TABLE, ids=[c[0] for c in EVERY_TABLE])
def test_every_table_restarts_anywhere(pattern, events, expected):
    steps = pattern_steps(events, None)
    for cut in cuts(steps):
        check_restart(pattern_text(pattern), T0, steps, cut)


@pytest.mark.parametrize("case_id,pattern,events", MORE, ids=[c[0] for c in MORE])
def test_more_patterns_restart_anywhere(case_id, pattern, events):
    steps = pattern_steps(events, 30)
    for cut in cuts(steps):
        check_restart(pattern_text(pattern), T0, steps, cut)


# ------------------------------------------------------------------ FOR and timer:at


@pytest.mark.parametrize("case", for_atom.CASES, ids=[c[0] for c in for_atom.CASES])
def test_for_cases_restart_anywhere(case):
    _, pattern, events, context, _ = case
    text = for_atom.PRELUDE + f"@name('p') {context} SELECT * FROM PATTERN [ {pattern} ];"
    steps: list[Step] = [*events, T0 + 3600]
    for cut in cuts(steps):
        # in a partition the context's instances stay: the runs are restored in place
        check_restart(text, T0, steps, cut, fresh=not context)


def test_timer_at_restarts_anywhere():
    zone = timer_at.BERLIN_ZONE
    start = timer_at.at("2026-06-19T12:00", zone)  # a Friday
    steps: list[Step] = [start + hours * 3600 for hours in range(6, 7 * 24 + 1, 6)]
    text = timer_at.ENGINE_RULES + \
        "@name('both') SELECT 1 AS one FROM PATTERN [ every (timer:at(07:30) or " \
        "timer:at(SUNRISE)) ];"
    for cut in cuts(steps):
        check_restart(text, start, steps, cut)


# ------------------------------------------------------------------ whole engines


def check_engine_restart(text: str, start: float, steps: list[Step], cut: int) -> None:
    """As `check_restart`, with the whole engine saved and restored (`Engine.snapshot`)."""
    straight: list[dict] = []
    play(build(text, start, straight), steps)
    outputs: list[dict] = []
    engine = build(text, start, outputs)
    play(engine, steps[:cut])
    at_cut = len(outputs)
    fresh = Engine(engine.catalog, outputs.append)
    fresh.restore(through_json(engine.snapshot()))
    assert len(outputs) == at_cut, "restoring emits nothing"
    play(fresh, steps[cut:])
    assert outputs == straight


@pytest.mark.parametrize("case", for_atom.CASES, ids=[c[0] for c in for_atom.CASES])
def test_for_cases_in_a_restored_engine(case):
    _, pattern, events, context, _ = case
    text = for_atom.PRELUDE + f"@name('p') {context} SELECT * FROM PATTERN [ {pattern} ];"
    steps: list[Step] = [*events, T0 + 3600]
    for cut in cuts(steps):
        check_engine_restart(text, T0, steps, cut)


def test_timer_at_in_a_restored_engine():
    start = timer_at.at("2026-06-19T12:00", timer_at.BERLIN_ZONE)
    steps: list[Step] = [start + hours * 3600 for hours in range(6, 7 * 24 + 1, 6)]
    for cut in cuts(steps):
        check_engine_restart(timer_at.ENGINE_RULES, start, steps, cut)


# ------------------------------------------------------------------ the data


def saved_run(pattern: str, events: str) -> tuple[Engine, dict, list]:
    engine = build(pattern_text(pattern), T0, [])
    play(engine, pattern_steps(events, None))
    (runs,), table = through_json(save_runs(engine))
    return engine, runs[0], table


def test_a_finished_run_round_trips():
    engine, data, table = saved_run("a=A -> b=B", "A1 B1")
    assert data["f"] is True and data["c"]["off"] is True
    (source,) = sources(engine)
    (old,) = source.runs.values()
    run = PatternRun(old.engine, old.ctx, old.on_match, old.owner, old.priority)
    run.restore(source.node, data, StateReader(table, engine.timers))
    assert run.finished and not run.at_rest() and run.live_states() == 0


def test_the_data_names_positions_not_nodes():
    _, data, table = saved_run("every a=A -> b=B", "A1 A2")
    steps = data["c"]["c"]  # the root's child: a followed-by, its children by step
    assert data["n"] == 5
    assert [step for step, _ in steps] == [0, 1, 1]
    assert steps[0][1] == {"m": {}, "c": [{"m": {}, "b": 2, "o": 5}]}  # the every
    assert steps[1][1] == {"m": {"a": 0}, "b": 1, "o": 2}
    assert [event[0] for event in table] == ["A", "A"]


@pytest.mark.parametrize("damage", [
    lambda d: d.pop("n"),
    lambda d: d.update(f="yes"),
    lambda d: d["c"].update(c=[[5, {}]]),
    lambda d: d["c"]["c"][1].append(0),
    lambda d: d["c"]["c"][1][1].update(o="2"),
    lambda d: d["c"]["c"][1][1].update(m=[1]),
    lambda d: d["c"]["c"][1][1].update(m={"a": 7}),
    lambda d: d["c"]["c"][2][1].update(o=2),   # two atoms of one order
    lambda d: d["c"]["c"][2][1].update(o=9),   # past the atoms registered
    lambda d: d["c"]["c"][0][1].update(off="no"),
    lambda d: d["c"]["c"][0][1].update(c=None),
    lambda d: d["c"]["c"][0][1].pop("m"),
])
def test_damaged_data_is_refused(damage):
    engine, data, table = saved_run("every a=A -> b=B", "A1 A2")
    damage(data)
    (source,) = sources(engine)
    run = PatternRun(engine, None, lambda match: None)
    with pytest.raises(StateFormatError):
        run.restore(source.node, data, StateReader(table, engine.timers))
