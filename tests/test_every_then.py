"""`every a -> b [within d]` has a run of its own (cep.runtime.every_then); it must behave
exactly as the general run (cep.runtime.matcher.PatternRun) would: the same outputs, the
same partial-match counts and rest, and the same snapshot after every event, over random
streams; and a snapshot either run wrote is restored by either.
"""

from __future__ import annotations

import json
import random

import pytest
from helpers import PATTERN_TYPES, T0, load

from cep.runtime.engine import Engine
from cep.runtime.events import Event
from cep.runtime.every_then import EveryThenRun, every_then_shape
from cep.runtime.matcher import PatternRun

SHAPES = [
    ("every a=A -> b=B", True),
    ("every a=A -> b=B where timer:within(10 sec)", True),
    ("every a=A(v > 2) -> b=B(v = a.v)", True),
    ("every A(v = 1) -> b=B(v = 2) where timer:within(5 sec)", True),
    ("every a=A -> b=A where timer:within(3 sec)", True),
    ("every (a=A -> b=B)", False),
    ("a=A -> b=B", False),
    ("every a=A -> b=B -> c=C", False),
    ("every a=A -> not b=B", False),
    ("every a=A -> (b=B or c=C)", False),
    ("every a=A -> timer:interval(5 sec)", False),
]


@pytest.mark.parametrize("pattern, shaped", SHAPES, ids=[p for p, _ in SHAPES])
def test_which_patterns_have_the_shape(pattern, shaped):
    loaded = load(PATTERN_TYPES + f"@name('p') SELECT * FROM PATTERN [ {pattern} ];")
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    engine = Engine(loaded.catalog, lambda output: None)
    source = engine.agents[0].source
    assert (every_then_shape(source.node) is not None) is shaped
    assert (source.shape is not None) is shaped


RULES = [
    "every a=A -> b=B",
    "every a=A -> b=B where timer:within(4 sec)",
    "every a=A(v > 2) -> b=B(v >= a.v) where timer:within(6 sec)",
    "every A(v = 1) -> b=B(v = 2) where timer:within(12 sec)",
    "every a=A -> b=A where timer:within(2 sec)",
    "every a=A(v = 3) -> b=A(v = 4)",
]


def engine_for(pattern: str, partitioned: bool, general: bool,
               monkeypatch) -> tuple[Engine, list[dict]]:
    """An engine of the pattern (per id, or not) beside a rule of another shape, and the
    list its outputs go to."""
    monkeypatch.setenv("CEP_EVERY_THEN", "0" if general else "1")
    context = "CREATE CONTEXT ById PARTITION BY id;\n" if partitioned else ""
    prefix = "CONTEXT ById " if partitioned else ""
    other = "@name('t') SELECT * FROM PATTERN [ every c=C -> timer:interval(2 sec) ];\n"
    loaded = load(PATTERN_TYPES + context + other +
                  f"@name('p') {prefix}SELECT * FROM PATTERN [ {pattern} ];")
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    outputs: list[dict] = []
    engine = Engine(loaded.catalog, outputs.append)
    engine.start(T0)
    return engine, outputs


def stream(seed: int, count: int) -> list[Event]:
    """Events of A, B and C (ids of three keys) at times with ties, values 0..5."""
    rnd = random.Random(seed)
    at = 0.0
    events = []
    for _ in range(count):
        at += rnd.choice((0.0, 0.5, 1.0, 1.0, 2.0, 3.5))
        kind = rnd.choice("AABBC")
        events.append(Event(kind, T0 + at, {"id": f"k{rnd.randrange(3)}",
                                             "v": rnd.randrange(6)}))
    return events


def snapshot_text(engine: Engine) -> str:
    return json.dumps(engine.snapshot(), allow_nan=False)


def _without_serials(data):
    if isinstance(data, dict):
        return {k: _without_serials(v) for k, v in data.items() if k != "serial"}
    if isinstance(data, list):
        return [_without_serials(v) for v in data]
    return data


def state_of(engine: Engine) -> str:
    """The snapshot's text, without the context instances' serials (a count of the
    process, which the two engines of a test share)."""
    return json.dumps(_without_serials(engine.snapshot()), allow_nan=False)


def restored(engine: Engine, general: bool, monkeypatch) -> Engine:
    monkeypatch.setenv("CEP_EVERY_THEN", "0" if general else "1")
    fresh = Engine(engine.catalog, engine.sink, engine.tz)
    fresh.restore(json.loads(snapshot_text(engine)))
    return fresh


def pattern_source(engine: Engine):
    return next(agent.source for agent in engine.agents if agent.name == "p")


@pytest.mark.parametrize("partitioned", [False, True], ids=["global", "partitioned"])
@pytest.mark.parametrize("pattern", RULES)
@pytest.mark.parametrize("seed", [1, 2])
def test_the_run_behaves_as_the_general_run(pattern, partitioned, seed, monkeypatch):
    general, general_out = engine_for(pattern, partitioned, True, monkeypatch)
    fast, fast_out = engine_for(pattern, partitioned, False, monkeypatch)
    runs = {type(run) for run in pattern_source(fast).runs.values()}
    assert runs <= {EveryThenRun} and {type(r) for r in pattern_source(general).runs.values()} \
        <= {PatternRun}
    for number, event in enumerate(stream(seed, 300)):
        general.process(Event(event.type, event.ts, dict(event.attrs)))
        fast.process(Event(event.type, event.ts, dict(event.attrs)))
        assert fast_out == general_out, number
        source, other = pattern_source(fast), pattern_source(general)
        assert source.partial_matches() == other.partial_matches()
        assert [source.at_rest(i) for i in source.runs] == [other.at_rest(i) for i in other.runs]
        assert state_of(fast) == state_of(general), number
        assert fast.timers.pending() == general.timers.pending()  # (cancelled alike)
    general.advance(general.now + 60)
    fast.advance(fast.now + 60)
    assert fast_out == general_out
    assert sum(o["rule"] == "p" for o in fast_out) >= 3


@pytest.mark.parametrize("pattern", RULES)
def test_snapshots_cross_between_the_runs(pattern, monkeypatch):
    """Saved by one run and restored by the other, every 25 events: the same outputs as a
    run never restarted; restored runs are taken over by the pattern's own run."""
    events = stream(7, 400)
    plain, plain_out = engine_for(pattern, True, False, monkeypatch)
    crossing, crossing_out = engine_for(pattern, True, True, monkeypatch)
    general = True
    for number, event in enumerate(events):
        plain.process(Event(event.type, event.ts, dict(event.attrs)))
        crossing.process(Event(event.type, event.ts, dict(event.attrs)))
        if number % 25 == 24:
            general = not general
            crossing = restored(crossing, general, monkeypatch)
            kinds = {type(run) for run in pattern_source(crossing).runs.values()}
            assert kinds == ({PatternRun} if general else {EveryThenRun})
            assert state_of(crossing) == state_of(plain)
    plain.advance(plain.now + 60)
    crossing.advance(crossing.now + 60)
    assert crossing_out == plain_out


def test_a_run_the_shape_cannot_keep_stays_general(monkeypatch):
    """A restored general run that is not as this run keeps its state (no wait for the
    next A, as in a state file edited by hand) goes on as a general run."""
    engine, _ = engine_for("every a=A -> b=B", False, True, monkeypatch)
    node = pattern_source(engine).node
    shape = every_then_shape(node)
    assert shape is not None
    run = PatternRun(engine, None, lambda match: None)
    run.start(node)
    assert EveryThenRun.adopt(run, shape) is not None  # as started: taken over
    run.root.child.children.clear()
    assert EveryThenRun.adopt(run, shape) is None
