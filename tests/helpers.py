"""Small helpers shared by the tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cep.checks.loader import LoadedRules, load_texts

# CEP_TEST_RESTARTS=1: run_pattern and run_rules snapshot the engine after every input, take
# the snapshot through JSON and go on with an engine restored from it (tests/test_restarts.py
# runs the semantics tests so: a restart at any instant changes no output).
RESTARTS = os.environ.get("CEP_TEST_RESTARTS") == "1"


def restarted(engine: Any, **options: Any) -> Any:
    """A new engine of the same rules with `engine`'s state, read back from JSON text."""
    from cep.runtime.engine import Engine

    data = json.loads(json.dumps(engine.snapshot(), allow_nan=False))
    fresh = Engine(engine.catalog, engine.sink, engine.tz, **options)
    fresh.restore(data)
    return fresh

def golden_args(case: Path) -> list[str]:
    """The `cep replay` arguments of a replay golden case (tests/golden/replay/NAME): its
    rules (the folder, or the files its `rules` lists), its trace, and its `until`, `tz`
    and `args` files when it has them."""
    rules = [str(case)]
    if (case / "rules").exists():
        rules = [str(case / line) for line in (case / "rules").read_text().split()]
    args = ["replay", *rules, "--trace", str(case / "trace.jsonl")]
    for option in ("until", "tz"):
        if (case / option).exists():
            args += [f"--{option}", (case / option).read_text().strip()]
    if (case / "args").exists():
        args += (case / "args").read_text().split()
    return args


PRELUDE = """
CREATE EVENT A (x INT, s STRING, f FLOAT, b BOOL, t TIMESTAMP) FROM TOPIC 'home/{s}/a';
CREATE EVENT B (v FLOAT, s STRING) FROM TOPIC 'home/b';
"""


def load(text: str, path: str = "test.epl") -> LoadedRules:
    return load_texts([(path, text)])


def diagnostics_text(loaded: LoadedRules) -> list[str]:
    """`line:col: severity: message` for every diagnostic, in file order."""
    return [f"{d.span.line}:{d.span.col}: {d.severity}: {d.message}"
            for d in loaded.diagnostics.sorted()]


# ------------------------------------------------------------------ pattern runs

PATTERN_TYPES = "".join(f"CREATE EVENT {t} (id STRING, v INT);\n" for t in "ABCDEF")
T0 = 1_700_000_000.0


def parse_events(text: str) -> list[tuple[str, float, int]]:
    """`A1 B1@2.5 C1:v=7@3` -> (id, seconds after T0, v). Without `@`, events are 1 s apart."""
    events = []
    for i, word in enumerate(text.split()):
        at = float(i)
        if "@" in word:
            word, at_text = word.split("@")
            at = float(at_text)
        v = 0
        if ":v=" in word:
            word, v_text = word.split(":v=")
            v = int(v_text)
        events.append((word, at, v))
    return events


def run_pattern(pattern: str, events: str, until: float | None = None, extra: str = ""):
    """Run `SELECT * FROM PATTERN [pattern]` over the events; return (matches, engine).

    Each match is (seconds after T0, {tag: id or [ids]}).
    """
    from cep.runtime.engine import Engine
    from cep.runtime.events import Event

    loaded = load(PATTERN_TYPES + extra + f"@name('p') SELECT * FROM PATTERN [ {pattern} ];")
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    outputs: list[dict] = []
    engine = Engine(loaded.catalog, outputs.append)
    engine.start(T0)
    for ident, at, v in parse_events(events):
        if RESTARTS:
            engine = restarted(engine)
        engine.process(Event(ident[0], T0 + at, {"id": ident, "v": v}))
    if until is not None:
        if RESTARTS:
            engine = restarted(engine)
        engine.advance(T0 + until)

    def ids(value):
        if isinstance(value, list):
            return [item["id"] for item in value]
        return value["id"] if isinstance(value, dict) else value

    matches = [(round(o["ts"] - T0, 6), {tag: ids(v) for tag, v in o["attrs"].items()
                                          if v is not None})
               for o in outputs if o["kind"] == "event"]
    return matches, engine


# ------------------------------------------------------------------ whole rule sets


def run_rules(text: str, lines: list[tuple[str, str, dict]], until: str | None = None,
              contexts: bool = True, tz: str | None = None) -> list[str]:
    """Run rules over (iso ts, topic, payload) messages; output lines, compacted for reading.

    Each output becomes `HH:MM:SS kind detail` in the rules' zone, e.g.
    `10:00:10 publish home/kitchen/ac/set {"state": "ON"}`.
    """
    import json
    from datetime import datetime

    from cep.adapters.bus import BusMapping, create_events
    from cep.adapters.trace import parse_trace_ts
    from cep.language.timezones import get_zone
    from cep.runtime.engine import Engine

    loaded = load(text)
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    zone = get_zone(tz or loaded.catalog.timezone)
    outputs: list[dict] = []
    engine = Engine(loaded.catalog, outputs.append, zone, show_contexts=contexts)
    bus = BusMapping.from_events(create_events(loaded.catalog), zone)
    for ts_text, topic, payload in lines:
        ts = parse_trace_ts(ts_text, zone)
        raw = payload if isinstance(payload, str) else json.dumps(payload)
        events, problems = bus.decode(topic, raw.encode(), ts)
        assert not problems, [problem.reason for problem in problems]
        for event in events:
            if RESTARTS:
                engine = restarted(engine, show_contexts=contexts)
            engine.process(event)
    if until is not None:
        if RESTARTS:
            engine = restarted(engine, show_contexts=contexts)
        engine.advance(parse_trace_ts(until, zone))

    def short(o: dict) -> str:
        when = datetime.fromtimestamp(o["ts"], zone).strftime("%m-%d %H:%M:%S")
        if o["kind"] == "publish":
            return f"{when} publish {o['topic']} {json.dumps(o['payload'])}"
        if o["kind"] == "event":
            return f"{when} event {o['rule']} key={json.dumps(o['key'])} {json.dumps(o['attrs'])}"
        return f"{when} {o['kind']} {o['context']} key={json.dumps(o['key'])}"

    return [short(o) for o in outputs]
