"""What `--view` costs a replay at full speed: `python -m bench view [--events N]`.

Generates a `bench.engine` trace, then replays it alternately without and with the view
(the view drawing real frames into an 80x24 terminal console written to /dev/null),
and prints the best times (least disturbed by other work on the machine), the
slowdown, and how much of the run went into building and drawing frames.
Numbers, not pass/fail: see docs/view.md for recorded results.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from datetime import UTC

from rich.console import Console

from bench.engine import WORKLOADS, write_trace
from cep.adapters.replay import replay
from cep.checks.loader import load_texts
from cep.runtime.output import OutputWriter
from cep.tools.view.app import ReplayView


def run(catalog, path: str, view: bool, width: int,
        height: int) -> tuple[float, int, float]:
    """(seconds, frames, seconds spent on frames) for one replay."""
    sink = OutputWriter(io.StringIO(), UTC, flush=False)
    tick = None
    shown = None
    devnull = open(os.devnull, "w", encoding="utf-8")
    try:
        if view:
            console = Console(file=devnull, force_terminal=True, width=width, height=height,
                              color_system="truecolor")
            shown = ReplayView(os.path.basename(path), path, None, console=console)
            sink = shown.tee(sink)
            tick = shown.replay_tick
            shown.start()
        started = time.perf_counter()
        replay(catalog, path, sink, UTC, report=lambda m: None, tick=tick)
        seconds = time.perf_counter() - started
    finally:
        if shown is not None:
            shown.stop()
        devnull.close()
    return seconds, (shown.frames if shown else 0), (shown.drawing if shown else 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench view", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workload", choices=[w.name for w in WORKLOADS], default="network")
    parser.add_argument("--size", default="80x24", help="terminal size WxH (default 80x24)")
    parser.add_argument("--rules", help="replay this rule file instead of a workload ...")
    parser.add_argument("--trace", help="... over this trace")
    args = parser.parse_args(argv)
    width, height = (int(n) for n in args.size.split("x"))
    workload = next(w for w in WORKLOADS if w.name == args.workload)
    if args.rules:
        from cep.checks.loader import load_paths

        loaded = load_paths([args.rules])
        name = os.path.basename(args.rules)
    else:
        loaded = load_texts([(f"{workload.name}.epl", workload.rules)])
        name = workload.name
    loaded.raise_for_errors()
    with tempfile.TemporaryDirectory() as folder:
        path = args.trace or os.path.join(folder, f"{workload.name}.jsonl")
        if not args.trace:
            write_trace(path, workload, args.events)
        else:
            with open(path, "rb") as handle:
                args.events = sum(1 for _ in handle)
        plain, viewed, frames, drawing = [], [], [], []
        for _ in range(args.repeat):
            plain.append(run(loaded.catalog, path, False, width, height)[0])
            seconds, count, spent = run(loaded.catalog, path, True, width, height)
            viewed.append(seconds)
            frames.append(count)
            drawing.append(spent)
    p, v = min(plain), min(viewed)
    print(f"{name}: {args.events:,} events, {args.size}, best of {args.repeat}")
    print(f"  without --view  {p:7.3f} s  {args.events / p:>10,.0f} events/s")
    print(f"  with --view     {v:7.3f} s  {args.events / v:>10,.0f} events/s  "
          f"({statistics.median(frames):.0f} frames, "
          f"{statistics.median(drawing) * 1000:.0f} ms drawing them)")
    share = 100 * statistics.median(drawing) / v
    print(f"  slowdown {100 * (v - p) / p:+.1f} %, frames {share:.1f} % of the run")
    return 0

