"""The `cep` command line (see docs/cli.md and ../shared/spec/cli.md).

Exit status: 0 success, 1 the work found a problem, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Optional, Sequence

from cep import __version__
from cep.runtime.output import OutputFailed, finish_output

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cep", description="Complex event processing for smart homes, fed by MQTT.")
    parser.add_argument("--version", action="version", version=f"cep {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

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
                        help="after the trace, move the clock to TS (ISO-8601 or Unix seconds), "
                             "firing every timer due up to and including it")
    replay.add_argument("--tz", metavar="ZONE",
                        help="time zone for clock times, naive trace times and output "
                             "timestamps (overrides SET TIMEZONE)")
    replay.add_argument("--speed", type=float, metavar="X",
                        help="play at X times real time (default: as fast as possible)")
    replay.add_argument("--out", metavar="FILE", help="write output lines to FILE")
    replay.add_argument("--contexts", action="store_true",
                        help="also write context-start / context-end lines")
    replay.add_argument("--view", action="store_true",
                        help="show a live terminal view (contexts, rules, fired events, input) "
                             "on stderr or the terminal; with --view, output lines go only "
                             "to --out and nothing is written to stdout")
    replay.set_defaults(handler=run_replay)

    from cep.cli.live import add_live_commands

    add_live_commands(commands)

    from cep.cli.tools import add_tool_commands

    add_tool_commands(commands)
    return parser


MIN_SPEED = 1e-3  # a thousandth of real time: slower than this is a pause, not a replay


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except OutputFailed as exc:
        if not exc.closed_pipe:
            _error(f"cannot write output: {exc}")
            return EXIT_USAGE
        _quiet_stdout()
        return EXIT_OK
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK


def _quiet_stdout() -> None:
    """`cep ... | head`: the reader has seen enough. Later writes (and Python's flush at
    exit) go nowhere instead of raising again."""
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _error(message: str) -> None:
    print(f"cep: error: {message}", file=sys.stderr)


def _load(rule_paths: list[str]):  # noqa: ANN202 - LoadedRules, or an exit status
    """Read, parse and check rule files and folders; usage problems give EXIT_USAGE."""
    from cep.checks.loader import expand_paths, load_paths

    paths = expand_paths(rule_paths)
    if not paths:
        _error("no rule files found (folders are searched for *.epl)")
        return EXIT_USAGE
    try:
        return load_paths(paths)
    except OSError as exc:
        _error(f"cannot read {exc.filename}: {exc.strerror}")
    except UnicodeDecodeError as exc:
        _error(f"a rule file is not UTF-8 text: {exc}")
    return EXIT_USAGE


def run_check(args: argparse.Namespace) -> int:
    loaded = _load(args.rules)
    if isinstance(loaded, int):
        return loaded
    files = len(loaded.files)
    if args.stage:
        print_stage(args.stage, loaded)
    diagnostics = loaded.diagnostics.sorted()
    for diagnostic in diagnostics:
        if args.format == "json":
            print(json.dumps(diagnostic.as_dict(), ensure_ascii=False))
        else:
            print(diagnostic.render(loaded.sources))
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    rules = len(loaded.catalog.rules)
    print(f"{files} file{'s' if files != 1 else ''}, {rules} rule"
          f"{'s' if rules != 1 else ''}: {errors} error{'s' if errors != 1 else ''}, "
          f"{warnings} warning{'s' if warnings != 1 else ''}", file=sys.stderr)
    return EXIT_PROBLEM if errors else EXIT_OK


def _load_or_report(rule_paths: list[str]):  # noqa: ANN202 - LoadedRules | int
    """Load and check rules; on errors print them and return the exit status."""
    loaded = _load(rule_paths)
    if isinstance(loaded, int):
        return loaded
    for diagnostic in loaded.diagnostics.sorted():
        if diagnostic.is_error:
            print(diagnostic.render(loaded.sources), file=sys.stderr)
    if not loaded.ok:
        _error(f"the rules have {len(loaded.diagnostics.errors)} error(s); nothing was run")
        return EXIT_PROBLEM
    return loaded


def _zone(name: Optional[str], loaded) -> Optional[object]:  # noqa: ANN001
    from cep.language.timezones import get_zone

    zone_name = name or loaded.catalog.timezone
    zone = get_zone(zone_name)
    if zone is None:
        _error(f"unknown time zone {zone_name!r}")
    return zone


def run_replay(args: argparse.Namespace) -> int:
    import os

    from cep.adapters.trace import BadLine, parse_trace_ts
    from cep.runtime.engine import EngineError
    from cep.runtime.output import OutputWriter
    from cep.adapters.replay import replay

    loaded = _load_or_report(args.rules)
    if isinstance(loaded, int):
        return loaded
    tz = _zone(args.tz, loaded)
    if tz is None:
        return EXIT_USAGE
    if args.speed is not None and not MIN_SPEED <= args.speed < math.inf:
        _error(f"--speed must be a number from {MIN_SPEED:g} up (times real time)")
        return EXIT_USAGE
    until = None
    if args.until is not None:
        try:
            until = parse_trace_ts(_number_or_text(args.until), tz)
        except BadLine as exc:
            _error(f"--until: {exc}")
            return EXIT_USAGE
    trace = "/dev/stdin" if args.trace == "-" else args.trace
    if not os.path.isfile(trace) and trace != "/dev/stdin":
        _error(f"cannot read trace {args.trace}: no such file")
        return EXIT_USAGE
    view = None
    if getattr(args, "view", False):
        from cep.tools.view import ReplayView

        view = ReplayView(args.trace, trace, args.speed)
        if not view.available:
            _error("--view needs a terminal (stderr or /dev/tty)")
            return EXIT_USAGE
    out = open(args.out, "w", encoding="utf-8") if args.out else \
        (None if view is not None else sys.stdout)  # the view owns the terminal
    try:
        writer = OutputWriter(out, tz, flush=args.speed is not None) if out else None
        if view is not None:
            view.start()
        stats = replay(loaded.catalog, trace, view.tee(writer) if view else writer, tz,
                       report=lambda message: print(message, file=sys.stderr),
                       until=until, speed=args.speed, show_contexts=args.contexts,
                       tick=view.replay_tick if view is not None else None)
    except EngineError as exc:
        _error(str(exc))
        return EXIT_PROBLEM
    except BrokenPipeError:
        raise
    except OSError as exc:
        _error(f"cannot read trace {args.trace}: {exc.strerror or exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C while watching: the last frame stays, no traceback
        if view is None:
            raise
        view.stop()
        _error("interrupted")
        return 130
    finally:
        if view is not None:
            view.stop()
        finish_output(out)
    print(stats.summary(args.trace), file=sys.stderr)
    return EXIT_OK


def _number_or_text(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text


def print_stage(stage: str, loaded) -> None:  # noqa: ANN001 - LoadedRules
    from cep.language.parser import iter_trees

    for rule_file in loaded.files:
        if stage == "tree":
            with open(rule_file.path, encoding="utf-8") as handle:
                for tree in iter_trees(handle.read()):
                    print(tree.pretty())
        elif stage == "ast":
            from cep.language.printer import dump_ast

            print(dump_ast(rule_file))
        else:
            from cep.language.printer import format_file

            print(format_file(rule_file))
