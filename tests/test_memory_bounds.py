"""Partition instances with nothing going on are released; the output never shows it.

A stream of ever new keys once kept every key's instance (about 7 KB each) for the
whole run.  Now an instance whose rules are all as they started is released and
re-created by its key's next event; the runs below compare, line for line, a replay
that releases as often as it can with one that never releases.
"""

from __future__ import annotations

import random
from datetime import UTC

import pytest

from cep.checks.loader import load_texts
from cep.runtime.contexts import PartitionRuntime
from cep.runtime.engine import Engine
from cep.runtime.events import Event

T0 = 1_700_000_000.0

PRELUDE = """
CREATE EVENT R (k STRING, v INT) FROM TOPIC 'r/{k}';
CREATE EVENT Other (v INT) FROM TOPIC 'other';
CREATE CONTEXT PerKey PARTITION BY k;
"""

RESTING = PRELUDE + """
@name('pair') CONTEXT PerKey SELECT a.v AS x, b.v AS y FROM PATTERN [ every a=R(v > 5) -> b=R(v < 3) ];
@name('within') CONTEXT PerKey SELECT a.v AS x FROM PATTERN [ every a=R(v = 9) -> b=R(v = 0) where timer:within(3 sec) ];
@name('quiet') CONTEXT PerKey SELECT a.v AS x FROM PATTERN [ every a=R(v = 1) -> (timer:interval(2 sec) and not R) ];
@name('once') CONTEXT PerKey SELECT a.v AS x FROM PATTERN [ a=R(v = 7) ];
@name('rounds') CONTEXT PerKey SELECT 1 AS n FROM PATTERN [ every [2] R(v = 4) ];
@name('until') CONTEXT PerKey SELECT 1 AS n FROM PATTERN [ every (R(v = 2) until R(v = 3)) ];
@name('both') CONTEXT PerKey SELECT 1 AS n FROM PATTERN [ every (R(v = 5) and not R(v = 6)) ];
@name('either') CONTEXT PerKey SELECT 1 AS n FROM PATTERN [ every (R(v = 5) or R(v = 6)) ];
@name('stream') CONTEXT PerKey SELECT v, context.key AS key FROM R(v > 8);
@name('global') SELECT v FROM R(v = 0);
"""

ON_START = RESTING + """
@name('hello') CONTEXT PerKey ON START PUBLISH 'started/{k}';
"""

# Rules that come back to rest: what they wait for ends (a match, a timer).
SETTLING = PRELUDE + """
@name('within') CONTEXT PerKey SELECT a.v AS x FROM PATTERN [ every a=R(v = 9) -> b=R(v = 0) where timer:within(3 sec) ];
@name('quiet') CONTEXT PerKey SELECT a.v AS x FROM PATTERN [ every a=R(v = 1) -> (timer:interval(2 sec) and not R) ];
@name('either') CONTEXT PerKey SELECT 1 AS n FROM PATTERN [ every (R(v = 5) or R(v = 6)) ];
@name('stream') CONTEXT PerKey SELECT v, context.key AS key FROM R(v > 8);
@name('global') SELECT v FROM R(v = 0);
"""

EAGER = PRELUDE + """
@name('never') CONTEXT PerKey SELECT 1 AS n FROM PATTERN [ not R(v = 8) ];
@name('stream') CONTEXT PerKey SELECT v FROM R(v > 8);
"""


def load(rules: str):
    loaded = load_texts([("rules.epl", rules)])
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    return loaded.catalog


def events(count: int, keys_every: int, seed: int, step: float = 0.4):
    """A new key every `keys_every` events; the others among the latest 20 keys."""
    rnd = random.Random(seed)
    for i in range(count):
        newest = i // keys_every
        key = newest if i % keys_every == 0 else max(0, newest - rnd.randrange(20))
        yield Event("R", T0 + i * step, {"k": f"k{key}", "v": rnd.randrange(10)})


def run(rules: str, floor: int, show_contexts: bool, count: int = 2000, keys_every: int = 5,
        seed: int = 1, **options):
    outputs: list[dict] = []
    warnings: list[str] = []
    PartitionRuntime.RELEASE_FLOOR = floor  # the fixture below puts it back
    engine = Engine(load(rules), outputs.append, UTC, warn=warnings.append,
                    show_contexts=show_contexts, **options)
    peak = 0
    for event in events(count, keys_every, seed):
        engine.process(event)
        peak = max(peak, len(engine.contexts["PerKey"].by_key))
    engine.advance(T0 + count + 60)
    return outputs, warnings, engine, peak


