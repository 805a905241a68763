"""The side-by-side benchmark against Siddhi: `python -m bench ab` (and `memory`).

The workload (`bench/ab.epl`): 1,000 devices, one event every 50 ms (10 % A, 10 % B,
80 % X, seed 42), and per device "every A followed by B within 20 minutes".  The
stream is generated here, as a trace for cep and as CSV for Siddhi, and cached under
the cache folder (`~/.cache/cep-bench`, or `$CEP_BENCH_CACHE`), outside the repository.

Siddhi runs when Java is there: the bench installs the PySiddhi wheel (which carries
the Siddhi 5.1 jars) into a virtual environment in the cache folder and compiles
`bench/SiddhiAB.java` against them.  Nothing of Siddhi enters the repository.  When
that is not possible the bench says why and reports cep alone.

Both engines run as whole processes, alternately, `--repeat` times; wall times are
compared by their medians.  `--python PATH` runs cep (and the read-and-decode
measurement) as that interpreter's `python -m cep`, e.g. a virtual environment holding
the compiled build (`CEP_COMPILE=1 pip install .`); the bench says which build ran.
These are measurements, not pass/fail checks.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RULES = BENCH_DIR / "ab.epl"
JAVA_SOURCE = BENCH_DIR / "SiddhiAB.java"
PYSIDDHI = "PySiddhi==5.1.0"   # its wheel carries the Siddhi 5.1.7 jars
DEVICES = 1000
STEP_MS = 50
T0 = datetime(2024, 1, 1)


def cache_dir() -> Path:
    return Path(os.environ.get("CEP_BENCH_CACHE") or Path.home() / ".cache" / "cep-bench")


# ====================================================================== data


def ab_events(n: int, seed: int = 42):
    """(device, etype, val, time) for the AB stream: the same stream for both engines."""
    rnd = random.Random(seed)
    for i in range(n):
        r = rnd.random()
        etype = "A" if r < 0.1 else ("B" if r < 0.2 else "X")
        device, val = f"d{rnd.randrange(DEVICES)}", rnd.randrange(1000)
        yield device, etype, val, T0 + timedelta(milliseconds=STEP_MS * i)


def write_ab(n: int, folder: Path, seed: int = 42) -> tuple[Path, Path]:
    """Write `ab.jsonl` (a cep trace) and `ab.csv` (Siddhi's input) of n events."""
    folder.mkdir(parents=True, exist_ok=True)
    trace, csv = folder / "ab.jsonl", folder / "ab.csv"
    with open(trace, "w", encoding="utf-8") as jl, open(csv, "w", encoding="utf-8") as cs:
        for device, etype, val, moment in ab_events(n, seed):
            iso = moment.isoformat(timespec="milliseconds")
            jl.write(f'{{"ts": "{iso}+00:00", "topic": "dev/{device}/ev", '
                     f'"payload": {{"etype": "{etype}", "val": {val}}}}}\n')
            cs.write(f"{device},{etype},{val},{iso[:10]} {iso[11:]}\n")
    return trace, csv


def cached_data(name: str, n: int,
                write: Callable[[int, Path], tuple[Path, Path]]) -> tuple[Path, Path]:
    """The n-event trace and CSV that `write(n, folder)` makes, generated once into the
    cache folder (`data/NAME-N`)."""
    folder = cache_dir() / "data" / f"{name}-{n}"
    done = folder / "done"
    if not done.exists():
        print(f"generating {n:,} events into {folder} ...", file=sys.stderr)
        write(n, folder)
        done.write_text("ok\n")
    return folder / f"{name}.jsonl", folder / f"{name}.csv"


def ab_data(n: int) -> tuple[Path, Path]:
    """The n-event AB trace and CSV, generated once into the cache folder."""
    return cached_data("ab", n, write_ab)


def edge_pairs(n: int, window_ms: int = 20 * 60 * 1000) -> int:
    """A-B pairs of the stream with the B exactly `window_ms` after its A.

    Each A waits for the first B of its device after it; Siddhi's `within` counts a B
    at exactly the window's length, cep's `timer:within` is half-open (as Esper's) and
    does not.  So on the same stream the counts differ by exactly these pairs.
    """
    waiting: dict[str, list[int]] = {}
    found = 0
    for i, (device, etype, _, _) in enumerate(ab_events(n)):
        now = STEP_MS * i
        if etype == "A":
            waiting.setdefault(device, []).append(now)
        elif etype == "B":
            found += sum(1 for started in waiting.pop(device, ()) if now - started == window_ms)
    return found


# ====================================================================== processes


@dataclass
class Run:
    wall: float          # seconds, whole process
    peak_rss_mb: float
    stdout: str
    stderr: str
    cpu: float = 0.0     # user + system seconds of the process (all its threads)


def run_process(command: list[str], cwd: Path | None = None) -> Run:
    """Run a command to its end: its wall time and the peak RSS of that process alone.

    The child is reaped with `os.wait4`, whose usage is the child's own (RUSAGE_CHILDREN
    would give the largest of all children so far).  Its output goes to temporary
    files, so nothing waits on a full pipe.  It runs without PYTHONDONTWRITEBYTECODE,
    which some environments set: with it, every cep process compiled its 80-odd modules
    from source again (about 0.35 s here), which no installed cep does.
    """
    env = {name: value for name, value in os.environ.items()
           if name != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=cwd, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): "
                           f"{(stderr or stdout).strip()[-500:]}")
    # ru_maxrss is in KB on Linux
    return Run(wall, usage.ru_maxrss / 1024, stdout, stderr, usage.ru_utime + usage.ru_stime)


