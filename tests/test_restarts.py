"""A restart at any instant changes nothing: the engine's state, saved as JSON and read
back into a new engine of the same rules, goes on exactly as the engine would have.

Two ways: the table-driven semantics tests run again with a restart after every event
(CEP_TEST_RESTARTS=1, see tests/helpers.py), and every shipped scenario and replay golden
is replayed with a restart after every line and compared with the same replay without.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import restarted

from cep.adapters.bus import BadMessage, BusMapping
from cep.adapters.trace import TraceClock, TraceEvent, TraceReader, parse_trace_ts
from cep.checks.loader import load_paths
from cep.language.timezones import get_zone
from cep.runtime.engine import Engine
from cep.tools.testing.scenario import find_scenarios, load_scenario

ROOT = Path(__file__).resolve().parent.parent

SEMANTICS = ["test_pattern_semantics.py", "test_contexts.py", "test_windows_semantics.py",
             "test_keyed_intervals.py", "test_for_atom.py", "test_timer_at.py",
             "test_recurring_sun.py", "test_terminated_by_pattern.py", "test_windows_review.py",
             "test_time_review.py"]


def test_semantics_tests_pass_with_a_restart_after_every_event():
    env = dict(os.environ, CEP_TEST_RESTARTS="1")
    tests = ROOT / "tests"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         *[str(tests / name) for name in SEMANTICS]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def _cases() -> list[tuple[str, list[Path], Path, str | None, str | float | None]]:
    cases = []
    for path in find_scenarios([str(ROOT / "scenarios")]):
        scenario = load_scenario(path)
        cases.append((path.parent.name, scenario.rules, scenario.trace, scenario.tz,
                      scenario.until))
    for folder in sorted((ROOT / "tests" / "golden" / "replay").iterdir()):
        tz_file, until_file = folder / "tz", folder / "until"
        cases.append((f"golden-{folder.name}", [folder / "rules.epl"], folder / "trace.jsonl",
                      tz_file.read_text().strip() if tz_file.exists() else None,
                      until_file.read_text().strip() if until_file.exists() else None))
    return cases


CASES = _cases()


def _replay(rules: list[Path], trace: Path, tz_name: str | None, until: str | float | None,
            restart: bool) -> list[dict]:
    """Replay's loop in short (messages, trace events, clock marks, --until), with the
    engine replaced by a restored copy before every line when `restart`."""
    loaded = load_paths([str(p) for p in rules])
    assert loaded.ok
    zone = get_zone(tz_name or loaded.catalog.timezone)
    assert zone is not None
    outputs: list[dict] = []
    options = {"show_contexts": True, "warn": lambda message: None}
    engine = Engine(loaded.catalog, outputs.append, zone, **options)
    bus = BusMapping.from_catalog(loaded.catalog, zone)
    for record in TraceReader(trace, zone, report=lambda message: None):
        if restart:
            engine = restarted(engine, **options)
        if isinstance(record, TraceClock):
            engine.advance(record.ts)
            continue
        try:
            if isinstance(record, TraceEvent):
                events = [bus.make_event(record.type, record.ts, record.attrs)]
            else:
                events, _ = bus.decode(record.topic, record, record.ts, record.value, record.ts)
        except BadMessage:
            events = []
        if not events:
            engine.advance(record.ts)
        for event in events:
            engine.process(event)
    if until is not None:
        if restart:
            engine = restarted(engine, **options)
        engine.advance(until if isinstance(until, float | int) else
                       parse_trace_ts(str(until), zone))
    return outputs


@pytest.mark.parametrize("name,rules,trace,tz,until", CASES, ids=[c[0] for c in CASES])
def test_a_restart_after_every_line_changes_no_output(name, rules, trace, tz, until):
    straight = _replay(rules, trace, tz, until, restart=False)
    assert straight, "a case that makes no output proves nothing"
    assert _replay(rules, trace, tz, until, restart=True) == straight


def test_a_snapshot_is_plain_json():
    """No NaN, no objects JSON cannot carry: the text reads back as the same data."""
    rules, trace = next((c[1], c[2]) for c in CASES if c[0] == "home")
    loaded = load_paths([str(p) for p in rules])
    engine = Engine(loaded.catalog, lambda record: None, get_zone(loaded.catalog.timezone))
    zone = engine.tz
    bus = BusMapping.from_catalog(loaded.catalog, zone)
    for record in TraceReader(trace, zone):
        if isinstance(record, TraceClock) or isinstance(record, TraceEvent):
            continue
        for event in bus.decode(record.topic, record, record.ts, record.value, record.ts)[0]:
            engine.process(event)
    text = json.dumps(engine.snapshot(), allow_nan=False)
    assert json.loads(text) == json.loads(json.dumps(json.loads(text)))
    assert '"contexts"' in text and '"rules"' in text
