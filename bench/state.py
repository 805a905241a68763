"""State benchmark: checkpoint size and time, and start-up, with a big state.

    python -m bench state                      # 10,000 devices, 5 waiting matches each
    python -m bench state --devices 1000 --waiting 50

One partitioned context (an instance per device) and one rule in it waiting, for each
`Press`, for the `Release` after it (`every p=Press -> r=Release`): `--devices` instances
with `--waiting` partial matches each.  It measures what a live run does with that state
(adapters/durable.py): the engine's snapshot, a checkpoint written (JSON, sha256, fsync,
rename), and a restart — the checkpoint read and checked, and a new engine of the same
rules built and restored from it.  Numbers, not pass/fail: see docs/live.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cep.adapters.state import StateFolder, rules_fingerprint
from cep.checks.loader import load_texts
from cep.runtime.engine import Engine
from cep.runtime.events import Event

RULES = """\
CREATE EVENT Press (device STRING, n INT) FROM TOPIC 'home/{device}/press';
CREATE EVENT Release (device STRING, n INT) FROM TOPIC 'home/{device}/release';
CREATE CONTEXT PerDevice PARTITION BY device;

@name('held')
CONTEXT PerDevice
SELECT p.device AS device, p.n AS n
FROM PATTERN [ every p=Press -> r=Release(n = p.n) ];
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench state", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--waiting", type=int, default=4,
                        help="presses waiting per device (default 4: with the wait for the "
                             "next press, 5 partial matches per device)")
    args = parser.parse_args(argv)
    loaded = load_texts([("held.epl", RULES)])
    loaded.raise_for_errors()
    engine = Engine(loaded.catalog, lambda record: None, max_instances=args.devices + 1)
    t0 = 1_800_000_000.0
    engine.start(t0)
    for k in range(args.waiting):
        for d in range(args.devices):
            engine.process(Event("Press", t0 + k, {"device": f"d{d}", "n": k}))
    instances = engine.open_instances()
    waiting = sum(engine.partial_matches().values())
    print(f"{instances:,} context instances, {waiting:,} partial matches, "
          f"{engine.timers.pending():,} timers")

    started = time.perf_counter()
    data = engine.snapshot()
    snapshot_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        folder = StateFolder(Path(tmp) / "state", rules_fingerprint(loaded.files), ["held.epl"])
        folder.lock()
        started = time.perf_counter()
        size = folder.checkpoint({"engine": data, "outputs": 0, "pending": [], "recent": [],
                                  "record_at": None}, time.time())
        write_s = time.perf_counter() - started
        folder.release()
        print(f"checkpoint: {size / 1e6:.1f} MB; snapshot {snapshot_s * 1000:.0f} ms, "
              f"written (JSON, sha256, fsync, rename) in {write_s * 1000:.0f} ms")

        started = time.perf_counter()
        again = StateFolder(Path(tmp) / "state", rules_fingerprint(loaded.files), ["held.epl"])
        again.lock()
        saved = again.load()
        read_s = time.perf_counter() - started
        assert saved is not None
        fresh = Engine(loaded.catalog, lambda record: None, max_instances=args.devices + 1)
        fresh.restore(saved.body["engine"])
        restart_s = time.perf_counter() - started
        again.release()
    assert fresh.open_instances() == instances
    assert sum(fresh.partial_matches().values()) == waiting
    print(f"restart: read and checked in {read_s * 1000:.0f} ms, engine built and restored: "
          f"{restart_s * 1000:.0f} ms in all")
    return 0