def run_cep(trace: Path, out: Path, rules: Path = RULES,
            python: str | None = None) -> tuple[Run, int, float]:
    """A whole `cep replay` process; also its match count and its own replay-loop seconds.

    `python`: the interpreter to run `-m cep` with (default: this one), started in the
    cache folder so that it imports its own installed cep, not a checkout's."""
    run = run_process([python or sys.executable, "-m", "cep", "replay", str(rules),
                       "--trace", str(trace), "--out", str(out)],
                      cwd=cache_dir() if python else None)
    found = re.search(r"outputs in ([0-9.]+) s", run.stderr)
    loop = float(found.group(1)) if found else float("nan")
    with open(out, "rb") as handle:
        matches = sum(1 for line in handle if b'"kind": "event"' in line)
    return run, matches, loop


def run_siddhi(classpath: str, csv: Path, main: str = "SiddhiAB",
               *args: str) -> tuple[Run, int]:
    """A whole Siddhi process (its JVM start included, as for cep) and its match count.

    `main` is the class to run, given the CSV and `args`; it prints
    `SIDDHI events=N matches=M ...`.
    """
    run = run_process(["java", "-cp", classpath, main, str(csv), *args], cwd=cache_dir())
    found = re.search(r"SIDDHI events=(\d+) matches=(\d+)", run.stdout)
    if found is None:
        raise RuntimeError(f"Siddhi said: {run.stdout.strip()[-500:]}")
    return run, int(found.group(2))


# ====================================================================== Siddhi setup


class SiddhiUnavailable(Exception):
    """Why Siddhi cannot run here (the bench then reports cep alone)."""


def siddhi_classpath(source: Path = JAVA_SOURCE) -> str:
    """Set up the Siddhi peer in the cache folder (once), compile `source` (a class of
    the same name, in the default package) against it, and return its class path."""
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            raise SiddhiUnavailable(f"no `{tool}` on PATH")
    if not source.exists():
        raise SiddhiUnavailable(f"{source} not found (run from a checkout)")
    root = cache_dir() / "siddhi"
    venv = root / "venv"
    libs = list(venv.glob("lib/python3*/site-packages/__PySiddhiProxy/target/lib"))
    if not libs:
        print(f"installing {PYSIDDHI} (for its Siddhi jars) into {venv} ...", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                           capture_output=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", PYSIDDHI],
                           check=True, capture_output=True)
        except (subprocess.CalledProcessError, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            why = detail.decode(errors="replace").strip()[-300:] or exc
            raise SiddhiUnavailable(f"cannot install {PYSIDDHI}: {why}") from exc
        libs = list(venv.glob("lib/python3*/site-packages/__PySiddhiProxy/target/lib"))
        if not libs:
            raise SiddhiUnavailable(f"{PYSIDDHI} carries no Siddhi jars")
    classes = root / "classes"
    compiled = classes / f"{source.stem}.class"
    if not compiled.exists() or compiled.stat().st_mtime < source.stat().st_mtime:
        classes.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["javac", "-nowarn", "-cp", f"{libs[0]}/*", "-d", str(classes),
                                 str(source)], capture_output=True, text=True)
        if result.returncode != 0:
            raise SiddhiUnavailable(f"javac failed: {result.stderr.strip()[-300:]}")
    return f"{classes}{os.pathsep}{libs[0]}/*"


