"""The `cep` command line (see docs/cli.md and ../shared/spec/cli.md).

Exit status: 0 success, 1 the work found a problem, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from cep import __version__

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
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:  # `cep ... | head`
        return EXIT_OK


def _error(message: str) -> None:
    print(f"cep: error: {message}", file=sys.stderr)


def run_check(args: argparse.Namespace) -> int:
    from cep.loader import expand_paths, load_paths

    paths = expand_paths(args.rules)
    if not paths:
        _error("no rule files found (folders are searched for *.epl)")
        return EXIT_USAGE
    try:
        loaded = load_paths(paths)
    except OSError as exc:
        _error(f"cannot read {exc.filename}: {exc.strerror}")
        return EXIT_USAGE
    except UnicodeDecodeError as exc:
        _error(f"a rule file is not UTF-8 text: {exc}")
        return EXIT_USAGE
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
    print(f"{len(paths)} file{'s' if len(paths) != 1 else ''}, {rules} rule"
          f"{'s' if rules != 1 else ''}: {errors} error{'s' if errors != 1 else ''}, "
          f"{warnings} warning{'s' if warnings != 1 else ''}", file=sys.stderr)
    return EXIT_PROBLEM if errors else EXIT_OK


def print_stage(stage: str, loaded) -> None:  # noqa: ANN001 - LoadedRules
    from cep.parser import iter_trees

    for rule_file in loaded.files:
        if stage == "tree":
            with open(rule_file.path, encoding="utf-8") as handle:
                for tree in iter_trees(handle.read()):
                    print(tree.pretty())
        elif stage == "ast":
            from cep.printer import dump_ast

            print(dump_ast(rule_file))
        else:
            from cep.printer import format_file

            print(format_file(rule_file))
