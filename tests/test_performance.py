"""What the performance work must not change, and memory that must not grow.

- Atoms indexed by an `attr = constant` filter behave exactly like atoms whose
  filter is evaluated (same matches, same order).
- The side-by-side benchmark's generator and `bench/ab.epl` give the match count
  Siddhi gives on the same stream.
- A long replay with `within` windows keeps its live state, timer heap and traced
  memory flat after warm-up.

No timings here: numbers are in docs/performance.md (`python -m bench engine`).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tracemalloc
from datetime import UTC
from pathlib import Path

import pytest
from helpers import T0, load, run_pattern

from bench.ab import RULES, edge_pairs, write_ab
from cep.adapters.replay import replay
from cep.checks.loader import load_texts
from cep.runtime.clock import TimerQueue
from cep.runtime.engine import Engine
from cep.runtime.events import Event
from cep.runtime.every_then import EveryThenRun
from cep.runtime.output import OutputWriter

# ------------------------------------------------------------------ the atom index

# Each pattern is run twice: with `v = k` (indexed) and with `v + 0 = k` (the same
# filter, not indexable), over the same random stream: the matches must be identical.
INDEXED_PATTERNS = [
    "every a=A(v = 1) -> b=B(v = 2)",
    "every a=A(v = 1) -> b=A",
    "every a=A -> b=A(v = 1)",
    "every a=A(v = 1) -> every b=A(v = 2)",
    "every a=A(v = 1) -> b=A(v = 1) where timer:within(5 sec)",
    "every a=A(v = 1 and id != 'A3') -> b=B(v = 2 or v = 3)",
    "every a=A(v = 2) -> (b=B(v = 1) and not c=C(v = 1))",
    "every (a=A(v = 1) or b=A(v = 2)) -> c=C(v = 3)",
    "every a=A(v = 1) -> b=B(v = a.v)",
    "every [2] a=A(v = 1) -> b=B(v = 2)",
    "every a=A(v = 1) -> b=B(v = 2) until c=C(v = 1)",
]


def _stream(seed: int, count: int = 120) -> str:
    rnd = random.Random(seed)
    return " ".join(f"{rnd.choice('ABC')}{i}:v={rnd.randrange(4)}@{i * 0.7:.1f}"
                    for i in range(count))


@pytest.mark.parametrize("pattern", INDEXED_PATTERNS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_indexed_atoms_match_like_evaluated_filters(pattern, seed):
    plain = pattern.replace("v = ", "v + 0 = ")
    events = _stream(seed)
    indexed_matches, _ = run_pattern(pattern, events, until=200)
    plain_matches, _ = run_pattern(plain, events, until=200)
    assert indexed_matches == plain_matches


@pytest.mark.parametrize("pattern,events,expected", [
    ("every a=A(1 = v)", "A1:v=1 A2:v=2", [(0, {"a": "A1"})]),
    ("every a=A(v = 1.0)", "A1:v=1 A2:v=2", [(0, {"a": "A1"})]),
    ("every a=A(v = 1 and id = 'A2')", "A1:v=1 A2:v=1", [(1, {"a": "A2"})]),
    ("every a=A(id = 'A1' and v = 1)", "A1:v=1 A1:v=2", [(0, {"a": "A1"})]),
    ("every a=A(v = null)", "A1:v=0", []),
])
def test_indexed_atom_forms(pattern, events, expected):
    matches, _ = run_pattern(pattern, events)
    assert matches == expected


def test_atom_index_empties_when_atoms_stop(monkeypatch):
    """(The general run's index: `every a -> b` runs the general way here.  Its own run,
    cep.runtime.every_then, keeps no entry either.)"""
    pattern = "every a=A(v = 1) -> b=B(v = 2) where timer:within(2 sec)"
    events = "A1:v=1@0 A2:v=1@1 B1:v=2@1.5 A3:v=1@2"
    _, engine = run_pattern(pattern, events, until=60)
    [run] = engine.agents[0].source.runs.values()
    assert isinstance(run, EveryThenRun)
    assert not run.waiting and run.live_states() == 1 and engine.timers.pending() == 0
    monkeypatch.setenv("CEP_EVERY_THEN", "0")
    _, engine = run_pattern(pattern, events, until=60)
    [run] = engine.agents[0].source.runs.values()
    assert run.index.keys() == {"A"}  # only the every's waiting `a`
    atoms = run.index["A"]
    assert atoms.size == 1 and not atoms.plain and list(atoms.keyed) == ["v"]
    assert list(atoms.keyed["v"]) == [1]
    assert engine.timers.pending() == 0


@pytest.mark.parametrize("pattern,plain,keyed", [
    ("every a=A(v = 1) -> b=B(v = 2 and id = 'x') where timer:within(2 sec)", set(),
     {"A": {"v": {1}}, "B": {"v": {2}}}),
    ("every a=A(v = 1) -> (b=A and not c=C(id = 'q'))", {"A"}, {"C": {"id": {"q"}}}),
    ("[2] a=A(v = 1) until b=B(v = 2) or c=C(v > 3)", {"C"}, {"A": {"v": {1}}, "B": {"v": {2}}}),
])
def test_interest_lists_what_some_atom_can_match(pattern, plain, keyed):
    _, engine = run_pattern(pattern, "")
    interest = engine.agents[0].source.interest
    assert interest.plain == plain and interest.keyed == keyed


# ------------------------------------------------------------------ the benchmark workload


def test_bench_generator_and_rules_give_siddhis_match_count(tmp_path):
    """20,000 events of the AB stream: Siddhi 5.1.7 finds 1,103 matches (measured)."""
    trace, csv = write_ab(20_000, tmp_path)
    first = json.loads(trace.read_text().splitlines()[0])
    assert first["ts"] == "2024-01-01T00:00:00.000+00:00" and first["topic"].startswith("dev/d")
    assert csv.read_text().splitlines()[1].endswith(",2024-01-01 00:00:00.050")
    loaded = load_texts([(str(RULES), RULES.read_text())])
    loaded.raise_for_errors()
    lines: list[dict] = []
    stats = replay(loaded.catalog, str(trace), lines.append, UTC, report=print)
    assert stats.events == 20_000 and stats.bad_lines == 0 and stats.bad_messages == 0
    assert sum(1 for line in lines if line["kind"] == "event") == 1_103
    assert edge_pairs(20_000) == 0  # no B exactly at a window's edge: no reason to differ


def test_output_lines_are_unchanged_by_the_cached_encoder(tmp_path):
    import io

    out = io.StringIO()
    writer = OutputWriter(out, UTC, flush=False)
    record = {"ts": 0.25, "kind": "event", "rule": "r", "attrs": {"s": "é", "n": None}}
    writer(record)
    assert out.getvalue() == json.dumps(
        {**record, "ts": "1970-01-01T00:00:00.250+00:00"}, ensure_ascii=False) + "\n"
    assert record["ts"] == 0.25  # the engine's record is not changed


# ------------------------------------------------------------------ memory


def test_timer_queue_drops_cancelled_timers_when_they_dominate():
    queue = TimerQueue()
    live = [queue.schedule(10_000.0 + i, lambda _: None) for i in range(100)]
    for i in range(50_000):  # long timers, nearly all cancelled early (as `within` does)
        queue.schedule(86_400.0 + i, lambda _: None).cancel()
    assert queue.pending() == 100
    assert len(queue.heap) <= 2 * (queue.COMPACT_ABOVE + len(live))
    fired = []
    while (timer := queue.pop_due(1e9)) is not None:
        fired.append(timer.deadline)
    assert fired == [10_000.0 + i for i in range(100)] and queue.pending() == 0


def test_cancel_after_firing_is_not_counted():
    queue = TimerQueue()
    timer = queue.schedule(1.0, lambda _: None)
    assert queue.pop_due(1.0) is timer
    timer.cancel()
    assert queue.pending() == 0 and queue.next_deadline() is None


@pytest.mark.slow  # a day of events, traced by tracemalloc
def test_a_day_of_windows_keeps_memory_flat():
    """12 simulated hours of the AB workload (sparser): after the first hour the live
    state, the timer heap and the traced memory stay where they were."""
    loaded = load(RULES.read_text())
    assert loaded.ok
    outputs = [0]

    def count(_: dict) -> None:
        outputs[0] += 1

    engine = Engine(loaded.catalog, count, UTC)
    rnd = random.Random(7)
    samples = []
    tracemalloc.start()
    try:
        for i in range(12 * 3600 // 2):  # an event every 2 s, 100 devices
            r = rnd.random()
            etype = "A" if r < 0.1 else ("B" if r < 0.2 else "X")
            engine.process(Event("Ev", T0 + 2 * i, {"device": f"d{rnd.randrange(100)}",
                                                     "etype": etype, "val": i}))
            if i % 1800 == 1799:  # every simulated hour
                samples.append((sum(engine.partial_matches().values()),
                                len(engine.timers.heap), tracemalloc.get_traced_memory()[0]))
    finally:
        tracemalloc.stop()
    assert outputs[0] > 500
    warm = samples[1:]
    live = [s[0] for s in warm]
    heap = [s[1] for s in warm]
    traced = [s[2] for s in warm]
    assert max(live) < 2 * min(live) + 50, live
    assert max(heap) < 2 * min(heap) + 100, heap
    assert traced[-1] < traced[0] * 1.1 + 64 * 1024, traced


def test_the_differential_streams_match_something():
    for pattern in INDEXED_PATTERNS[:4]:
        assert run_pattern(pattern, _stream(1), until=200)[0], pattern


# ------------------------------------------------------------------ start-up

# What only the live commands, the cluster or the terminal view use: a replay and a rule
# test load none of it (paho-mqtt alone, with the ssl, http and email modules it brings,
# was a sixth of a replay's start-up).
LIVE_ONLY = ("paho", "ssl", "http.client", "nats", "asyncio", "rich")


SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "door-opened"


@pytest.mark.parametrize("command", [
    ["replay", str(RULES), "--trace", "TRACE"],
    ["test", str(SCENARIO)],
    ["check", str(RULES)],
])
def test_offline_commands_load_no_live_library(command, tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"ts": "2024-01-01T00:00:00+00:00", "topic": "dev/d1/ev", '
                     '"payload": {"etype": "A", "val": 1}}\n', encoding="utf-8")
    args = [str(trace) if a == "TRACE" else a for a in command]
    script = ("import sys\nfrom cep.cli import main\n"
              f"status = main({args!r})\n"
              "loaded = sorted(m for m in sys.modules\n"
              f"                if m in {LIVE_ONLY!r} or m.split('.')[0] in {LIVE_ONLY!r})\n"
              "print('LOADED', status, loaded)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.stdout.strip(), result.stderr
    assert result.stdout.strip().splitlines()[-1] == "LOADED 0 []", result.stdout + result.stderr
