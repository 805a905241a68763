"""Live MQTT benchmark: sensor→action latency and the highest sustained rate, on a real broker.

    python -m bench mqtt                       # starts its own mosquitto on a free port
    python -m bench mqtt --broker mqtt://127.0.0.1:1883 --rate 2000 --seconds 5

It runs `cep run` as a separate process (as deployed) with one rule that
answers every `bench/in` message `{"seq": n}` with an action on `bench/out`
carrying the same `seq`.  A publisher paces sensor messages at a fixed rate;
a subscriber in the same process timestamps each action, so latency is the
time from publish() to receipt of the answer, through the broker twice and
the engine once.  Then it raises the rate step by step and reports the
highest rate at which every action came back and the 99th percentile stayed
under `--max-p99` (a rising p99 means a queue is growing: not sustainable).
Numbers, not pass/fail: see docs/live.md for results on this machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

RULE = """\
CREATE EVENT Probe (seq INT) FROM TOPIC 'bench/in';

@name('echo')
SELECT p.seq AS seq FROM PATTERN [ every p=Probe ]
PUBLISH 'bench/out' PAYLOAD {{"seq": seq}} QOS {qos};
"""
RATES = (1000, 2000, 4000, 6000, 8000, 10000, 12000, 16000, 20000, 24000, 32000)


@dataclass
class Phase:
    qos: int
    rate: float          # asked for
    achieved: float      # what the publisher managed
    sent: int
    received: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float | None = None  # CPU seconds cep's process used over the phase (Linux)

    @property
    def lossless(self) -> bool:
        return self.received == self.sent

    def line(self) -> str:
        cpu = "" if self.cpu_s is None or not self.sent else \
            f"  cep CPU {self.cpu_s / self.sent * 1e6:6.0f} µs/message"
        return (f"QoS {self.qos}  {self.rate:>7,.0f}/s (sent {self.achieved:>7,.0f}/s)  "
                f"{self.received:>7,}/{self.sent:<7,} back  p50 {self.p50_ms:7.2f} ms  "
                f"p99 {self.p99_ms:8.2f} ms  max {self.max_ms:8.2f} ms{cpu}")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (None where /proc cannot tell): what a
    run costs whatever else the machine is doing."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(probe: Probe, pid: int, rate: float, seconds: float, first_seq: int) -> Phase:
    """One phase, with the CPU time cep used meanwhile."""
    before = cpu_seconds(pid)
    phase = probe.run(rate, seconds, first_seq)
    after = cpu_seconds(pid)
    if before is not None and after is not None:
        phase.cpu_s = after - before
    return phase


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_mosquitto(folder: Path, nodelay: bool) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        raise SystemExit("no mosquitto here: install it or pass --broker URL")
    port = _free_port()
    config = folder / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                      f"max_queued_messages 100000\n"
                      # mosquitto leaves Nagle's algorithm on unless told: at QoS 1 its small
                      # PUBLISH packets then wait for the ACK of the previous one (~5 ms)
                      + ("set_tcp_nodelay true\n" if nodelay else ""))
    process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return process, f"mqtt://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise SystemExit("mosquitto did not start")


class Probe:
    """Publishes `bench/in` at a paced rate and timestamps each `bench/out` answer."""

    def __init__(self, host: str, port: int, qos: int) -> None:
        self.qos = qos
        self.received: dict[int, float] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"cep-bench-{qos}")
        self.client.max_inflight_messages_set(1000)
        self.client.on_socket_open = lambda c, u, s: s.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [("bench/out", qos), ("bench/status", 1)])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: None
        self.client.on_message = self._answer
        self.client.connect(host, port)
        self.client.loop_start()

    def _answer(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        if message.topic == "bench/status":
            if message.payload == b"online":
                self.ready.set()
            return
        seq = int(message.payload[7:-1])  # b'{"seq":123}'
        with self.lock:
            self.received[seq] = now

    def run(self, rate: float, seconds: float, first_seq: int) -> Phase:
        count = int(rate * seconds)
        sent_at = [0.0] * count
        start = time.perf_counter()
        for i in range(count):
            # sleep, never spin: a spinning publisher would starve the receiving thread of
            # the GIL and measure its own queueing instead of cep's
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent_at[i] = time.perf_counter()
            self.client.publish("bench/in", b'{"seq":%d}' % (first_seq + i), qos=self.qos)
        elapsed = time.perf_counter() - start
        deadline = time.perf_counter() + max(5.0, seconds)
        while time.perf_counter() < deadline:
            with self.lock:
                got = sum(1 for i in range(count) if first_seq + i in self.received)
            if got == count:
                break
            time.sleep(0.05)
        with self.lock:
            latencies = sorted((self.received[first_seq + i] - sent_at[i]) * 1000
                               for i in range(count) if first_seq + i in self.received)
        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies \
                else float("nan")
        return Phase(self.qos, rate, count / elapsed if elapsed else 0.0, count,
                     len(latencies), pct(0.50), pct(0.99), latencies[-1] if latencies
                     else float("nan"))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bench_qos(broker: str, qos: int, rate: float, seconds: float, find_max: bool,
              max_p99: float, folder: Path, state: bool = True) -> list[Phase]:
    """`state`: cep run with its state folder (the default), else with --no-state."""
    rules = folder / f"echo-{qos}.epl"
    rules.write_text(RULE.format(qos=qos))
    keep = ["--state", str(folder / f"state-{qos}"), "--fresh"] if state else ["--no-state"]
    cep = subprocess.Popen([sys.executable, "-m", "cep", "run", str(rules), "--broker", broker,
                            "--sub-qos", str(qos), "--status-topic", "bench/status",
                            "--out", str(folder / f"out-{qos}.jsonl"), *keep],
                           stderr=subprocess.DEVNULL)
    host, port = broker.split("://", 1)[1].rsplit(":", 1)
    probe = Probe(host, int(port), qos)
    phases: list[Phase] = []
    try:
        if not probe.ready.wait(30):
            raise SystemExit("cep run did not come online")
        probe.run(min(rate, 500), 1.0, 0)  # warm-up
        seq = 1_000_000
        phases.append(measured(probe, cep.pid, rate, seconds, seq))
        print(phases[-1].line(), flush=True)
        if find_max:
            for step in RATES:
                if step <= rate:
                    continue
                seq += 1_000_000
                phase = measured(probe, cep.pid, step, seconds, seq)
                phases.append(phase)
                print(phase.line(), flush=True)
                if not phase.lossless or phase.p99_ms > max_p99 or \
                        phase.achieved < 0.95 * step:
                    break
    finally:
        probe.close()
        cep.terminate()
        cep.wait(30)
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench mqtt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", help="mqtt://host:port (default: start a mosquitto here)")
    parser.add_argument("--rate", type=float, default=2000, help="messages/s (default 2000)")
    parser.add_argument("--seconds", type=float, default=5, help="per phase (default 5)")
    parser.add_argument("--qos", type=int, choices=(0, 1), action="append",
                        help="QoS to test (default both)")
    parser.add_argument("--no-max", action="store_true",
                        help="only the latency phase, no search for the highest rate")
    parser.add_argument("--broker-nagle", action="store_true",
                        help="start mosquitto without set_tcp_nodelay (its default)")
    parser.add_argument("--max-p99", type=float, default=250.0,
                        help="p99 ms above which a rate counts as not sustained (default 250)")
    parser.add_argument("--state", choices=("on", "off", "both"), default="on",
                        help="cep run with its state folder (on, the default), with "
                             "--no-state (off), or each in turn (both)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker_process = None
        broker = args.broker
        if broker is None:
            broker_process, broker = _start_mosquitto(folder, not args.broker_nagle)
        try:
            print(f"broker {broker}; cep run as a separate process; {args.seconds:g} s per phase")
            states = {"on": (True,), "off": (False,), "both": (False, True)}[args.state]
            for qos in args.qos or (0, 1):
                for state in states:
                    print(f"QoS {qos}, {'with the state folder' if state else '--no-state'}:",
                          flush=True)
                    phases = bench_qos(broker, qos, args.rate, args.seconds, not args.no_max,
                                       args.max_p99, folder, state)
                    good = [p for p in phases if p.lossless and p.p99_ms <= args.max_p99
                            and p.achieved >= 0.95 * p.rate]
                    best = max((p.rate for p in good), default=0)
                    print(f"QoS {qos} ({'state' if state else 'no state'}): latency at "
                          f"{args.rate:,.0f}/s p50 {phases[0].p50_ms:.2f} ms, p99 "
                          f"{phases[0].p99_ms:.2f} ms; highest sustained rate with no loss "
                          f"{best:,.0f}/s" + ("" if not args.no_max else " (not searched)"))
        finally:
            if broker_process is not None:
                broker_process.terminate()
                broker_process.wait(10)
    return 0

