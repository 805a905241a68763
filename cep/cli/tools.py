"""`cep test`, `cep import` and `cep graph`: options and handlers for rule authors.

The work is done in cep.tools.testing, cep.tools.importers and cep.tools.graph; this
module only reads the command line and sets the exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO

from cep.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    CliError,
    load_runnable_rules,
    time_zone,
)
from cep.language.files import replace_file
from cep.tools.graph import FORMATS as GRAPH_FORMATS
from cep.tools.graph import PARTS as GRAPH_PARTS
from cep.tools.importers import FORMATS as DATASET_FORMATS


def add_tool_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = commands.add_parser(
        "test", help="run scenarios (rules + trace + expected output) and show what differs",
        description="Run scenario files (TOML, see docs/scenarios.md): replay each one's trace "
                    "through its rules and compare the output with the expected lines. "
                    "Differences are listed as missing, unexpected or different lines, with "
                    "their times. Exit 1 if any scenario fails, 2 if one cannot be read.")
    test.add_argument("scenarios", nargs="+", metavar="SCENARIO",
                      help="scenario files, or folders (every *.toml inside, recursively)")
    test.add_argument("--update", action="store_true",
                      help="write the produced output into each failing scenario's expected "
                           "file instead of failing (then check the new lines by hand!)")
    test.add_argument("-q", "--quiet", action="store_true",
                      help="print only failures and the summary")
    test.set_defaults(handler=run_test)

    dataset = commands.add_parser(
        "import", help="turn a public smart-home dataset file into a trace",
        description="Turn a dataset file into a trace (JSON Lines, see docs/datasets.md). "
                    "casas: WSU CASAS event files (`date time sensor value [annotation]`), "
                    "each line a message on casas/<sensor> with the raw value as payload. "
                    "ordonez: the UCI ADL binary-sensor interval files (*_Sensors.txt), each "
                    "interval ON at its start and OFF at its end on ordonez/<Location>. "
                    "Messages are written in time order; bad lines are reported as "
                    "FILE:LINE on stderr and skipped. zigbee2mqtt: not a trace but a rule "
                    "file: zigbee2mqtt's device list (the bridge/devices message, from FILE "
                    "or --broker) as one CREATE EVENT per device.")
    dataset.add_argument("format", choices=(*DATASET_FORMATS, "zigbee2mqtt"), metavar="FORMAT",
                         help="casas, ordonez or zigbee2mqtt")
    dataset.add_argument("file", metavar="FILE", nargs="?",
                         help="the dataset file (zigbee2mqtt: a saved bridge/devices message; "
                              "or --broker)")
    dataset.add_argument("--tz", metavar="ZONE",
                         help="the zone the file's times are local to (default UTC); the "
                              "trace is written with its offsets")
    dataset.add_argument("--out", metavar="FILE",
                         help="write the trace (zigbee2mqtt: the rules) to FILE, not stdout")
    dataset.add_argument("--broker", metavar="URL",
                         help="zigbee2mqtt: read the retained device list from this broker, "
                              "mqtt://[user[:pass]@]host[:port] or mqtts://...")
    dataset.add_argument("--base-topic", default=None, metavar="TOPIC",
                         help="zigbee2mqtt: its base topic (default zigbee2mqtt)")
    dataset.add_argument("--timeout", type=float, default=None, metavar="S",
                         help="zigbee2mqtt --broker: seconds to wait for the device list "
                              "(default 10)")
    dataset.set_defaults(handler=run_import)

    graph = commands.add_parser(
        "graph", help="draw the event processing network and each rule's state machine",
        description="Draw what the rules compile to: the event processing network (producers "
                    "= bus topics, channels = event types, agents = rules, consumers = "
                    "published topics, with the contexts that gate rules) and each rule's "
                    "pattern as a state machine. Mermaid output is Markdown with one "
                    "```mermaid block per diagram; DOT output is one digraph per diagram "
                    "(`dot -Tsvg -O` draws them all).")
    graph.add_argument("rules", nargs="+", metavar="RULES", help="rule files or folders")
    graph.add_argument("--format", choices=GRAPH_FORMATS, default="mermaid",
                       help="mermaid (default) or dot")
    graph.add_argument("--part", choices=GRAPH_PARTS, default="all",
                       help="the network, the rules' state machines, or both (default)")
    graph.add_argument("--rule", action="append", default=[], metavar="NAME",
                       help="only this rule's state machine (repeatable)")
    graph.add_argument("--out", metavar="FILE", help="write to FILE, not stdout")
    graph.set_defaults(handler=run_graph)


def run_test(args: argparse.Namespace) -> int:
    from cep.tools.testing.runner import run_scenarios
    from cep.tools.testing.scenario import find_scenarios

    paths = find_scenarios(args.scenarios)
    if not paths:
        raise CliError("no scenario files found (folders are searched for *.toml)")

    def out(line: str) -> None:
        if not (args.quiet and line.startswith("PASS ")):
            print(line)

    totals = run_scenarios(paths, out, lambda line: print(line, file=sys.stderr),
                           update=args.update)
    print(totals.summary(), file=sys.stderr)
    if totals.unusable:
        return EXIT_USAGE
    return EXIT_PROBLEM if totals.failed else EXIT_OK


SHOWN_WHEN_NOTHING_USABLE = 5


def run_import(args: argparse.Namespace) -> int:
    from cep.tools.importers import ImportRefused, ImportStats, read, write_trace

    if args.format == "zigbee2mqtt":
        return run_import_zigbee2mqtt(args)
    for option, value in (("--broker", args.broker), ("--base-topic", args.base_topic),
                          ("--timeout", args.timeout)):
        if value is not None:
            raise CliError(f"{option} is for zigbee2mqtt only")
    if args.file is None:
        raise CliError(f"{args.format} needs a FILE")
    tz = time_zone(args.tz)
    if os.path.isdir(args.file):
        raise CliError(f"cannot read {args.file}: it is a folder, not a file")
    if not os.path.isfile(args.file):
        raise CliError(f"cannot read {args.file}: no such file")
    stats = ImportStats()
    problems: list[str] = []  # held until we know whether the file is in the format at all
    try:
        messages = list(read(args.format, args.file, tz, stats, problems.append))
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    except ImportRefused as exc:
        raise CliError(f"{exc}") from exc
    if not messages:
        # Nothing to write: say why in a few lines, and leave any --out file as it was.
        for problem in problems[:SHOWN_WHEN_NOTHING_USABLE]:
            print(problem, file=sys.stderr)
        if len(problems) > SHOWN_WHEN_NOTHING_USABLE:
            print(f"... and {len(problems) - SHOWN_WHEN_NOTHING_USABLE} more bad lines",
                  file=sys.stderr)
        print(stats.summary(args.file), file=sys.stderr)
        why = f"no line of {args.file} is in the {args.format} format" if stats.bad_lines \
            else f"{args.file} has no data lines"
        raise CliError(f"{why}; nothing written")
    for problem in problems:
        print(problem, file=sys.stderr)
    try:
        if args.out:
            replace_file(args.out, lambda out: write_trace(messages, out, tz, stats))
        else:
            write_trace(messages, sys.stdout, tz, stats)
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    print(stats.summary(args.file), file=sys.stderr)
    return EXIT_OK


def run_import_zigbee2mqtt(args: argparse.Namespace) -> int:
    from cep.tools.importers import zigbee2mqtt as z2m

    if args.tz is not None:
        raise CliError("--tz is not for zigbee2mqtt: a device list has no times")
    if (args.file is None) == (args.broker is None):
        raise CliError("zigbee2mqtt reads a FILE or --broker URL (one of them)")
    if args.timeout is not None and args.broker is None:
        raise CliError("--timeout is for --broker")
    base = args.base_topic if args.base_topic is not None else z2m.BASE_TOPIC
    timeout = args.timeout if args.timeout is not None else z2m.FETCH_TIMEOUT
    problem = z2m.base_topic_problem(base) or (
        None if timeout > 0 else "--timeout must be more than 0 seconds")
    if problem:
        raise CliError(problem)
    try:
        if args.broker is not None:
            data, source = z2m.read_from_broker(args.broker, base, timeout)
        else:
            source = args.file
            if os.path.isdir(args.file):
                raise CliError(f"cannot read {args.file}: it is a folder, not a file")
            try:
                with open(args.file, "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
        text, summary = z2m.device_rules(z2m.parse_device_list(data, source), source, base)
    except z2m.BrokerUsageError as exc:
        raise CliError(str(exc)) from exc
    except z2m.DeviceListError as exc:
        raise CliError(f"{exc}; nothing written", EXIT_PROBLEM) from exc

    def write(out: IO[str]) -> None:
        out.write(text)

    try:
        if args.out:
            replace_file(args.out, write)
        else:
            sys.stdout.write(text)
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    print(summary, file=sys.stderr)
    return EXIT_OK


def run_graph(args: argparse.Namespace) -> int:
    from cep.tools.graph import render

    loaded = load_runnable_rules(args.rules)
    names = {info.name for info in loaded.catalog.rules}
    unknown = [name for name in args.rule if name not in names]
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise CliError(f"no rule named {', '.join(map(repr, unknown))} (rules: {known})")
    text = render(loaded.catalog, args.format, args.part, tuple(args.rule))
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    else:
        sys.stdout.write(text)
    return EXIT_OK
