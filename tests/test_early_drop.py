"""The early drop (cep.runtime.screen) changes no output: every replay golden and every
shipped scenario, replayed with the drop and without it (CEP_EARLY_DROP=0), with
and without `--contexts`, gives the same stdout and stderr, line for line.  Nor does the
fused reading of trace lines (cep.adapters.fused): the same replays read the general way
(CEP_FUSED=0) give the same lines too.

tests/golden/replay/early-drop/ is the drop's own case: X events that no pattern atom
wants but that open partition instances (their ON START actions, context-start lines and
timers counted from the instance's start), a type nothing reads, `changed()`, a named
window, a stream filter on a constant and the partition's instance limit.  The golden
tests compare its output with its expected files, written from a replay without the drop
(`CEP_EARLY_DROP=0 CEP_UPDATE_GOLDEN=1 pytest tests/test_replay_golden.py`).
"""

import re
from datetime import UTC
from pathlib import Path

import pytest
from helpers import golden_args

from cep.checks.loader import load_paths
from cep.cli import main
from cep.cli.app import build_variant
from cep.runtime.engine import Engine
from cep.runtime.screen import OBSERVE, PASS, Screen
from cep.tools.testing.scenario import find_scenarios, load_scenario

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "replay"
OWN = GOLDEN / "early-drop"
TIMING = re.compile(r" in \d+\.\d+ s \([\d,]+ events/s\)$")


def scenario_args(path: Path) -> list[str]:
    scenario = load_scenario(path)
    args = ["replay", *map(str, scenario.rules), "--trace", str(scenario.trace)]
    if scenario.tz:
        args += ["--tz", scenario.tz]
    if scenario.until is not None:
        args += ["--until", str(scenario.until)]
    return args


CASES = [(f"golden-{case.name}", golden_args(case))
         for case in sorted(p for p in GOLDEN.iterdir() if p.is_dir())]
CASES += [(f"scenario-{path.relative_to(ROOT / 'scenarios')}", scenario_args(path))
          for path in find_scenarios([str(ROOT / "scenarios")])]


def run(args: list[str], early_drop: bool, monkeypatch, capsys,
        fused: bool = True) -> tuple[str, list[str]]:
    """stdout and stderr (the timing left out) of `cep ARGS`, with the early drop or, with
    CEP_EARLY_DROP=0, without it; with the fused reading or, with CEP_FUSED=0, without."""
    monkeypatch.setenv("CEP_EARLY_DROP", "1" if early_drop else "0")
    monkeypatch.setenv("CEP_FUSED", "1" if fused else "0")
    status = main(args)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out, [TIMING.sub("", line) for line in captured.err.splitlines()]


@pytest.mark.parametrize("contexts", [False, True], ids=["", "contexts"])
@pytest.mark.parametrize("args", [args for _, args in CASES], ids=[name for name, _ in CASES])
def test_the_drop_changes_no_output_line(args, contexts, monkeypatch, capsys):
    if contexts and "--contexts" not in args:
        args = [*args, "--contexts"]
    dropping = run(args, True, monkeypatch, capsys)
    delivering = run(args, False, monkeypatch, capsys)
    assert dropping[0].splitlines() == delivering[0].splitlines()
    assert dropping[1] == delivering[1]


@pytest.mark.parametrize("args", [args for _, args in CASES], ids=[name for name, _ in CASES])
def test_the_fused_reading_changes_no_output_line(args, monkeypatch, capsys):
    """The fused reading (cep.adapters.fused), which hands the usual line's values to the
    engine (and so to the drop) in one step, against the general way with every event
    delivered: the same stdout and stderr."""
    args = [*args, "--contexts"] if "--contexts" not in args else args
    fused = run(args, True, monkeypatch, capsys)
    general = run(args, False, monkeypatch, capsys, fused=False)
    assert fused[0].splitlines() == general[0].splitlines()
    assert fused[1] == general[1]


def own_engine() -> Engine:
    loaded = load_paths([str(OWN)])
    loaded.raise_for_errors()
    return Engine(loaded.catalog, lambda output: None, UTC)


def test_the_environment_turns_the_drop_off(monkeypatch):
    """What the comparison above relies on: CEP_EARLY_DROP=0 leaves every type unscreened;
    by default, the types only rules with constant tests and partitions read are screened,
    those nothing reads have no plan, and a named window or changed() takes every event."""
    monkeypatch.delenv("CEP_EARLY_DROP", raising=False)
    plans = own_engine().plans
    assert plans["Ev"].screen is not None and plans["Noise"].screen is not None
    assert "Unread" not in plans
    assert plans["Lux"].screen is None  # a named window takes every event
    assert plans["Door"].screen is None  # changed() remembers every event
    monkeypatch.setenv("CEP_EARLY_DROP", "0")
    assert all(plan.screen is None for plan in own_engine().plans.values())


