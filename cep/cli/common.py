"""What the command groups share: exit statuses, the one error type, loading rules."""

from __future__ import annotations

import argparse
import sys
from datetime import tzinfo
from typing import TYPE_CHECKING

from cep.checks.loader import LoadedRules, expand_paths, load_paths
from cep.language.diagnostics import plural
from cep.language.timezones import ZONE_HELP, get_zone
from cep.runtime.output import Sink

if TYPE_CHECKING:
    from cep.tools.view.app import TerminalView  # rich loads only for --view

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
EXIT_INTERNAL = 3  # a bug: an exception no command expected (`main` prints one line)
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it


class CliError(Exception):
    """A command cannot go on: `main` prints `cep: error: MESSAGE` and exits with `code`
    (EXIT_USAGE for bad usage or unreadable input, EXIT_PROBLEM for a problem the
    work found). The only way a command reports a failure of its own."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def print_error(message: str) -> None:
    print(f"cep: error: {message}", file=sys.stderr)


def report(message: str) -> None:
    """Progress and connection news on stderr, as they happen."""
    print(f"cep: {message}", file=sys.stderr, flush=True)


def load_rules(rule_paths: list[str]) -> LoadedRules:
    """Read, parse and check rule files and folders (errors stay in the result)."""
    paths = expand_paths(rule_paths)
    if not paths:
        raise CliError("no rule files found (folders are searched for *.epl)")
    try:
        return load_paths(paths)
    except OSError as exc:
        raise CliError(f"cannot read {exc.filename}: {exc.strerror}") from exc


def load_runnable_rules(rule_paths: list[str]) -> LoadedRules:
    """Rules to run: on any error, print the errors and stop with EXIT_PROBLEM."""
    loaded = load_rules(rule_paths)
    for diagnostic in loaded.diagnostics.sorted():
        if diagnostic.is_error:
            print(diagnostic.render(loaded.sources), file=sys.stderr)
    if not loaded.ok:
        raise CliError(f"the rules have {plural(len(loaded.diagnostics.errors), 'error')}; "
                       f"nothing was run", EXIT_PROBLEM)
    return loaded


def output_sink(writer: Sink | None, view: TerminalView | None) -> Sink:
    """What the engine writes its outputs to: with --view, the view's tee (it remembers
    the recent ones) around the writer, if any; else the writer."""
    if view is not None:
        return view.tee(writer)
    if writer is None:
        raise ValueError("without --view, output lines need somewhere to go")
    return writer


def view_only_notice(outputs: int) -> str | None:
    """What `--view` without `--out` says at exit: the output lines it showed are not
    written anywhere (None when there were none)."""
    if not outputs:
        return None
    shown = plural(outputs, "output line was", "output lines were")
    return (f"cep: {shown} shown in the view only; write "
            f"{'it' if outputs == 1 else 'them'} with --out FILE")


def time_zone(name: str | None, loaded: LoadedRules | None = None) -> tzinfo:
    """The zone named by an option, else the rules' SET TIMEZONE (else UTC)."""
    zone_name = name or (loaded.catalog.timezone if loaded is not None else "UTC")
    zone = get_zone(zone_name)
    if zone is None:
        shown = zone_name if len(zone_name) <= 80 else zone_name[:80] + "..."
        raise CliError(f"unknown time zone {shown!r}: {ZONE_HELP}")
    return zone


def at_least_one(text: str) -> int:
    """An argparse type: a whole number from 1 up."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is less than 1")
    return number
