"""Engine workloads: `python -m bench engine [--events N] [--repeat R] [--only NAME]`.

Generates traces in a temporary folder and, for each workload, reports events per second
for a full replay (decode + engine + output formatting) and the ratio to the cost of only
reading and decoding the same trace. Numbers, not pass/fail: docs/performance.md keeps
recorded results.

Workloads:
  filter     one stream rule with a filter, over one event type
  sequence   a 3-step followed-by pattern with `every`
  network    20 rules (filters and patterns) over 10 event types
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from cep.adapters.bus import BusMapping, create_events
from cep.adapters.replay import replay
from cep.adapters.trace import TraceMessage, TraceReader
from cep.checks.loader import load_texts
from cep.runtime.output import OutputWriter

T0 = 1_700_000_000.0


@dataclass
class Workload:
    name: str
    rules: str
    message: Callable[[random.Random, int], tuple[str, dict]]


def _filter_message(rnd: random.Random, i: int) -> tuple[str, dict]:
    return "home/sensor/temperature", {"value": round(rnd.uniform(15, 35), 1)}


def _sequence_message(rnd: random.Random, i: int) -> tuple[str, dict]:
    return "home/sensor/step", {"step": rnd.choice((1, 2, 3, 4)), "value": rnd.randrange(100)}


def _network_message(rnd: random.Random, i: int) -> tuple[str, dict]:
    kind = rnd.randrange(10)
    return f"home/t{kind}", {"room": f"r{rnd.randrange(5)}", "value": rnd.randrange(100)}


def _network_rules() -> str:
    lines = [f"CREATE EVENT T{k} (room STRING, value INT) FROM TOPIC 'home/t{k}';"
             for k in range(10)]
    for k in range(10):
        lines.append(f"@name('filter{k}') SELECT room, value FROM T{k}(value > 90);")
    for k in range(10):
        lines.append(f"@name('seq{k}') SELECT a.room AS room FROM PATTERN [ every "
                     f"a=T{k}(value > 95) -> b=T{(k + 1) % 10}(value < 5) "
                     f"where timer:within(10 sec) ];")
    return "\n".join(lines)


WORKLOADS = [
    Workload("filter", "CREATE EVENT Temperature (value FLOAT) FROM TOPIC "
                       "'home/sensor/temperature';\n"
                       "@name('hot') SELECT value FROM Temperature(value > 30);",
             _filter_message),
    Workload("sequence", "CREATE EVENT Step (step INT, value INT) FROM TOPIC 'home/sensor/step';\n"
                         "@name('three_steps') SELECT a.value AS a, c.value AS c FROM PATTERN [ "
                         "every a=Step(step = 1) -> b=Step(step = 2) -> c=Step(step = 3) ];",
             _sequence_message),
    Workload("network", _network_rules(), _network_message),
]


def write_trace(path: str, workload: Workload, events: int, seed: int = 42) -> None:
    rnd = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(events):
            topic, payload = workload.message(rnd, i)
            out.write(json.dumps({"ts": T0 + i * 0.05, "topic": topic, "payload": payload})
                      + "\n")


def decode_only(catalog, path: str) -> float:
    """Seconds to read and decode the trace, without the engine."""
    bus = BusMapping.from_events(create_events(catalog), UTC)
    started = time.perf_counter()
    for record in TraceReader(path, UTC, report=lambda m: None):
        if isinstance(record, TraceMessage):
            bus.decode(record.topic, record, record.ts, record.value)
    return time.perf_counter() - started


def full_replay(catalog, path: str) -> tuple[float, int]:
    """Seconds for a whole replay (output lines written to memory), and the output count."""
    sink = OutputWriter(io.StringIO(), UTC, flush=False)
    started = time.perf_counter()
    stats = replay(catalog, path, sink, UTC, report=lambda m: None)
    return time.perf_counter() - started, stats.outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000,
                        help="events per workload (default 200,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--only", choices=[w.name for w in WORKLOADS], help="one workload")
    args = parser.parse_args(argv)
    return engine_workloads(args.events, args.repeat, args.only)


def engine_workloads(events: int, repeat: int, only: str | None) -> int:
    print(f"{'workload':<10} {'events':>9} {'outputs':>8} {'decode ev/s':>12} "
          f"{'replay ev/s':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for workload in WORKLOADS:
            if only and workload.name != only:
                continue
            path = os.path.join(folder, f"{workload.name}.jsonl")
            write_trace(path, workload, events)
            loaded = load_texts([(f"{workload.name}.epl", workload.rules)])
            loaded.raise_for_errors()
            decode = statistics.median(decode_only(loaded.catalog, path)
                                       for _ in range(repeat))
            runs = [full_replay(loaded.catalog, path) for _ in range(repeat)]
            seconds = statistics.median(r[0] for r in runs)
            print(f"{workload.name:<10} {events:>9} {runs[0][1]:>8} "
                  f"{events / decode:>12,.0f} {events / seconds:>12,.0f} "
                  f"{seconds / decode:>6.2f}")
    return 0

