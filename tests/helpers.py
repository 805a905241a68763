"""Small helpers shared by the tests."""

from __future__ import annotations

from cep.loader import LoadedRules, load_texts

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
    from cep.engine import Engine
    from cep.events import Event

    loaded = load(PATTERN_TYPES + extra + f"@name('p') SELECT * FROM PATTERN [ {pattern} ];")
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    outputs: list[dict] = []
    engine = Engine(loaded.catalog, outputs.append)
    engine.start(T0)
    for ident, at, v in parse_events(events):
        engine.process(Event(ident[0], T0 + at, {"id": ident, "v": v}))
    if until is not None:
        engine.advance(T0 + until)

    def ids(value):
        if isinstance(value, list):
            return [item["id"] for item in value]
        return value["id"] if isinstance(value, dict) else value

    matches = [(round(o["ts"] - T0, 6), {tag: ids(v) for tag, v in o["attrs"].items()
                                          if v is not None})
               for o in outputs if o["kind"] == "event"]
    return matches, engine
