"""Text → parse trees → AST, one statement at a time, with readable syntax errors.

A file is first cut into statements at top-level `;` (strings and comments
respected), and each statement is parsed on its own with the LALR parser.  A
syntax error therefore costs only its own statement: the rest of the file is
still parsed and checked, and every error is reported.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import lark
from lark import Lark, Token, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from cep.language import ast
from cep.language.diagnostics import Diagnostics
from cep.language.files import replace_file
from cep.language.transformer import ToAst

GRAMMAR_FILE = "cep.lark"


def grammar_path() -> Path:
    """The grammar: `cep/grammar/` in an installed wheel, the top-level `grammar/` folder
    in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    for folder in (package / "grammar", package.parent / "grammar"):
        if (folder / GRAMMAR_FILE).is_file():
            return folder / GRAMMAR_FILE
    raise FileNotFoundError(f"{GRAMMAR_FILE} is neither in {package / 'grammar'} nor in "
                            f"{package.parent / 'grammar'}: reinstall cep")


def grammar_text() -> str:
    return grammar_path().read_text(encoding="utf-8")


LARK_OPTIONS = {"parser": "lalr", "lexer": "contextual", "propagate_positions": True,
                    "maybe_placeholders": True}


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    """The LALR parser, loaded from the user's cache when the grammar is unchanged.

    Building the LALR tables takes about 0.2 s, most of a short command's start-up;
    loading them takes a few milliseconds.
    """
    text = grammar_text()
    cache = parser_cache_file(text)
    if cache is not None:
        try:
            with cache.open("rb") as stream:
                return Lark.load(stream)
        except Exception:
            pass
    parser = Lark(text, **LARK_OPTIONS)
    if cache is not None:
        save_parser(parser, cache)
    return parser


def parser_cache_file(grammar: str) -> Path | None:
    """`$CEP_CACHE_DIR` (empty: no cache) or `~/.cache/cep`, named after everything the
    tables depend on: the grammar, the options, Lark's and Python's versions."""
    setting = os.environ.get("CEP_CACHE_DIR")
    if setting == "":
        return None
    folder = Path(setting) if setting else Path.home() / ".cache" / "cep"
    key = "\n".join([grammar, repr(sorted(LARK_OPTIONS.items())), lark.__version__,
                     sys.version])
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return folder / f"parser-{digest}.lark"