@pytest.fixture(autouse=True)
def _floor():
    """RELEASE_FLOOR as the class defines it, whatever a test does."""
    original = PartitionRuntime.__dict__["RELEASE_FLOOR"]
    yield
    PartitionRuntime.RELEASE_FLOOR = original


@pytest.mark.parametrize("rules, show_contexts", [
    (RESTING, False), (RESTING, True), (ON_START, False), (ON_START, True), (SETTLING, True),
    (EAGER, True)],
    ids=["patterns", "patterns --contexts", "ON START", "ON START --contexts", "settling",
         "eager"])
@pytest.mark.parametrize("seed", [1, 2])
def test_releasing_instances_changes_no_output(rules, show_contexts, seed):
    released, _, engine, peak = run(rules, 4, show_contexts, seed=seed)
    kept, _, reference, reference_peak = run(rules, 10**9, show_contexts, seed=seed)
    assert released == kept
    assert reference.stats["released"] == 0
    if rules is EAGER:  # `not R(v = 8)` matched as it started: a new run would match again
        assert engine.stats["released"] == 0
    elif rules is SETTLING:
        assert engine.stats["released"] > 300 and peak < reference_peak / 5
    else:  # most keys keep a partial match (or a finished `once`) to the end
        assert engine.stats["released"] > 30
    if show_contexts:
        starts = [o for o in released if o["kind"] == "context-start"]
        assert len(starts) == len({o["key"] for o in starts}) == 400  # once per key
    assert engine.stats["rule_errors"] == 0


def test_live_instances_stay_bounded_over_many_keys():
    """8,000 keys, a new one every 5 events: instances follow the keys in use."""
    _, warnings, engine, peak = run(SETTLING, PartitionRuntime.RELEASE_FLOOR, False,
                                    count=40_000, keys_every=5)
    assert warnings == []
    assert engine.stats["released"] > 5_000
    assert peak <= 2 * PartitionRuntime.RELEASE_FLOOR + 1
    runtime = engine.contexts["PerKey"]
    assert len(runtime.open) == len(runtime.by_key) <= peak
    assert runtime.released is None  # nothing shows an opening: no keys remembered
    assert engine.partial_matches()["within"] <= peak


CAPPED = PRELUDE + """
@name('waiting') CONTEXT PerKey SELECT a.v AS x FROM PATTERN [ a=R -> b=R(v = 100) ];
@name('everything') SELECT v FROM R;
"""


def test_a_partition_at_its_limit_refuses_new_keys_and_says_so():
    outputs, warnings, engine, peak = run(CAPPED, PartitionRuntime.RELEASE_FLOOR, False,
                                          count=1000, keys_every=5, max_instances=50)
    assert peak == 50
    assert engine.stats["released"] == 0  # each key's `a` waits for its `b`
    refused = engine.stats["refused_keys"]
    assert refused > 700
    # one report per minute of event time, counting so far: the first new key refused is
    # the 51st (about 100 s in), the trace ends at 400 s
    assert len(warnings) == 5
    assert warnings[0].startswith("context 'PerKey' has 50 instances, its limit: an event of "
                                  "a new key ('k50') belongs to no instance of it (1 so far)")
    assert "more like it since the last report" in warnings[1]
    # the rules outside the partition see every event
    assert len([o for o in outputs if o["rule"] == "everything"]) == 1000


def test_composite_parts_keep_their_instances():
    rules = PRELUDE + """
CREATE CONTEXT Busy INITIATED BY Other(v = 1) TERMINATED BY Other(v = 0);
CREATE CONTEXT BusyKey AS PerKey AND Busy;
@name('in_both') CONTEXT BusyKey SELECT v FROM R(v > 8);
@name('per_key') CONTEXT PerKey SELECT v FROM R(v > 8);
"""
    _, _, engine, peak = run(rules, 4, False, count=500, keys_every=5)
    assert engine.stats["released"] == 0 and peak == 100
