"""Expressions compiled to closures: values, null semantics, functions; table-driven."""

import pytest

from cep.language.diagnostics import Diagnostics
from cep.language.parser import parse_text
from cep.runtime.expressions import ExpressionCompiler

ATTRS = {"x": 7, "y": 2, "f": 2.5, "s": "kitchen", "n": None, "big": 1e307, "neg": -7}


def evaluate(text: str):
    diagnostics = Diagnostics()
    rule = parse_text(f"SELECT {text} AS v FROM A;", "e.epl", diagnostics).statements[0]
    assert not diagnostics.has_errors(), [d.message for d in diagnostics]
    compiled = ExpressionCompiler(frozenset(), frozenset(ATTRS)).compile(rule.select[0].expr)
    return compiled(ATTRS, {}, None)


CASES = [
    ("x + y * 2", 11), ("(x + y) * 2", 18), ("x / y", 3.5), ("x % y", 1), ("neg % y", -1),
    ("-x", -7), ("x / 0", None), ("x % 0", None), ("x + n", None), ("'a' + s", "akitchen"),
    ("x > 5 and y < 5", True), ("x > 5 and n > 1", False), ("n = null", False),
    ("n != 1", False), ("not (n > 1)", True), ("not n", False), ("n is null", True),
    ("x is not null", True), ("x in (1, 7)", True), ("x not in (1, 7)", False),
    ("n in (1, 2)", False), ("x between 7 and 8", True), ("x not between 1 and 6", True),
    ("s like 'kit%'", True), ("s like 'k_tchen'", True), ("s like 'K%'", False),
    ("s not like '%x%'", True), ("n like '%'", False),
    ("abs(neg)", 7), ("round(f)", 3), ("round(-f)", -3), ("round(2.345, 2)", 2.35),
    ("round(big, 2)", 1e307), ("round(x, -400)", None), ("min(x, y)", 2), ("max(x, f)", 7),
    ("min(x, n)", None), ("lower('AbC')", "abc"), ("upper(s)", "KITCHEN"),
    ("coalesce(n, n, x)", 7), ("coalesce(n)", None), ("x = 7.0", True),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[c[0] for c in CASES])
def test_expression(text, expected):
    assert evaluate(text) == expected


def test_values_the_checker_cannot_type_never_raise():
    compiled = ExpressionCompiler(frozenset(), frozenset({"k"})).compile(
        parse_text("SELECT k > 5 AS v FROM A;", "e.epl", Diagnostics()).statements[0]
        .select[0].expr)
    assert compiled({"k": "kitchen"}, {}, None) is False