def save_parser(parser: Lark, path: Path) -> None:
    """Written whole or not at all, so that a concurrent `cep` never reads half a file,
    in a folder only the user can read (loading unpickles it); a cache that cannot be
    written is simply not used."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        replace_file(path, parser.save, binary=True, private=True)
    except OSError:
        pass


# ------------------------------------------------------------------ statement splitting


@dataclass(frozen=True)
class Chunk:
    """The text of one statement (without its `;`) and where it starts."""

    text: str
    line: int
    col: int


def split_statements(text: str) -> tuple[list[Chunk], list[tuple[str, int, int]]]:
    """Cut `text` at top-level semicolons.

    Returns the chunks and a list of lexical problems found while cutting
    (an unterminated block comment) as (message, line, col).
    """
    chunks: list[Chunk] = []
    problems: list[tuple[str, int, int]] = []
    i, n = 0, len(text)
    line, col = 1, 1
    start, start_line, start_col = 0, 1, 1

    def advance(upto: int) -> None:
        nonlocal i, line, col
        segment = text[i:upto]
        newlines = segment.count("\n")
        if newlines:
            line += newlines
            col = upto - segment.rfind("\n") - i
        else:
            col += upto - i
        i = upto

    while i < n:
        ch = text[i]
        if ch == ";":
            chunks.append(Chunk(text[start:i], start_line, start_col))
            advance(i + 1)
            start, start_line, start_col = i, line, col
        elif ch in "'\"":
            j = i + 1
            while j < n and text[j] != ch and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            if j < n and text[j] == ch:
                advance(j + 1)
            elif ";" in text[i:j]:
                # Unterminated, and it swallowed the `;` meant to end the statement: end the
                # statement with the line, so the next one is still parsed and checked.
                advance(min(j, n))
                chunks.append(Chunk(text[start:i], start_line, start_col))
                start, start_line, start_col = i, line, col
            else:
                advance(min(j, n))
        elif text.startswith("--", i):
            end = text.find("\n", i)
            advance(n if end < 0 else end)
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                problems.append(("unterminated comment: `/*` has no closing `*/`", line, col))
                chunks.append(Chunk(text[start:i], start_line, start_col))
                advance(n)
                start = n
            else:
                advance(end + 2)
        else:
            advance(i + 1)
    chunks.append(Chunk(text[start:], start_line, start_col))
    return [c for c in chunks if _has_code(c.text)], problems


_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


def _has_code(text: str) -> bool:
    return bool(_COMMENTS.sub("", text).strip())


def _positioned(chunk: Chunk) -> str:
    """The chunk padded so that Lark's line/column numbers are the file's."""
    return "\n" * (chunk.line - 1) + " " * (chunk.col - 1) + chunk.text


# ------------------------------------------------------------------ parsing


def parse_tree(chunk: Chunk) -> Tree[Token]:
    """The raw Lark parse tree of one statement (raises Lark's errors)."""
    return lark_parser().parse(_positioned(chunk))


def iter_trees(text: str) -> Iterator[Tree[Token]]:
    """Parse trees of every statement of a file that parses (for `--print tree`)."""
    chunks, _ = split_statements(text)
    for chunk in chunks:
        try:
            yield parse_tree(chunk)
        except UnexpectedInput:
            continue


def parse_text(text: str, path: str, diagnostics: Diagnostics) -> ast.RuleFile:
    """Parse a whole file; syntax errors go to `diagnostics`, good statements are kept."""
    chunks, problems = split_statements(text)
    for message, line, col in problems:
        diagnostics.error(message, ast.Span(path, line, col, line, col + 2))
    statements: list[ast.Statement] = []
    to_ast = ToAst(path, diagnostics)
    for chunk in chunks:
        try:
            tree = parse_tree(chunk)
        except UnexpectedInput as exc:
            diagnostics.error(*syntax_error(exc, chunk, path))
            continue
        try:
            statements.append(to_ast.transform(tree))
        except VisitError as exc:  # a bug in the transformer: still report it located
            meta = getattr(exc.obj, "meta", None)
            line = getattr(meta, "line", chunk.line)
            column = getattr(meta, "column", chunk.col)
            diagnostics.error(f"internal error while reading this statement: {exc.orig_exc}",
                              ast.Span(path, line, column, line, column + 1))
    return ast.RuleFile(path, tuple(statements), ast.Span(path, 1, 1, 1, 1))


# ------------------------------------------------------------------ syntax errors in words

# What a rule author calls each terminal.
TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a quoted string",
    "NUMBER": "a number",
    "TIME": "a clock time such as `22:00`",
    "ARROW": "`->`",
    "COMPARE": "a comparison such as `>`",
    "EQUALS": "`=`",
    "PLUS": "`+`",
    "MINUS": "`-`",
    "STAR": "`*`",
    "SLASH": "`/`",
    "PERCENT": "`%`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "COMMA": "`,`",
    "COLON": "`:`",
    "DOT": "`.`",
    "SEMICOLON": "`;`",
    "AT": "`AT`",
    "ANNOT": "`@`",
    "$END": "the end of the statement",
}

_STATEMENT_STARTS = {"CREATE", "SET", "SELECT", "INSERT", "CONTEXT", "ON", "ANNOT"}
_EXPRESSION_STARTERS = {"NAME", "NUMBER", "STRING"}

# Messages chosen by the word just before the error and what the parser expected there.
_BY_PREVIOUS_WORD = {
    "DURATION": "expected a duration such as `20 min`",
    "INTERVAL": "expected a duration such as `20 min`",
    "WITHIN": "expected a duration such as `20 min` or a distance such as `5 m`",
    "RADIUS": "expected a distance such as `150 m`",
    "QOS": "expected a QoS level: 0, 1 or 2",
    "TIMEZONE": "expected a quoted time zone such as 'Europe/Berlin'",
    "TOPIC": "expected a quoted topic such as 'home/{room}/temperature'",
    "PUBLISH": "expected a quoted topic to publish to, such as 'home/light/set'",
    "START": "expected a clock time such as `22:00`",
    "END": "expected a clock time such as `07:00`",
    "POLICY": "expected a policy: ADD, IGNORE, REFRESH or EXTEND",
    "INTO": "expected the name of the event type to insert into",
    "BY": "expected an event type, a pattern or attribute names after BY",
    "CONTEXT": "expected a context name",
    "EVENT": "expected an event type name",
    "LOCATION": "expected a location name",
}


