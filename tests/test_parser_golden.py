"""Golden tests of the parser: tests/golden/parser/<kind>.epl is parsed and its AST,
written with `cep.language.printer.dump_ast`, must equal tests/golden/parser/<kind>.ast.

One input per statement kind (plus `language_example.epl`, the whole example of
section 1 of the language contract), each with many variants: keywords in any
case, `--` and `/* */` comments, both quote styles.

To accept a changed parse, rewrite the expected files and review the diff:

    CEP_UPDATE_GOLDEN=1 python3 -m pytest tests/test_parser_golden.py
    git diff tests/golden/parser

An input must parse without any diagnostic; the update refuses to write an
expected file for one that does not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cep.language.diagnostics import Diagnostics
from cep.language.parser import parse_text
from cep.language.printer import dump_ast

GOLDEN = Path(__file__).resolve().parent / "golden" / "parser"
UPDATE = os.environ.get("CEP_UPDATE_GOLDEN") == "1"

KINDS = [
    "set_timezone",
    "create_event",
    "create_location",
    "create_context_recurring",
    "create_context_event_interval",
    "create_context_partition",
    "create_context_spatial",
    "create_context_composite",
    "select_rule_stream",
    "select_rule_pattern",
    "on_rules",
    "patterns",
    "expressions",
    "language_example",
]

INPUTS = sorted(GOLDEN.glob("*.epl"))


def _dump(source: Path) -> str:
    diagnostics = Diagnostics()
    # The bare file name keeps the dump the same wherever the checkout is.
    rule_file = parse_text(source.read_text(encoding="utf-8"), source.name, diagnostics)
    problems = [d.headline() for d in diagnostics]
    assert not problems, "a golden input must parse cleanly:\n" + "\n".join(problems)
    return dump_ast(rule_file)


@pytest.mark.parametrize("source", INPUTS, ids=[p.stem for p in INPUTS])
def test_parse_matches_golden(source: Path) -> None:
    actual = _dump(source)
    expected_file = source.with_suffix(".ast")
    if UPDATE:
        expected_file.write_text(actual, encoding="utf-8")
        return
    assert expected_file.exists(), (f"{expected_file.name} is missing: "
                                    "run with CEP_UPDATE_GOLDEN=1 and review it")
    expected = expected_file.read_text(encoding="utf-8")
    assert actual == expected, f"{source.name} parses differently from {expected_file.name}"


def test_every_kind_has_a_golden_file() -> None:
    assert sorted(p.stem for p in INPUTS) == sorted(KINDS)
    missing = [k for k in KINDS if not (GOLDEN / f"{k}.ast").exists()]
    assert not missing or UPDATE, f"no expected output for {missing}"


def test_no_expected_file_without_input() -> None:
    orphans = [p.name for p in GOLDEN.glob("*.ast") if not p.with_suffix(".epl").exists()]
    assert not orphans


def test_golden_inputs_hold_every_statement() -> None:
    """A statement that silently went missing would also vanish from the dump."""
    for source in INPUTS:
        dump = _dump(source)
        statements = sum(1 for line in dump.splitlines() if line.startswith("    [")
                         and line.split("] ", 1)[1].split(" ")[0] in {
                             "SetTimezone", "CreateEvent", "CreateLocation", "CreateContext",
                             "SelectRule", "OnRule"})
        assert statements == _count_statements(source.read_text(encoding="utf-8")), source.name


def _count_statements(text: str) -> int:
    """Top-level `;` in `text`, outside strings and comments."""
    count, i = 0, 0
    while i < len(text):
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif text[i] in "'\"":
            quote, i = text[i], i + 1
            while text[i] != quote:
                i += 2 if text[i] == "\\" else 1
            i += 1
        else:
            count += text[i] == ";"
            i += 1
    return count
