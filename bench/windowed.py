"""Windowed aggregates side by side with Siddhi: `python -m bench windowed`.

The workload (`bench/windowed.epl`): 1,000 rooms, one temperature reading every 1-99 ms
(uniform random gap, seed 42; 50 ms on average, so 1,000,000 readings are about 13.9
hours), each room's value a random walk around 21 °C in steps of 0.01, and per room the
mean of its readings over the last 10 minutes, reported at each reading whose room's mean
is then above 23 °C (about 2 % of readings).  `bench/SiddhiWindowed.java` states the same
query for Siddhi 5.1.7 (`#window.time(10 min)`, playback mode).  The stream is generated
here, as a trace for cep and as CSV for Siddhi, and cached as `python -m bench ab` does.

The semantics both must have: each reading enters the window, readings 10 minutes old or
older have left it (a reading at t is in the window on [t, t + 10 min)), and then one
result for the reading's room if its mean is above 23.  The bench computes that expected
output itself, from the generated stream, and compares every engine's output with it,
output by output (room, and mean within 1e-9).

Each round runs Siddhi and `cep replay` as whole processes, then, in this process, a plain
Python loop (the trace read and decoded by cep's reader and bus mapping, and per-room
running sums over a deque of the window: the least any engine must do) and reading and
decoding alone.  Wall times are compared by their medians.  `--python PATH` runs cep and
the read-and-decode measurement with that interpreter (e.g. the compiled build's; see
`python -m bench ab --help`).  `--hours H` instead replays
H simulated hours in this process and prints its RSS every hour.  These are measurements,
not pass/fail checks.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

from bench.ab import (
    T0,
    Run,
    SiddhiUnavailable,
    cache_dir,
    cached_data,
    cep_variant,
    current_rss_mb,
    in_interpreter,
    run_cep,
    run_process,
    run_siddhi,
    sampled_replay,
    siddhi_classpath,
)

BENCH_DIR = Path(__file__).resolve().parent
RULES = BENCH_DIR / "windowed.epl"
JAVA_SOURCE = BENCH_DIR / "SiddhiWindowed.java"
ROOMS = 1000
MAX_GAP_MS = 99                 # gaps are 1..99 ms, 50 on average
MEAN_GAP_MS = 50
WINDOW_MS = 10 * 60 * 1000
THRESHOLD = 23.0                # as in windowed.epl and SiddhiWindowed.java
TOLERANCE = 1e-9

Output = tuple[str, float]      # (room, mean)


# ====================================================================== data


def readings(n: int, seed: int = 42):
    """(room, value, ms after T0) of the windowed stream: the same stream for every engine.

    Each room's value is a random walk pulled back towards 21 °C (stationary spread about
    1 °C), rounded to 0.01 as a sensor reports it.
    """
    rnd = random.Random(seed)
    level = [21.0 + rnd.gauss(0.0, 1.0) for _ in range(ROOMS)]
    ms = 0
    for _ in range(n):
        ms += rnd.randint(1, MAX_GAP_MS)
        room = rnd.randrange(ROOMS)
        level[room] = 21.0 + 0.98 * (level[room] - 21.0) + rnd.gauss(0.0, 0.2)
        yield f"r{room}", round(level[room], 2), ms


def write_windowed(n: int, folder: Path, seed: int = 42) -> tuple[Path, Path]:
    """Write `windowed.jsonl` (a cep trace: the bare number as the payload of
    `home/ROOM/temp`) and `windowed.csv` (Siddhi's input) of n readings."""
    folder.mkdir(parents=True, exist_ok=True)
    trace, csv = folder / "windowed.jsonl", folder / "windowed.csv"
    with open(trace, "w", encoding="utf-8") as jl, open(csv, "w", encoding="utf-8") as cs:
        for room, value, ms in readings(n, seed):
            iso = (T0 + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
            jl.write(f'{{"ts": "{iso}+00:00", "topic": "home/{room}/temp", '
                     f'"payload": {value!r}}}\n')
            cs.write(f"{room},{value!r},{iso[:10]} {iso[11:]}\n")
    return trace, csv


def windowed_data(n: int) -> tuple[Path, Path]:
    """The n-reading trace and CSV, generated once into the cache folder."""
    return cached_data("windowed", n, write_windowed)


@dataclass
class Expected:
    outputs: list[tuple[int, str, float]]  # (the reading's index, room, mean)
    ties: int  # readings at which their room's mean is exactly THRESHOLD


def reference(n: int, closed: bool = False) -> Expected:
    """The expected outputs from the generated stream.

    A reading at t is in the window on [t, t + 10 min); with `closed`, on
    [t, t + 10 min] (a reading exactly 10 minutes old still counts).  Sums are kept as
    an engine keeps them, in floats: a reading's value subtracted when it leaves, added
    when it arrives.  Alongside, exact sums in hundredths find the ties: readings at
    which the room's mean is exactly 23.00, where only the floats' rounding decides
    whether `mean > 23` (see `decided`).
    """
    window: deque[tuple[int, str, float]] = deque()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    cents: dict[str, int] = {}
    threshold_cents = round(THRESHOLD * 100)
    found, ties = [], 0
    for index, (room, value, ms) in enumerate(readings(n)):
        edge = ms - WINDOW_MS
        while window and (window[0][0] < edge if closed else window[0][0] <= edge):
            _, old_room, old_value = window.popleft()
            sums[old_room] -= old_value
            counts[old_room] -= 1
            cents[old_room] -= round(old_value * 100)
        window.append((ms, room, value))
        total = sums[room] = sums.get(room, 0.0) + value
        count = counts[room] = counts.get(room, 0) + 1
        exact = cents[room] = cents.get(room, 0) + round(value * 100)
        ties += exact == threshold_cents * count
        if total / count > THRESHOLD:
            found.append((index, room, total / count))
    return Expected(found, ties)


# ====================================================================== in-process loops


def declarations():
    """The catalog of windowed.epl's SET and CREATE EVENT statements alone: what reading
    and decoding the trace needs (it does not need the rule)."""
    from cep.checks.loader import load_texts

    text = "\n".join(line for line in RULES.read_text(encoding="utf-8").splitlines()
                     if not line.lstrip().startswith("--"))
    kept = [part.strip() + ";" for part in text.split(";")
            if re.match(r"\s*(SET|CREATE\s+EVENT)\b", part, re.IGNORECASE)]
    loaded = load_texts([(RULES.name, "\n".join(kept))])
    loaded.raise_for_errors()
    return loaded.catalog


def decode_seconds(catalog, trace: Path, python: str | None = None) -> float:
    """Seconds to read and decode the trace in this process (or by `python`), without any
    engine."""
    if python:
        return float(in_interpreter(python, "from bench.windowed import declarations, "
                                    f"decode_seconds; print(decode_seconds(declarations(), "
                                    f"{str(trace)!r}))"))
    from bench.engine import decode_only

    return decode_only(catalog, str(trace))


def baseline(catalog, trace: Path) -> tuple[float, int]:
    """Seconds of the plain Python loop over the trace, and its output count.

    The trace read and decoded as for `decode_seconds`, then the window as a deque of
    (ms, room, value) in time order and per-room running sums and counts: readings 10
    minutes old leave, the new one enters, its room's mean is compared.
    """
    from cep.adapters.bus import BusMapping, create_events
    from cep.adapters.trace import TraceMessage, TraceReader

    bus = BusMapping.from_events(create_events(catalog), UTC)
    window: deque[tuple[int, str, float]] = deque()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    outputs = 0
    started = time.perf_counter()
    for record in TraceReader(str(trace), UTC, report=lambda m: None):
        if not isinstance(record, TraceMessage):
            continue
        events, _ = bus.decode(record.topic, record, record.ts, record.value)
        for event in events:
            now = round(event.ts * 1000)
            edge = now - WINDOW_MS
            while window and window[0][0] <= edge:
                _, room, value = window.popleft()
                sums[room] -= value
                counts[room] -= 1
            attrs = event.attrs
            room, value = attrs["room"], attrs["value"]
            window.append((now, room, value))
            total = sums[room] = sums.get(room, 0.0) + value
            count = counts[room] = counts.get(room, 0) + 1
            if total / count > THRESHOLD:
                outputs += 1
    return time.perf_counter() - started, outputs


# ====================================================================== outputs


def cep_outputs(path: Path) -> list[Output]:
    """(room, mean) of each result line of a `cep replay` output file, in order."""
    from cep.adapters.jsonlib import loads

    found = []
    with open(path, "rb") as handle:
        for line in handle:
            if b'"kind": "event"' in line:
                attrs = loads(line)["attrs"]
                found.append((attrs["room"], float(attrs["mean"])))
    return found


def siddhi_outputs(path: Path) -> list[Output]:
    """(room, mean) of each line `room,mean` SiddhiWindowed wrote, in order."""
    with open(path, encoding="utf-8") as handle:
        return [(room, float(mean)) for room, mean in
                (line.rstrip("\n").split(",") for line in handle)]


def decided(outputs: list[Output]) -> list[Output]:
    """The outputs whose mean is not a tie (exactly 23.00 in decimal).

    Readings are in hundredths, so a mean that is not exactly 23 is at least
    1 / (100 * readings in the window) away from it, far beyond 1e-9; one within 1e-9 of
    23 is a tie, which the floats' rounding puts on either side of it.
    """
    return [output for output in outputs if abs(output[1] - THRESHOLD) > TOLERANCE]


def first_difference(got: list[Output], expected: list[Output]) -> str | None:
    """Where two output sequences part (room differs, or mean by more than 1e-9)."""
    for index, ((room, mean), (want_room, want_mean)) in enumerate(zip(got, expected)):
        if room != want_room or not math.isclose(mean, want_mean, rel_tol=0.0,
                                                 abs_tol=TOLERANCE):
            return (f"output {index + 1}: ({room}, {mean!r}), expected "
                    f"({want_room}, {want_mean!r})")
    if len(got) != len(expected):
        return f"{len(got):,} outputs, expected {len(expected):,}"
    return None


def edge_outputs(n: int) -> tuple[int, list[Output]]:
    """How many readings' outputs differ between a half-open and a closed window, and
    the expected outputs of the closed one (for an engine whose edge is inclusive)."""
    open_ = {index: (room, mean) for index, room, mean in reference(n).outputs}
    closed = {index: (room, mean) for index, room, mean in reference(n, closed=True).outputs}
    differ = sum(1 for index in open_.keys() | closed.keys()
                 if index not in open_ or index not in closed
                 or abs(open_[index][1] - closed[index][1]) > TOLERANCE)
    return differ, [closed[index] for index in sorted(closed)]


# ====================================================================== the comparison


def cep_problem(python: str | None = None) -> str | None:
    """None when `python -m cep check bench/windowed.epl` passes, else what it said."""
    try:
        run_process([python or sys.executable, "-m", "cep", "check", str(RULES)],
                    cwd=cache_dir() if python else None)
    except RuntimeError as exc:
        return str(exc).splitlines()[0][:300]
    return None


def compare(events: int, repeat: int, with_siddhi: bool, python: str | None = None) -> int:
    """Run the engines and loops alternately and print medians; 0, or 1 if an engine's
    outputs differ from the expected ones in a way the bench cannot explain."""
    if not RULES.exists():
        print(f"{RULES} not found: the side-by-side bench runs from a checkout", file=sys.stderr)
        return 1
    trace, csv = windowed_data(events)
    wanted = reference(events)
    expected = [(room, mean) for _, room, mean in wanted.outputs]
    catalog = declarations()
    classpath = None
    if with_siddhi:
        try:
            classpath = siddhi_classpath(JAVA_SOURCE)
        except SiddhiUnavailable as exc:
            print(f"Siddhi not available ({exc})", file=sys.stderr)
    problem = cep_problem(python)
    if problem is not None:
        print(f"cep cannot run {RULES.name} ({problem}): cep left out", file=sys.stderr)
    cep_out = trace.with_name("cep-out.jsonl")
    siddhi_out = trace.with_name("siddhi-out.csv")
    cep_runs: list[tuple[Run, int, float]] = []
    siddhi_runs: list[tuple[Run, int]] = []
    loops: list[tuple[float, int]] = []
    decodes: list[float] = []
    for round_ in range(repeat):
        print(f"round {round_ + 1}/{repeat} ...", file=sys.stderr)
        if classpath is not None:
            siddhi_runs.append(run_siddhi(classpath, csv, "SiddhiWindowed", str(siddhi_out)))
        if problem is None:
            cep_runs.append(run_cep(trace, cep_out, RULES, python))
        loops.append(baseline(catalog, trace))
        decodes.append(decode_seconds(catalog, trace, python))

    median = statistics.median
    hours = _span_hours(trace)
    print(f"windowed workload: {events:,} readings ({hours:.1f} simulated hours), {ROOMS:,} "
          f"rooms, avg over 10 min per room > {THRESHOLD:g}; median of {repeat} run(s); "
          f"expected outputs {len(expected):,}; {cep_variant(python)}")
    print(f"{'engine':<12} {'wall s':>8} {'ev/s (wall)':>12} {'peak RSS MB':>12} {'outputs':>9} "
          f"{'CPU s':>7}")
    status = 0
    rows: list[tuple[str, float, str, int, str]] = []
    if siddhi_runs:
        siddhi_wall = median([r[0].wall for r in siddhi_runs])
        rows.append(("siddhi", siddhi_wall, f"{max(r[0].peak_rss_mb for r in siddhi_runs):.0f}",
                     siddhi_runs[0][1], f"{median([r[0].cpu for r in siddhi_runs]):.2f}"))
    if cep_runs:
        cep_wall = median([r[0].wall for r in cep_runs])
        rows.append(("cep", cep_wall, f"{max(r[0].peak_rss_mb for r in cep_runs):.0f}",
                     cep_runs[0][1], f"{median([r[0].cpu for r in cep_runs]):.2f}"))
    loop = median([seconds for seconds, _ in loops])
    decode = median(decodes)
    rows.append(("python loop", loop, "-", loops[0][1], "-"))
    for name, wall, rss, outputs, cpu in rows:
        print(f"{name:<12} {wall:>8.2f} {events / wall:>12,.0f} {rss:>12} {outputs:>9,} "
              f"{cpu:>7}")
    print(f"{'decode only':<12} {decode:>8.2f} {events / decode:>12,.0f} {'-':>12} {'-':>9}")
    print("(siddhi and cep: whole processes, start-up included; python loop and decode: in "
          "this process)")
    if siddhi_runs:
        print(f"siddhi runs: {', '.join(f'{r[0].wall:.2f}' for r in siddhi_runs)} s; its own "
              f"processing loop: {_siddhi_process_seconds(siddhi_runs):.2f} s")
    if cep_runs:
        cep_loop = median([r[2] for r in cep_runs])
        print(f"cep runs: {', '.join(f'{r[0].wall:.2f}' for r in cep_runs)} s; its replay "
              f"loop: {cep_loop:.2f} s ({events / cep_loop:,.0f} ev/s)")
        if siddhi_runs:
            print(f"cep / siddhi wall time: {cep_wall / siddhi_wall:.2f}")
        print(f"cep replay / decode = {cep_loop / decode:.2f}; cep replay / python loop = "
              f"{cep_loop / loop:.2f}")
    print(f"python loop / decode = {loop / decode:.2f}")

    if loops[0][1] != len(expected):
        print(f"PYTHON LOOP OUTPUTS DIFFER: {loops[0][1]:,}, expected {len(expected):,}")
        status = 1
    if siddhi_runs:
        status |= _check("siddhi", siddhi_outputs(siddhi_out), expected, wanted.ties, events)
    if cep_runs:
        status |= _check("cep", cep_outputs(cep_out), expected, wanted.ties, events)
    return status


def _check(engine: str, got: list[Output], expected: list[Output], ties: int,
           events: int) -> int:
    """Say whether an engine's outputs are the expected ones; 1 if not, unexplained.

    Outputs at ties are compared by count only (`decided`); with the same float
    arithmetic as the reference an engine gives the same ones, with other arithmetic
    (another order of additions, sums made afresh) it may give others.
    """
    tie_outputs = len(got) - len(decided(got))
    expected_ties = len(expected) - len(decided(expected))
    tie_note = (f"; at the {ties:,} reading(s) whose room's mean is exactly {THRESHOLD:.2f} "
                f"(no output in exact arithmetic; float rounding decides) it gave "
                f"{tie_outputs:,} outputs, plain float running sums {expected_ties:,}")
    where = first_difference(decided(got), decided(expected))
    if where is None:
        same = "all " if tie_outputs == expected_ties else ""
        print(f"{engine}: {same}{len(got):,} outputs as expected (room and mean within "
              f"{TOLERANCE:g}){tie_note}")
        return 0
    edge, closed = edge_outputs(events)
    if first_difference(decided(got), decided(closed)) is None:
        print(f"{engine}: outputs differ from the expected ones at {edge:,} readings, all "
              f"explained by its window keeping a reading exactly 10 minutes old (a closed "
              f"window, [t, t + 10 min]); the expected window is half-open{tie_note}")
        return 0
    print(f"{engine.upper()} OUTPUTS DIFFER: {where}{tie_note}")
    return 1


def _siddhi_process_seconds(runs: list[tuple[Run, int]]) -> float:
    values = [float(found.group(1)) for run, _ in runs
              if (found := re.search(r"process_s=([0-9.]+)", run.stdout))]
    return statistics.median(values) if values else float("nan")


def _span_hours(trace: Path) -> float:
    """Hours from the trace's first line to its last."""
    from datetime import datetime

    from cep.adapters.jsonlib import loads

    with open(trace, "rb") as handle:
        first = handle.readline()
        handle.seek(max(0, handle.seek(0, 2) - 4096))
        last = handle.read().splitlines()[-1]
    times = [datetime.fromisoformat(loads(line)["ts"]) for line in (first, last)]
    return (times[1] - times[0]).total_seconds() / 3600


# ====================================================================== memory over a day


def memory(hours: float) -> int:
    """Replay `hours` of the windowed stream in this process; RSS every simulated hour."""
    problem = cep_problem()
    if problem is not None:
        print(f"cep cannot run {RULES.name} ({problem})", file=sys.stderr)
        return 1
    events = round(hours * 3600 * 1000 / MEAN_GAP_MS)
    trace, _ = windowed_data(events)
    print(f"about {hours:g} hours of the windowed workload ({events:,} readings), sampled "
          f"every simulated hour")
    print(f"{'hour':>5} {'RSS MB':>8} {'in window':>10} {'timers':>7} {'outputs':>9}")

    def line(engine, hour: float, outputs: int) -> None:
        held = sum(engine.partial_matches().values())  # a windowed rule: its window's events
        print(f"{hour:>5.1f} {current_rss_mb():>8.1f} {held:>10,} {engine.timers.pending():>7} "
              f"{outputs:>9,}", flush=True)

    sampled_replay(RULES, trace, line)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m bench windowed`: cep against Siddhi on a windowed average per room."""
    parser = argparse.ArgumentParser(prog="python -m bench windowed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="readings in the stream (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (median)")
    parser.add_argument("--no-siddhi", action="store_true", help="leave Siddhi out")
    parser.add_argument("--python", metavar="PATH", default=None,
                        help="run cep with this interpreter (e.g. a venv with the compiled "
                             "build); default: this one")
    parser.add_argument("--hours", type=float, default=None,
                        help="instead: replay this many simulated hours in this process and "
                             "print its RSS every hour (e.g. 24)")
    args = parser.parse_args(argv)
    if args.hours is not None:
        return memory(args.hours)
    return compare(args.events, args.repeat, not args.no_siddhi, args.python)