def _friendly_expected(expected: set[str]) -> str:
    words: list[str] = []
    rest = set(expected)
    if _EXPRESSION_STARTERS <= rest:
        words.append("an expression")
        rest -= _EXPRESSION_STARTERS | {"TRUE", "FALSE", "NULL", "MINUS", "NOT", "LPAR", "CONTEXT"}
    for name in sorted(rest, key=lambda t: (t not in TERMINAL_WORDS, t)):
        word = TERMINAL_WORDS.get(name)
        if word is None:
            word = f"`{name}`" if name.isalpha() else f"`{name.lower()}`"
        words.append(word)
    if len(words) > 8:
        words = [*words[:8], "..."]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


_PREVIOUS = re.compile(r"([A-Za-z_][A-Za-z0-9_]*|\S)\s*$")


def _previous_word(text: str, pos: int) -> str:
    """The word or symbol just before `pos`, ignoring whitespace and comments."""
    before = _COMMENTS.sub(lambda m: " " * len(m.group(0)), text[:pos])
    match = _PREVIOUS.search(before)
    return match.group(1).upper() if match else ""


def _end_of_code(text: str, pos: int) -> tuple[int, int]:
    """Line and column just after the last code character before `pos`."""
    before = _COMMENTS.sub(lambda m: " " * len(m.group(0)), text[:pos]).rstrip()
    lines = before.split("\n")
    return len(lines), len(lines[-1]) + 1


def _found(token_type: str, value: str) -> str:
    if token_type == "$END":
        return "found the end of the statement"
    return f"found `{value}`"


def syntax_error(exc: UnexpectedInput, chunk: Chunk, path: str) -> tuple[str, ast.Span]:
    """Translate a Lark error into (message, span) a rule author understands."""
    text = _positioned(chunk)
    line, col = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream is not None else ""
        if char in "'\"":
            message = "unterminated string: a string must end on the line where it starts"
        else:
            message = f"unexpected character `{char}`"
        return message, ast.Span(path, line, col, line, col + 1)
    if isinstance(exc, UnexpectedEOF):
        token_type, value, pos = "$END", "", len(text)
        expected: set[str] = {str(name) for name in exc.expected}
    else:
        assert isinstance(exc, UnexpectedToken)
        token = exc.token
        token_type, value = token.type, str(token)
        pos = token.start_pos if token_type != "$END" and token.start_pos is not None else len(text)
        expected = _acceptable(exc)
    if token_type == "$END":
        line, col = _end_of_code(text, len(text))  # just after the statement's last word
    width = max(len(value), 1)
    span = ast.Span(path, line, col, line, col + width)
    if "$END" in expected and token_type in _STATEMENT_STARTS:
        end_line, end_col = _end_of_code(text, pos)
        return (f"missing `;` at the end of this statement (the next one starts with `{value}` "
                f"at line {line})", ast.Span(path, end_line, end_col, end_line, end_col + 1))
    previous = _previous_word(text, pos)
    hint = _BY_PREVIOUS_WORD.get(previous)
    if previous == "(" and _previous_word(text, text.rfind("(", 0, pos)) in ("INTERVAL", "WITHIN"):
        hint = "expected a duration such as `20 min`"
    if hint is None or not _hint_fits(hint, expected):
        hint = "expected " + _friendly_expected(expected)
    return f"{hint}, {_found(token_type, value)}", span


def _acceptable(exc: UnexpectedToken) -> set[str]:
    """The terminals that could really come next.

    LALR's own `expected` set may include follow tokens of merged states;
    asking the interactive parser what it accepts gives the precise set.
    """
    interactive = getattr(exc, "interactive_parser", None)
    if interactive is not None:
        try:
            accepted = set(interactive.accepts())
        except Exception:  # pragma: no cover - fall back to Lark's own set
            accepted = set()
        if accepted:
            return accepted
    return set(exc.expected)


def _hint_fits(hint: str, expected: set[str]) -> bool:
    """Use a word-based hint only where the parser really wanted that kind of thing."""
    if "duration" in hint or "distance" in hint or "QoS" in hint:
        return "NUMBER" in expected
    if "clock time" in hint:
        return "TIME" in expected
    if "quoted" in hint:
        return "STRING" in expected
    return "NAME" in expected
