"""`cep check` and `cep replay`: options and handlers for the rules themselves."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from cep.adapters.replay import STDIN_NAME
from cep.adapters.replay import replay as replay_trace
from cep.adapters.trace import BadLine, parse_trace_ts
from cep.checks.loader import LoadedRules
from cep.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PROBLEM,
    CliError,
    at_least_one,
    load_rules,
    load_runnable_rules,
    output_sink,
    print_error,
    time_zone,
    view_only_notice,
)
from cep.language.diagnostics import plural
from cep.language.parser import iter_trees, pretty_tree
from cep.language.printer import dump_ast, format_file
from cep.runtime.engine import EngineError
from cep.runtime.limits import MAX_PARTITION_INSTANCES
from cep.runtime.output import OutputWriter, finish_output

MIN_SPEED = 1e-3  # a thousandth of real time: slower than this is a pause, not a replay


def add_rule_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check", help="parse and check rule files; print every error and warning",
        description="Parse and check rule files (or folders of *.epl). Prints every error and "
                    "warning as `file:line:col: error: message` with the source line and a "
                    "caret; exits 1 if there is any error.")
    check.add_argument("rules", nargs="+", metavar="RULES", help="rule files or folders")
    check.add_argument("--format", choices=("text", "json"), default="text",
                       help="text (default) or json: one JSON object per diagnostic")
    check.add_argument("--print", dest="stage", choices=("tree", "ast", "rules"),
                       help="also print a stage of the front end: the Lark parse tree, the AST, "
                            "or the rule text printed back from the AST")
    check.set_defaults(handler=run_check)

    replay = commands.add_parser(
        "replay", help="replay a recorded trace through the rules, in event time",
        description="Replay a recorded trace (JSON Lines) through the rules in event time and "
                    "write the output lines (fired complex events and publish actions) to "
                    "stdout or --out. Progress, bad lines and the summary go to stderr.")
    replay.add_argument("rules", nargs="+", metavar="RULES", help="rule files or folders")
    replay.add_argument("--trace", required=True, metavar="FILE",
                        help="the trace to replay (JSON Lines; `-` reads stdin)")
    replay.add_argument("--until", metavar="TS",
                        help="after the trace (or its stop mark, when TS is later), move the "
                             "clock to TS (ISO-8601 or Unix seconds), firing every timer due "
                             "up to and including it")
    replay.add_argument("--tz", metavar="ZONE",
                        help="time zone for clock times, naive trace times and output "
                             "timestamps (overrides SET TIMEZONE)")
    replay.add_argument("--speed", type=float, metavar="X",
                        help="play at X times real time (default: as fast as possible)")
    replay.add_argument("--out", metavar="FILE", help="write output lines to FILE")
    replay.add_argument("--max-instances", type=at_least_one, default=MAX_PARTITION_INSTANCES,
                        metavar="N",
                        help="most live instances (keys) per partitioned context or keyed "
                             "interval; events of further keys are refused and reported "
                             f"(default {MAX_PARTITION_INSTANCES:,})")
    replay.add_argument("--contexts", action="store_true",
                        help="also write context-start / context-end lines")
    replay.add_argument("--view", action="store_true",
                        help="show a live terminal view (contexts, rules, windows, fired "
                             "events, input) on stderr or the terminal; with --view, output "
                             "lines go only "
                             "to --out and nothing is written to stdout")
    replay.set_defaults(handler=run_replay)


def run_check(args: argparse.Namespace) -> int:
    loaded = load_rules(args.rules)
    if args.stage:
        print_stage(args.stage, loaded)
    diagnostics = loaded.diagnostics.sorted()
    for diagnostic in diagnostics:
        if args.format == "json":
            print(json.dumps(diagnostic.as_dict(), ensure_ascii=False))
        else:
            print(diagnostic.render(loaded.sources))
    errors = sum(1 for d in diagnostics if d.is_error)
    print(f"{plural(len(loaded.files), 'file')}, {plural(len(loaded.catalog.rules), 'rule')}: "
          f"{plural(errors, 'error')}, {plural(len(diagnostics) - errors, 'warning')}",
          file=sys.stderr)
    return EXIT_PROBLEM if errors else EXIT_OK


def run_replay(args: argparse.Namespace) -> int:
    loaded = load_runnable_rules(args.rules)
    tz = time_zone(args.tz, loaded)
    if args.speed is not None and not MIN_SPEED <= args.speed < math.inf:
        raise CliError(f"--speed must be a number from {MIN_SPEED:g} up (times real time)")
    until = None
    if args.until is not None:
        try:
            until = parse_trace_ts(_number_or_text(args.until), tz)
        except BadLine as exc:
            raise CliError(f"--until: {exc}") from exc
    trace = "/dev/stdin" if args.trace == "-" else args.trace
    name = STDIN_NAME if args.trace == "-" else args.trace  # in reports and the summary
    if not os.path.isfile(trace) and trace != "/dev/stdin":
        raise CliError(f"cannot read trace {args.trace}: no such file")
    view = None
    if args.view:
        from cep.tools.view import ReplayView  # rich loads only for --view

        view = ReplayView(name, trace, args.speed, until=until, tz=tz)
        if not view.available:
            raise CliError("--view needs a terminal (stderr or /dev/tty)")
    try:
        out = open(args.out, "w", encoding="utf-8") if args.out else \
            (None if view is not None else sys.stdout)  # the view owns the terminal
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    try:
        writer = OutputWriter(out, tz, flush=args.speed is not None) if out else None
        if view is not None:
            view.start()
        stats = replay_trace(loaded.catalog, trace, output_sink(writer, view), tz,
                             report=lambda message: print(message, file=sys.stderr),
                             until=until, speed=args.speed, show_contexts=args.contexts,
                             tick=view.replay_tick if view is not None else None,
                             max_instances=args.max_instances, trace_name=name)
    except EngineError as exc:
        raise CliError(str(exc), EXIT_PROBLEM) from exc
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise CliError(f"cannot read trace {name}: {exc.strerror or exc}") from exc
    except KeyboardInterrupt:  # Ctrl-C while watching: the last frame stays, no traceback
        if view is None:
            raise
        view.stop()
        print_error("interrupted")
        return EXIT_INTERRUPTED
    finally:
        if view is not None:
            view.stop()
        finish_output(out)
    for line in stats.path_lines(name):
        print(line, file=sys.stderr)
    print(stats.summary(name), file=sys.stderr)
    if view is not None and writer is None:
        notice = view_only_notice(stats.outputs)
        if notice:
            print(notice, file=sys.stderr)
    return EXIT_OK


def _number_or_text(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text


def print_stage(stage: str, loaded: LoadedRules) -> None:
    """`--print tree|ast|rules`: a front-end stage's output, file by file."""
    for rule_file in loaded.files:
        if stage == "tree":
            for tree in iter_trees(loaded.sources.text(rule_file.path) or ""):
                print(pretty_tree(tree))
        elif stage == "ast":
            print(dump_ast(rule_file))
        else:
            print(format_file(rule_file))
