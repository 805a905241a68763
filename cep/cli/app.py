"""The `cep` command: the argument parser and `main`, where every failure a command
raises is printed once and turned into its exit status (see docs/cli.md).

Exit status: 0 success, 1 the work found a problem, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cep import __version__
from cep.cli.common import EXIT_OK, EXIT_USAGE, CliError, print_error
from cep.cli.live import add_live_commands
from cep.cli.rules import add_rule_commands
from cep.cli.tools import add_tool_commands
from cep.runtime.output import OutputFailed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cep", description="Complex event processing for smart homes, fed by MQTT.")
    parser.add_argument("--version", action="version", version=f"cep {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    add_rule_commands(commands)
    add_live_commands(commands)
    add_tool_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


def _quiet_stdout() -> None:
    """`cep ... | head`: the reader has seen enough. Later writes (and Python's flush at
    exit) go nowhere instead of raising again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