@pytest.mark.skipif(build_variant() != "pure Python", reason="patches a class of the engine")
def test_the_own_case_passes_by_and_observes_events(monkeypatch, capsys):
    """The drop's own case does exercise it: many X events are passed by (by the screen,
    or by the fused reading applying it, several at a time) and some only observed, and devices that only ever sent X events still opened their instances
    (context-start line and ON START action)."""
    monkeypatch.delenv("CEP_EARLY_DROP", raising=False)
    verdicts: list[int] = []
    decide = Screen.decide

    def counting(self: Screen, attrs) -> int:
        verdict = decide(self, attrs)
        verdicts.append(verdict)
        return verdict

    passed: list[int] = []  # those the fused reading screened itself, given together
    pass_events = Engine.pass_events

    def counting_passed(self: Engine, count: int, ts: float) -> None:
        passed.append(count)
        pass_events(self, count, ts)

    monkeypatch.setattr(Screen, "decide", counting)
    monkeypatch.setattr(Engine, "pass_events", counting_passed)
    assert main(golden_args(OWN)) == 0
    out = capsys.readouterr().out
    assert verdicts.count(PASS) + sum(passed) > 100
    assert max(passed) > 1  # several at once
    assert verdicts.count(OBSERVE) >= 1
    assert '"context-start", "context": "PerDevice", "key": "new3"' in out
    assert '"topic": "hello/new3"' in out
    assert out.count('"rule": "hello"') == out.count('"kind": "context-start"') > 0


GENERATED_RULES = """
SET TIMEZONE 'UTC';
CREATE EVENT Ev (device STRING, etype STRING, val INT) FROM TOPIC 'dev/{device}/ev';
CREATE EVENT Raw (device STRING, v FLOAT) FROM TOPIC 'raw/{device}' PAYLOAD AS v;
CREATE CONTEXT PerDevice PARTITION BY device;

@name('hello')
CONTEXT PerDevice ON START PUBLISH 'hello/{device}' PAYLOAD 'up';

@name('ab')
CONTEXT PerDevice
SELECT a.val AS a_val, b.val AS b_val
FROM PATTERN [ every a=Ev(etype = 'A') -> b=Ev(etype = 'B') where timer:within(20 s) ];

@name('later')
CONTEXT PerDevice
SELECT a.val AS a_val
FROM PATTERN [ every a=Ev(etype = 'A') -> timer:interval(7 s) ];

@name('high')
SELECT device, v FROM Raw(v = 9.5);
"""


def generated_trace(seed: int, lines: int) -> list[str]:
    """A trace of mostly X events (screened away) among A and B events whose timers fall
    due between them, ties, new devices late on, numeric and ISO times, and some lines the
    general way must report: time going back, bad JSON, a bad value, an unknown topic."""
    import json as _json
    import random
    from datetime import datetime, timedelta

    rnd = random.Random(seed)
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    at = 0.0
    out: list[str] = []
    for n in range(lines):
        at += rnd.choice((0.0, 0.5, 1.0, 2.5))
        devices = 5 if n < lines // 2 else 9
        device = f"d{rnd.randrange(devices)}"
        moment = t0 + timedelta(seconds=at)
        ts: object = moment.isoformat(timespec="milliseconds") if rnd.random() < 0.8 \
            else moment.timestamp()
        r = rnd.random()
        if r < 0.01:
            out.append('{"ts": "2024-03-01T00:00:00.000+00:00", "topic": "dev/d1/ev", '
                       '"payload": {"etype": "X", "val": 1}}')  # time goes back
        elif r < 0.02:
            out.append('{"ts": 1, "topic": ')  # bad JSON
        elif r < 0.03:
            out.append(_json.dumps({"ts": ts, "topic": f"dev/{device}/ev",
                                    "payload": {"etype": "X", "val": "many"}}))
        elif r < 0.04:
            out.append(_json.dumps({"ts": ts, "topic": "elsewhere", "payload": {}}))
        elif r < 0.10:
            out.append(_json.dumps({"ts": ts, "topic": f"raw/{device}",
                                    "payload": rnd.choice((9.5, 3.0, "9.5", 1))}))
        else:
            etype = "A" if r < 0.16 else ("B" if r < 0.22 else "X")
            out.append(_json.dumps({"ts": ts, "topic": f"dev/{device}/ev",
                                    "payload": {"etype": etype, "val": n}}))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_generated_trace_reads_alike_every_way(seed, tmp_path, monkeypatch, capsys):
    """The fused reading, which gives the engine the events its screen turns away several
    at a time, against the general way with and without the drop: the same outputs (the
    timers falling due between screened events fire at their time, in their place), the
    same reports and the same summary (its event count)."""
    rules = tmp_path / "rules.epl"
    rules.write_text(GENERATED_RULES)
    trace = tmp_path / "trace.jsonl"
    trace.write_text("\n".join(generated_trace(seed, 3000)) + "\n")
    args = ["replay", str(rules), "--trace", str(trace), "--contexts", "--until", "2024-03-02"]
    fused = run(args, True, monkeypatch, capsys)
    general = run(args, True, monkeypatch, capsys, fused=False)
    delivering = run(args, False, monkeypatch, capsys, fused=False)
    assert fused == general == delivering
    outputs = fused[0].splitlines()
    assert sum('"rule": "later"' in line for line in outputs) > 20
    assert sum('"rule": "ab"' in line for line in outputs) > 20
    assert any("time goes back" in line for line in fused[1])