# ====================================================================== the comparison


def cep_variant(python: str | None) -> str:
    """`cep --version` of the interpreter that runs cep (which build it is)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    return run_process([python or sys.executable, "-m", "cep", "--version"],
                       cwd=cache_dir()).stdout.strip()


def in_interpreter(python: str, code: str) -> str:
    """The output of `code` run by another interpreter, in the cache folder, with this
    checkout after its own packages on its path (so `bench` is found, and its own cep)."""
    setup = f"import sys; sys.path.append({str(BENCH_DIR.parent)!r}); "
    return run_process([python, "-c", setup + code], cwd=cache_dir()).stdout.strip()


def decode_seconds(trace: Path, python: str | None = None) -> float:
    """Seconds to read and decode the trace in this process (or by `python`), without
    the engine."""
    if python:
        return float(in_interpreter(python, f"from bench.ab import decode_seconds; "
                                            f"print(decode_seconds({str(trace)!r}))"))
    from bench.engine import decode_only
    from cep.checks.loader import load_paths

    loaded = load_paths([str(RULES)])
    loaded.raise_for_errors()
    return decode_only(loaded.catalog, str(trace))


def compare(events: int, repeat: int, with_siddhi: bool, python: str | None = None) -> int:
    """Run both engines alternately and print medians; 0, or 1 if match counts differ."""
    if not RULES.exists():
        print(f"{RULES} not found: the side-by-side bench runs from a checkout", file=sys.stderr)
        return 1
    trace, csv = ab_data(events)
    classpath = None
    if with_siddhi:
        try:
            classpath = siddhi_classpath()
        except SiddhiUnavailable as exc:
            print(f"Siddhi not available ({exc}): cep alone", file=sys.stderr)
    out = trace.with_name("cep-out.jsonl")
    cep_runs: list[tuple[Run, int, float]] = []
    siddhi_runs: list[tuple[Run, int]] = []
    decodes: list[float] = []
    for round_ in range(repeat):
        print(f"round {round_ + 1}/{repeat} ...", file=sys.stderr)
        if classpath is not None:
            siddhi_runs.append(run_siddhi(classpath, csv))
        cep_runs.append(run_cep(trace, out, python=python))
        decodes.append(decode_seconds(trace, python))

    def median(values: list[float]) -> float:
        return statistics.median(values)

    cep_wall = median([r[0].wall for r in cep_runs])
    cep_loop = median([r[2] for r in cep_runs])
    decode = median(decodes)
    cep_matches = cep_runs[0][1]
    print(f"side-by-side AB workload: {events:,} events, {DEVICES:,} devices, "
          f"median of {repeat} run(s); {cep_variant(python)}")
    print(f"{'engine':<8} {'wall s':>8} {'ev/s (wall)':>12} {'peak RSS MB':>12} {'matches':>9} "
          f"{'CPU s':>7}")
    status = 0
    if siddhi_runs:
        siddhi_wall = median([r[0].wall for r in siddhi_runs])
        siddhi_matches = siddhi_runs[0][1]
        print(f"{'siddhi':<8} {siddhi_wall:>8.2f} {events / siddhi_wall:>12,.0f} "
              f"{max(r[0].peak_rss_mb for r in siddhi_runs):>12.0f} {siddhi_matches:>9,} "
              f"{median([r[0].cpu for r in siddhi_runs]):>7.2f}")
    print(f"{'cep':<8} {cep_wall:>8.2f} {events / cep_wall:>12,.0f} "
          f"{max(r[0].peak_rss_mb for r in cep_runs):>12.0f} {cep_matches:>9,} "
          f"{median([r[0].cpu for r in cep_runs]):>7.2f}")
    print("(CPU s: user + system seconds of the whole process, every thread: the JVM's "
          "compiler and collector threads count there, not in wall time)")
    if siddhi_runs:
        print(f"cep / siddhi wall time: {cep_wall / siddhi_wall:.2f} "
              f"(runs: cep {', '.join(f'{r[0].wall:.2f}' for r in cep_runs)}; siddhi "
              f"{', '.join(f'{r[0].wall:.2f}' for r in siddhi_runs)})")
        if siddhi_matches != cep_matches:
            edge = edge_pairs(events)
            if siddhi_matches - cep_matches == edge:
                print(f"match counts differ by {edge}: the B events exactly 20 minutes after "
                      f"their A, which Siddhi's `within` takes and cep's half-open "
                      f"`timer:within` does not")
            else:
                print(f"MATCH COUNTS DIFFER: cep {cep_matches}, siddhi {siddhi_matches}")
                status = 1
    print(f"cep replay loop {cep_loop:.2f} s ({events / cep_loop:,.0f} ev/s); read + decode "
          f"only {decode:.2f} s; replay / decode = {cep_loop / decode:.2f}")
    return status


# ====================================================================== memory over a day


def current_rss_mb() -> float:
    """This process's resident set now (Linux), in MB; 0 where /proc is missing."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_day(hours: float) -> int:
    """Replay `hours` of the AB stream in this process; RSS and live state every hour."""
    events = int(hours * 3600 * 1000 / STEP_MS)
    trace, _ = ab_data(events)
    print(f"{hours:g} hours of the AB workload ({events:,} events), sampled every hour")
    print(f"{'hour':>5} {'RSS MB':>8} {'instances':>10} {'waiting':>8} {'timers':>7} "
          f"{'outputs':>9}")
    sampled_replay(RULES, trace, _memory_line)
    return 0


