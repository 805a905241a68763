"""`cep cluster setup|status|rules` and `cep worker`: many homes over a NATS JetStream
cluster (see docs/cluster.md)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cep.adapters.nats_names import DEFAULT_HOME_TOPIC
from cep.checks.loader import expand_paths, read_rule_file
from cep.cli.common import EXIT_OK, EXIT_PROBLEM, CliError, at_least_one, report
from cep.cli.live import parse_duration
from cep.language.diagnostics import plural
from cep.runtime.limits import MAX_PARTITION_INSTANCES

DEFAULT_NATS = "nats://localhost:4222"
T = TypeVar("T")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _nats_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats", default=os.environ.get("CEP_NATS", DEFAULT_NATS),
                        metavar="URL",
                        help=f"the NATS servers, comma-separated (default $CEP_NATS, else "
                             f"{DEFAULT_NATS})")


def add_cluster_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = commands.add_parser(
        "cluster", help="set up and watch a NATS JetStream cluster of cep workers",
        description="Many homes over a NATS JetStream cluster: `setup` makes the stream "
                    "(partitioned by home) and the key-value buckets, `status` shows who "
                    "runs what, `rules` gives a home rules of its own (docs/cluster.md).")
    actions = cluster.add_subparsers(dest="cluster_command", metavar="ACTION",
                                     title="actions", required=True)
    setup = actions.add_parser(
        "setup", help="make the stream and buckets (again: changes nothing that is right)",
        description="Create, if missing, the stream CEP that takes every home's device "
                    "messages, partitioned by home with a subject transform, the stream "
                    "CEP_OUT of output lines, and the key-value buckets for leases, "
                    "checkpoints and rule sets; print what was made or found.")
    _nats_option(setup)
    setup.add_argument("--partitions", type=at_least_one, default=16, metavar="N",
                       help="partitions of the stream (default 16; fixed once made)")
    setup.add_argument("--replicas", type=at_least_one, metavar="R",
                       help="copies of each stream and bucket (default 3 on a NATS cluster "
                            "of 3 or more, else 1)")
    setup.add_argument("--home-topic", default=DEFAULT_HOME_TOPIC, metavar="TEMPLATE",
                       help="where the home is in a topic: literal levels, {home}, # "
                            f"(default {DEFAULT_HOME_TOPIC})")
    setup.add_argument("--max-age", type=_duration, default=7 * 86400.0, metavar="D",
                       help="how long the streams keep messages (default 7d)")
    setup.set_defaults(handler=run_setup)
    status = actions.add_parser("status", help="partitions, workers, lag and checkpoints",
                                description="Each partition's worker, lag (messages not "
                                            "yet checkpointed), homes and last checkpoint, "
                                            "and the workers alive.")
    _nats_option(status)
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(handler=run_status)
    rules = actions.add_parser("rules", help="a home's own rule set",
                               description="Give a home rules of its own, run in addition "
                                           "to the workers' shared rules.")
    rule_actions = rules.add_subparsers(dest="rules_command", metavar="ACTION",
                                        title="actions", required=True)
    put = rule_actions.add_parser(
        "put", help="check and upload a home's rule files",
        description="Check the files together with the shared rules the workers run (a "
                    "rule set with errors is refused, with them), store them, and switch "
                    "the home to them: from that point of its stream on, its state starts "
                    "fresh; the other homes are not touched.")
    put.add_argument("home", metavar="HOME")
    put.add_argument("files", nargs="+", metavar="FILE", help="rule files or folders")
    _nats_option(put)
    put.set_defaults(handler=run_rules_put)
    delete = rule_actions.add_parser(
        "delete", help="take a home's own rule set away",
        description="The home runs the shared rules alone from now on, with a fresh state.")
    delete.add_argument("home", metavar="HOME")
    _nats_option(delete)
    delete.set_defaults(handler=run_rules_delete)

    worker = commands.add_parser(
        "worker", help="run homes from a NATS JetStream cluster",
        description="Take partitions of the cluster's stream through leases, restore their "
                    "checkpoints and run every home in them, each as if it had its own "
                    "engine: the shared RULES, plus the home's own rule set if it has one. "
                    "Actions go to the homes' subjects, output lines to cep.out.HOME. "
                    "SIGINT or SIGTERM stops cleanly, handing the partitions over at once.")
    worker.add_argument("rules", nargs="*", metavar="RULES",
                        help="the rules every home runs: files or folders")
    _nats_option(worker)
    worker.add_argument("--name", metavar="NAME",
                        help="this worker's name in the cluster (default HOST-PID)")
    worker.add_argument("--lease", type=_duration, default=10.0, metavar="D",
                        help="how long a partition's lease lasts unrenewed: a dead worker's "
                             "partitions are taken over after it (default 10s)")
    worker.add_argument("--checkpoint-every", type=_duration, default=5.0, metavar="D",
                        help="time between a partition's checkpoints (default 5s): a "
                             "failover takes the messages since again")
    worker.add_argument("--live-homes", type=at_least_one, default=10_000, metavar="N",
                        help="homes kept with an engine in memory, at most (default 10,000); "
                             "the others are parked as compact snapshots")
    worker.add_argument("--park-after", type=_duration, default=300.0, metavar="D",
                        help="park a home unused this long (default 5m)")
    worker.add_argument("--max-instances", type=at_least_one, default=MAX_PARTITION_INSTANCES,
                        metavar="N", help="live instances per partitioned context, per home")
    worker.set_defaults(handler=run_worker)


def _run(coroutine: Callable[[], Awaitable[T]]) -> T:
    import asyncio  # (here: asyncio costs every other command 50 ms to load)

    from cep.adapters.nats_client import ClusterError
    from cep.adapters.nats_names import LayoutError

    try:
        return asyncio.run(_bounded(coroutine))
    except (ClusterError, LayoutError) as exc:
        raise CliError(str(exc), EXIT_PROBLEM) from None


async def _bounded(coroutine: Callable[[], Awaitable[T]]) -> T:
    return await coroutine()


async def _session(url: str, name: str) -> Any:
    from cep.adapters.nats_client import connect

    return await connect(url, name)


def run_setup(args: argparse.Namespace) -> int:
    from cep.adapters.nats_names import HomeTopic
    from cep.adapters.nats_setup import ClusterConfig, setup

    topic = _home_topic(args.home_topic, HomeTopic)

    async def work() -> list[str]:
        nc = await _session(args.nats, "cep-cluster-setup")
        try:
            replicas = args.replicas
            if replicas is None:
                info = getattr(nc, "_server_info", {}) or {}
                replicas = 3 if info.get("cluster") and \
                    len(info.get("connect_urls") or []) >= 3 else 1
            config = ClusterConfig(args.partitions, topic, replicas, args.max_age)
            return await setup(nc.jetstream(timeout=20), config)
        finally:
            await nc.close()

    for line in _run(work):
        print(line)
    return EXIT_OK


def _home_topic(text: str, cls: Any) -> Any:
    from cep.adapters.nats_names import LayoutError

    try:
        return cls.parse(text)
    except LayoutError as exc:
        raise CliError(str(exc)) from None


def run_status(args: argparse.Namespace) -> int:
    from cep.adapters.nats_setup import format_status, status

    async def work() -> dict[str, Any]:
        nc = await _session(args.nats, "cep-cluster-status")
        try:
            return await status(nc.jetstream(timeout=10), args.nats)
        finally:
            await nc.close()

    data = _run(work)
    if args.format == "json":
        print(json.dumps(data, ensure_ascii=False))
    else:
        for line in format_status(data):
            print(line)
    return EXIT_OK


def _read_texts(paths: list[str]) -> list[tuple[str, str]]:
    texts = []
    files = expand_paths(paths)
    if not files:
        raise CliError("no rule files found (folders are searched for *.epl)")
    for path in files:
        try:
            text, problem = read_rule_file(path)
        except OSError as exc:
            raise CliError(f"cannot read {exc.filename}: {exc.strerror}") from None
        if problem is not None:
            raise CliError(f"{path}:{problem.line}:{problem.col}: {problem.message}",
                           EXIT_PROBLEM)
        texts.append((path, text))
    return texts


def run_rules_put(args: argparse.Namespace) -> int:
    from cep.adapters.nats_names import RULES, check_home
    from cep.adapters.nats_rules import check_texts, describe_put, fetch_shared, put_home_rules
    from cep.adapters.nats_setup import read_config

    home = _checked_home(args.home, check_home)
    own = _read_texts(args.files)

    async def work() -> str:
        nc = await _session(args.nats, "cep-cluster-rules")
        try:
            js = nc.jetstream(timeout=10)
            config = await read_config(js, args.nats)
            kv = await js.key_value(RULES)
            shared = await fetch_shared(kv)
            shared_texts = shared[0] if shared is not None else []
            if shared is None:
                report("no worker has said which shared rules it runs yet: checking "
                       f"{home}'s files on their own")
            loaded, fingerprint = check_texts(shared_texts, own)
            for diagnostic in loaded.diagnostics.sorted():
                print(diagnostic.render(loaded.sources), file=sys.stderr)
            if not loaded.ok:
                raise CliError(f"{home}'s rule set has "
                               f"{plural(len(loaded.diagnostics.errors), 'error')} (checked "
                               f"with the {plural(len(shared_texts), 'shared rule file')}); "
                               "nothing was changed", EXIT_PROBLEM)
            changed, seq = await put_home_rules(js, kv, config.home_topic, home, own,
                                                fingerprint)
            return describe_put(home, changed, seq, [name for name, _ in own], fingerprint)
        finally:
            await nc.close()

    print(_run(work))
    return EXIT_OK


def run_rules_delete(args: argparse.Namespace) -> int:
    from cep.adapters.nats_names import RULES, check_home
    from cep.adapters.nats_rules import describe_put, put_home_rules
    from cep.adapters.nats_setup import read_config

    home = _checked_home(args.home, check_home)

    async def work() -> str:
        nc = await _session(args.nats, "cep-cluster-rules")
        try:
            js = nc.jetstream(timeout=10)
            config = await read_config(js, args.nats)
            kv = await js.key_value(RULES)
            changed, seq = await put_home_rules(js, kv, config.home_topic, home, None, None)
            if not changed:
                return f"home {home}: has no rule set of its own; nothing changed"
            return describe_put(home, changed, seq, [], None)
        finally:
            await nc.close()

    print(_run(work))
    return EXIT_OK


def _checked_home(home: str, check: Callable[[str], str]) -> str:
    from cep.adapters.nats_names import LayoutError

    try:
        return check(home)
    except LayoutError as exc:
        raise CliError(str(exc)) from None


def run_worker(args: argparse.Namespace) -> int:
    from cep.adapters.nats_names import LayoutError, check_worker_name
    from cep.adapters.nats_rules import check_texts
    from cep.adapters.nats_worker import Worker, WorkerSettings

    shared = _read_texts(args.rules) if args.rules else []
    loaded = None
    if shared:
        loaded, _ = check_texts(shared, [])
        for diagnostic in loaded.diagnostics.sorted():
            if diagnostic.is_error:
                print(diagnostic.render(loaded.sources), file=sys.stderr)
        if not loaded.ok:
            raise CliError(f"the rules have {plural(len(loaded.diagnostics.errors), 'error')}; "
                           "nothing was run", EXIT_PROBLEM)
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    name = "".join(c if c.isalnum() or c in "_-" else "-" for c in name)[:64]
    try:
        check_worker_name(name)
    except LayoutError as exc:
        raise CliError(str(exc)) from None
    settings = WorkerSettings(args.nats, name, lease=args.lease,
                              checkpoint_every=args.checkpoint_every,
                              live_homes=args.live_homes, park_after=args.park_after,
                              max_instances=args.max_instances)
    worker = Worker(settings, shared, loaded, report)
    started = time.monotonic()

    async def work() -> Any:
        import asyncio

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        return await worker.run()

    stats = _run(work)
    report(stats.summary(name, time.monotonic() - started))
    return EXIT_OK
