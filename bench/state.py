"""State benchmark: checkpoint size and time, and start-up, with a big state.

    python -m bench state                      # 10,000 devices, 5 waiting matches each
    python -m bench state --devices 1000 --waiting 50
    python -m bench state --per-message        # what journaling costs per message

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
from collections.abc import Callable
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


ECHO = """\
CREATE EVENT Probe (seq INT) FROM TOPIC 'bench/in';
@name('echo') SELECT p.seq AS seq FROM PATTERN [ every p=Probe ]
PUBLISH 'bench/out' PAYLOAD {"seq": seq} QOS 1;
"""


def per_message(messages: int, state: bool, folder: Path) -> float:
    """CPU seconds per message of the live engine thread (see the module docstring)."""
    from datetime import UTC

    from cep.adapters.live import LiveRunner
    from cep.adapters.mqtt import BrokerSettings, ReceivedMessage

    loaded = load_texts([("echo.epl", ECHO)])
    loaded.raise_for_errors()
    settings = BrokerSettings.from_url("mqtt://127.0.0.1:9", client_id="bench-state")
    keep = StateFolder(folder / ("on" if state else "off"), rules_fingerprint(loaded.files),
                       ["echo.epl"]) if state else None
    runner = LiveRunner(loaded.catalog, settings, lambda record: None, UTC,
                        report=lambda message: None, state=keep, fresh=True)
    connection = runner.connection

    def acknowledged_at_once(topic: str, payload: bytes, qos: int, retain: bool,
                             on_done: Callable[[], None] | None = None) -> bool:
        connection.client.publish(topic, payload, qos=qos, retain=retain)  # (queued in paho)
        if on_done is not None:  # as if the broker had acknowledged it
            on_done()
        return True

    connection.publish = acknowledged_at_once  # type: ignore[method-assign]
    durable = runner.durable
    if durable is not None:
        durable.begin(runner._process)
    else:
        runner.engine.start(time.time())
    started = time.process_time()
    for n in range(messages):
        mid = n % 65535 + 1
        runner._take(ReceivedMessage("bench/in", b'{"seq":%d}' % n, 1, False, time.time(),
                                     None, mid, False))
        if durable is None:  # paho's own acknowledgement, which the state folder's replaces
            connection.client._send_puback(mid)
        if durable is not None and n % 10 == 9:  # synced every 10, as at 2,000/s
            durable.batch_done(final=True)
    used = time.process_time() - started
    if durable is not None:
        durable.close()
    return used / messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench state", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--per-message", type=int, nargs="?", const=20_000, metavar="N",
                        help="the cost of journaling, over N messages (default 20,000)")
    parser.add_argument("--waiting", type=int, default=4,
                        help="presses waiting per device (default 4: with the wait for the "
                             "next press, 5 partial matches per device)")
    args = parser.parse_args(argv)
    if args.per_message:
        with tempfile.TemporaryDirectory() as tmp:
            without = per_message(args.per_message, False, Path(tmp))
            with_state = per_message(args.per_message, True, Path(tmp))
        print(f"engine thread, QoS 1 message -> action: {without * 1e6:.1f} µs without a state "
              f"folder, {with_state * 1e6:.1f} µs with one (+{(with_state - without) * 1e6:.1f}"
              f" µs, {with_state / without - 1:+.0%}), synced every 10 messages")
        return 0
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