def sampled_replay(rules: Path, trace: Path, sample: Callable[[Any, float, int], None]) -> None:
    """Replay the trace through `rules` in this process, calling `sample(engine, hour,
    outputs)` at the start of every simulated hour (before that hour's first event) and
    after the last event (`hour` from the first event's time)."""
    from cep.adapters.bus import BusMapping, create_events
    from cep.adapters.trace import TraceMessage, TraceReader
    from cep.checks.loader import load_paths
    from cep.runtime.engine import Engine

    loaded = load_paths([str(rules)])
    loaded.raise_for_errors()
    outputs = [0]

    def count(_: dict) -> None:
        outputs[0] += 1

    engine = Engine(loaded.catalog, count, UTC)
    bus = BusMapping.from_events(create_events(loaded.catalog), UTC)
    next_hour, start, last = None, None, None
    for record in TraceReader(trace, UTC):
        if start is None:
            start = next_hour = record.ts
        if record.ts >= next_hour:  # type: ignore[operator]
            sample(engine, (record.ts - start) / 3600, outputs[0])
            next_hour += 3600  # type: ignore[operator]
        if isinstance(record, TraceMessage):  # (a clock mark moves the clock only)
            events, _ = bus.decode(record.topic, record, record.ts, record.value)
            for event in events:
                engine.process(event)
        last = record.ts
    sample(engine, 0.0 if start is None else (last - start) / 3600,  # type: ignore[operator]
           outputs[0])


def _memory_line(engine, hour: float, outputs: int) -> None:
    waiting = sum(engine.partial_matches().values())
    instances = sum(len(runtime.open) for runtime in engine.contexts.values())
    print(f"{hour:>5.0f} {current_rss_mb():>8.1f} {instances:>10} {waiting:>8} "
          f"{engine.timers.pending():>7} {outputs:>9}")


def main(argv: list[str] | None = None) -> int:
    """`python -m bench ab`: cep against Siddhi on the A→B workload."""
    parser = argparse.ArgumentParser(prog="python -m bench ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events in the stream (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine (median)")
    parser.add_argument("--no-siddhi", action="store_true", help="run cep alone")
    parser.add_argument("--python", metavar="PATH", default=None,
                        help="run cep with this interpreter (e.g. a venv with the compiled "
                             "build); default: this one")
    args = parser.parse_args(argv)
    return compare(args.events, args.repeat, not args.no_siddhi, args.python)


def memory_main(argv: list[str] | None = None) -> int:
    """`python -m bench memory`: the A→B workload over simulated hours in one process."""
    parser = argparse.ArgumentParser(prog="python -m bench memory",
                                     description=memory_day.__doc__)
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    args = parser.parse_args(argv)
    return memory_day(args.hours)
