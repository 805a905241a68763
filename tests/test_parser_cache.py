"""The LALR tables are cached per user: a warm cache gives the same parser, a damaged one is
rebuilt, and an empty CEP_CACHE_DIR turns caching off."""

from __future__ import annotations

import pytest

from cep.language import parser
from cep.language.parser import lark_parser, parser_cache_file

RULE = """
CREATE EVENT PillowPressure (value FLOAT) FROM TOPIC 'home/bedroom/pillow';
INSERT INTO LeftBed SELECT b.value AS pressure
FROM PATTERN [ every a=PillowPressure(value > 100) -> b=PillowPressure(value < 100) ];
"""


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("CEP_CACHE_DIR", str(tmp_path / "cache"))
    lark_parser.cache_clear()
    yield tmp_path / "cache"
    lark_parser.cache_clear()


def parse_all(text: str) -> list:
    return [lark_parser().parse(chunk.text) for chunk in parser.split_statements(text)[0]]


def test_cold_then_warm_cache_parse_alike_with_positions(fresh):
    cold = parse_all(RULE)
    files = list(fresh.iterdir())
    assert [path.name for path in files] == [parser_cache_file(parser.grammar_text()).name]
    lark_parser.cache_clear()
    warm = parse_all(RULE)
    assert warm == cold
    # positions survive the cache (errors and the AST need them)
    assert warm[1].meta.line == cold[1].meta.line and warm[1].meta.column == cold[1].meta.column


def test_damaged_cache_is_rebuilt(fresh):
    parse_all(RULE)
    (path,) = fresh.iterdir()
    path.write_bytes(b"not a parser")
    lark_parser.cache_clear()
    assert parse_all(RULE)
    assert path.read_bytes() != b"not a parser"


def test_cache_key_changes_with_the_grammar():
    text = parser.grammar_text()
    assert parser_cache_file(text) != parser_cache_file(text + "\n// changed\n")


def test_empty_setting_disables_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CEP_CACHE_DIR", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    lark_parser.cache_clear()
    try:
        assert parse_all(RULE)
        assert parser_cache_file(parser.grammar_text()) is None
        assert not any(tmp_path.iterdir())
    finally:
        lark_parser.cache_clear()
