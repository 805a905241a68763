"""Memory under a stream of new partition keys: `python -m bench memory-keys [--events N]`.

Replays a generated trace in which a new partition key appears every `--every` events
(default: 2,000,000 events, a new key every 10, so 200,000 keys; each key's events come
over the next few hundred events, then it is never seen again) through per-key pattern
and stream rules, and prints the process's RSS, the live partition instances and the
instances released, every `--sample` events. Numbers, not pass/fail: docs/performance.md
keeps recorded results.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from datetime import UTC

from bench.ab import current_rss_mb

T0 = 1_700_000_000.0
STEP = 0.05  # seconds between events: 2M events are about 28 hours

RULES = """
CREATE EVENT Reading (device STRING, value INT) FROM TOPIC 'home/{device}/reading';
CREATE CONTEXT PerDevice PARTITION BY device;

@name('jump')
CONTEXT PerDevice
SELECT a.value AS before, b.value AS after
FROM PATTERN [ every a=Reading(value > 90) -> b=Reading(value < 10) where timer:within(1 min) ];

@name('high')
CONTEXT PerDevice
SELECT value FROM Reading(value > 98);

@name('fifty')
SELECT device FROM Reading(value = 50);
"""


def write_trace(path: str, events: int, every: int, seed: int = 7) -> int:
    """The trace; how many keys it has."""
    rnd = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(events):
            newest = i // every
            key = newest if i % every == 0 else max(0, newest - rnd.randrange(30))
            out.write(json.dumps({"ts": round(T0 + i * STEP, 3),
                                  "topic": f"home/d{key}/reading",
                                  "payload": {"value": rnd.randrange(100)}}) + "\n")
    return events // every + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench memory-keys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000, help="events (default 2M)")
    parser.add_argument("--every", type=int, default=10,
                        help="a new key every this many events (default 10)")
    parser.add_argument("--sample", type=int, default=200_000,
                        help="print a line every this many events (default 200,000)")
    parser.add_argument("--max-instances", type=int, default=None,
                        help="the partition's limit of live instances (default: the engine's)")
    args = parser.parse_args(argv)
    return memory_keys(args.events, args.every, args.sample, args.max_instances)


def memory_keys(events: int, every: int, sample: int, max_instances: int | None) -> int:
    from cep.adapters.replay import replay
    from cep.checks.loader import load_texts

    loaded = load_texts([("keys.epl", RULES)])
    loaded.raise_for_errors()
    outputs = [0]

    def sink(_: dict) -> None:
        outputs[0] += 1

    next_sample = [sample]

    def tick(engine, stats, final: bool) -> None:
        if final or stats.lines >= next_sample[0]:
            next_sample[0] += sample
            runtime = engine.contexts["PerDevice"]
            print(f"{stats.lines:>10,} {current_rss_mb():>8.1f} {len(runtime.open):>10,} "
                  f"{engine.stats.get('released', 0):>10,} {engine.timers.pending():>7,} "
                  f"{outputs[0]:>9,}", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "keys.jsonl")
        keys = write_trace(path, events, every)
        print(f"{events:,} events, a new partition key every {every} ({keys:,} keys)")
        print(f"{'events':>10} {'RSS MB':>8} {'instances':>10} {'released':>10} "
              f"{'timers':>7} {'outputs':>9}")
        options = {} if max_instances is None else {"max_instances": max_instances}
        started = time.perf_counter()
        stats = replay(loaded.catalog, path, sink, UTC, report=lambda m: None, tick=tick,
                       **options)
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    print(f"peak RSS {peak:.1f} MB; {stats.events:,} events in {seconds:.1f} s "
          f"({stats.events / seconds:,.0f} events/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
