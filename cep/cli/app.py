"""The `cep` command: the argument parser and `main`, where every failure a command
raises is printed once and turned into its exit status (see docs/cli.md).

Exit status: 0 success, 1 the work found a problem, 2 bad usage or unreadable input,
3 an internal error (a bug: any other exception; `--debug` shows its traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from cep import __version__
from cep.cli.cluster import add_cluster_commands
from cep.cli.common import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, CliError, print_error
from cep.cli.live import add_live_commands
from cep.cli.rules import add_rule_commands
from cep.cli.tools import add_tool_commands
from cep.language.sources import printable
from cep.runtime.output import OutputFailed

HELP_WIDTH = 100  # wide enough for each command's line of `cep --help` to stay one line


class _TopHelp(argparse.HelpFormatter):
    """`cep --help`: each command on a line of its own, under `commands:` (without the
    `COMMAND` line argparse puts above them)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=HELP_WIDTH, max_help_position=16)

    def _format_action(self, action: argparse.Action) -> str:
        if isinstance(action, argparse._SubParsersAction):
            return "".join(super(_TopHelp, self)._format_action(command)
                           for command in action._get_subactions())
        return super()._format_action(action)


def build_variant() -> str:
    """Which build runs: the engine's modules compiled with mypyc (`CEP_COMPILE=1 pip
    install .`), or pure Python."""
    from cep.runtime import engine

    return "pure Python" if engine.__file__.endswith(".py") else "compiled with mypyc"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cep", description="Complex event processing for smart homes, fed by MQTT.",
        epilog="`cep COMMAND --help` shows a command's options; docs/cli.md describes "
               "them all.",
        formatter_class=_TopHelp)
    parser.add_argument("--version", action="version",
                        version=f"cep {__version__} ({build_variant()})")
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error, also print the Python traceback")
    # not `required`: without a command, `main` prints the help (the commands, one line
    # each) rather than argparse's bare "the following arguments are required"
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    add_rule_commands(commands)
    add_live_commands(commands)
    add_tool_commands(commands)
    add_cluster_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `cep` or `cep --debug`: what the commands are, exit 2
        parser.print_help(sys.stderr)
        print_error("no command given")
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except CliError as exc:
        print_error(exc.message)
        return exc.code
    except OutputFailed as exc:
        if not exc.closed_pipe:
            print_error(f"cannot write output: {exc}")
            return EXIT_USAGE
        _quiet_stdout()
        return EXIT_OK
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except Exception as exc:  # a bug in cep: say so in one line, not with a traceback
        if args.debug:
            traceback.print_exc()
        print(internal_error_message(exc), file=sys.stderr)
        return EXIT_INTERNAL


REPORT_TO = "to the cep developers"
_LONGEST_REASON = 300


def internal_error_message(exc: BaseException) -> str:
    """`cep: internal error: <what>; please report it ...`, on one line."""
    reason = printable(" ".join(str(exc).split()))
    if len(reason) > _LONGEST_REASON:
        reason = reason[:_LONGEST_REASON] + "..."
    what = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return (f"cep: internal error: {what}; please report it {REPORT_TO} with the command "
            "you ran (`cep --debug ...` shows the traceback)")


def _quiet_stdout() -> None:
    """`cep ... | head`: the reader has seen enough. Later writes (and Python's flush at
    exit) go nowhere instead of raising again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
