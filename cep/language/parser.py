"""Text → parse trees → AST, one statement at a time, with readable syntax errors.

A file is first normalised (cep.language.sources: no byte-order mark, every line break
a `\n`), then cut into statements at top-level `;` (strings and comments respected),
and each statement is parsed on its own with the LALR parser.  A syntax error
therefore costs only its own statement: the rest of the file is still parsed and
checked, and every error is reported.

Everything here is linear in the size of the file: the cutting is one pass, each
statement is parsed from its own text (its places moved to the file's afterwards, not
by padding it with the text before it), and no position is found by rescanning. Lark's
parser is iterative; the transformer walks the tree without recursion; and a statement
that nests deeper than MAX_NESTING is refused before any stage that recurses sees it.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import lark
from lark import Lark, Token, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from cep.language import ast
from cep.language.diagnostics import (
    CONTEXT,
    EVENT_TYPE,
    LOCATION,
    SETTING,
    WINDOW,
    Diagnostics,
)
from cep.language.files import replace_file
from cep.language.sources import normalise
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
    loading them takes a few milliseconds. Loading unpickles the file, so the cache is
    used only in a folder that no other user can write to, and only a file that the user
    owns and no one else can read or write (`cache_folder_is_private`, `_load_cache`);
    anything else is left alone, and the tables are built afresh.
    """
    text = grammar_text()
    cache = parser_cache_file(text)
    if cache is not None and not cache_folder_is_private(cache.parent):
        cache = None
    if cache is not None:
        loaded = _load_cache(cache)
        if loaded is not None:
            return loaded
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


def _user() -> int | None:
    getuid = getattr(os, "getuid", None)  # not on Windows: there the cache is not used
    return None if getuid is None else int(getuid())


def cache_folder_is_private(folder: Path) -> bool:
    """Whether the cache may live in `folder`: it is a folder (made with mode 0700 if it is
    missing) owned by the user, and neither its group nor others may write to it, so no
    one else can put a file there."""
    user = _user()
    if user is None:
        return False
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        info = os.stat(folder)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == user
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _load_cache(path: Path) -> Lark | None:
    """The cached parser, if the file is a regular file of the user's that only the user
    may read and write (mode 0600 or stricter); None otherwise or if it cannot be read."""
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(handle, "rb") as stream:
        info = os.fstat(stream.fileno())
        if (not stat.S_ISREG(info.st_mode) or info.st_uid != _user()
                or info.st_mode & 0o077):
            return None
        try:
            return Lark.load(stream)
        except Exception:  # damaged or from another version: build the tables again
            return None


def save_parser(parser: Lark, path: Path) -> None:
    """Written whole or not at all, so that a concurrent `cep` never reads half a file,
    with mode 0600 (loading unpickles it); a cache that cannot be written is simply not
    used."""
    try:
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


# What the splitter stops at: a statement's end, a string's start, a comment's start.
_SPLITTER_STOPS = re.compile(r"[;'\"]|--|/\*")
# A string's body, as the splitter reads it: up to its closing quote or the end of its
# line (a backslash escapes the next character, whatever it is).
_STRING_BODY = {"'": re.compile(r"[^'\\\n]*(?:\\.[^'\\\n]*)*", re.S),
                '"': re.compile(r'[^"\\\n]*(?:\\.[^"\\\n]*)*', re.S)}
# Code, for knowing whether a chunk holds any: what the lexer does not skip as whitespace.
_CODE = re.compile(r"[^ \t\f\r\n]")


class _Lines:
    """Line and column of offsets in a text, asked in increasing order: counting only the
    text between the previous offset and this one keeps a whole file linear."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.offset = 0
        self.line = 1
        self.line_start = 0

    def at(self, offset: int) -> tuple[int, int]:
        newlines = self.text.count("\n", self.offset, offset)
        if newlines:
            self.line += newlines
            self.line_start = self.text.rindex("\n", self.offset, offset) + 1
        self.offset = offset
        return self.line, offset - self.line_start + 1


def split_statements(text: str) -> tuple[list[Chunk], list[tuple[str, int, int]]]:
    """Cut `text` (normalised: see cep.language.sources) at top-level semicolons.

    Returns the chunks that hold code and a list of lexical problems found while
    cutting (an unterminated block comment) as (message, line, col). One pass over the
    text, with the regular expressions doing the scanning.
    """
    chunks: list[Chunk] = []
    problems: list[tuple[str, int, int]] = []
    lines = _Lines(text)
    n = len(text)
    start = 0         # where the current statement starts
    has_code = False  # whether it holds anything but whitespace and comments so far

    def cut(end: int) -> None:
        nonlocal has_code
        if has_code:
            line, col = lines.at(start)
            chunks.append(Chunk(text[start:end], line, col))
        has_code = False

    i = 0
    while i < n:
        stop = _SPLITTER_STOPS.search(text, i)
        at = n if stop is None else stop.start()
        if not has_code and _CODE.search(text, i, at):
            has_code = True
        if stop is None:
            break
        mark = stop.group()
        if mark == ";":
            cut(at)
            start = i = at + 1
        elif mark == "'" or mark == '"':
            has_code = True
            body = _STRING_BODY[mark].match(text, at + 1)
            j = body.end() if body is not None else at + 1
            if j < n and text[j] == mark:
                i = j + 1
            elif text.find(";", at, j) >= 0:
                # Unterminated, and it swallowed the `;` meant to end the statement: end the
                # statement with the line, so the next one is still parsed and checked.
                cut(j)
                start = i = j
            else:
                i = j
        elif mark == "--":
            end = text.find("\n", at)
            i = n if end < 0 else end
        else:  # "/*"
            end = text.find("*/", at + 2)
            if end >= 0:
                i = end + 2
                continue
            cut(at)
            line, col = lines.at(at)
            problems.append(("unterminated comment: `/*` has no closing `*/`", line, col))
            start = i = n
    if start < n:
        cut(n)
    return chunks, problems


# ------------------------------------------------------------------ nesting

MAX_NESTING = 100
"""How deep an expression, pattern or payload of one statement may nest (docs/language.md,
section "Limits"). The stages after the parser walk the AST recursively; at this depth
the deepest of them stays far from Python's recursion limit."""

# What each parse-tree node adds to the nesting (see `nesting_weight`); nodes not listed
# (statements, clauses, leaves) add nothing.
_ONE_LEVEL = frozenset({
    "group", "expr_not", "compare", "arith", "negate", "in_list", "between", "like",
    "is_null", "call",
    "pattern_group", "followed_by", "pattern_or", "pattern_and", "every", "pattern_not",
    "until", "repeat", "within", "event_atom",
    "json_object", "json_array"})
_TWO_LEVELS = frozenset({"every_repeat", "not_repeat"})  # `every [n] p`: Every over Repeat
_CHAINS = frozenset({"expr_or", "expr_and"})  # `a AND b AND c`: nested pairs in the AST
_PATTERN_NODES = frozenset({
    "pattern_group", "followed_by", "pattern_or", "pattern_and", "every", "pattern_not",
    "until", "repeat", "within", "every_repeat", "not_repeat", "event_atom", "timer_interval"})
_PAYLOAD_NODES = frozenset({"json_object", "json_array", "json_member"})


def nesting_weight(tree: Tree[Token]) -> int:
    """The levels a parse-tree node adds: one per pair of parentheses, operator, function
    call, pattern operator, event in a pattern and JSON object or array; and a chain
    `a AND b AND c` (or OR) one per operator, because it becomes nested pairs in the AST
    (`a -> b -> c` and a pattern's `and`/`or` chain stay flat: one level)."""
    data = tree.data
    if data in _ONE_LEVEL:
        return 1
    if data in _CHAINS:
        return (len(tree.children) - 1) // 2  # operands - 1: the children alternate with OR
    if data in _TWO_LEVELS:
        return 2
    return 0


def nesting(tree: Tree[Token]) -> int:
    """How deep a statement's parse tree nests, in the levels of `nesting_weight`."""
    deepest = 0
    pending: list[tuple[Tree[Token], int]] = [(tree, 0)]
    while pending:
        node, outer = pending.pop()
        level = outer + nesting_weight(node)
        deepest = max(deepest, level)
        pending.extend((child, level) for child in node.children if isinstance(child, Tree))
    return deepest


def too_deep(tree: Tree[Token], limit: int = MAX_NESTING) -> tuple[Tree[Token], str] | None:
    """The first node (in the text) at which the statement nests deeper than `limit`, and
    what nests (the outermost nesting construct on its way: a pattern, an expression or a
    payload), or None. Iterative: this runs before anything that recurses into the tree."""
    first: tuple[Tree[Token], str] | None = None
    first_place = (0, 0)
    pending: list[tuple[Tree[Token], int, str]] = [(tree, 0, "")]
    while pending:
        node, outer, what = pending.pop()
        weight = nesting_weight(node)
        if weight and not what:
            what = ("pattern" if node.data in _PATTERN_NODES else
                    "payload" if node.data in _PAYLOAD_NODES else "expression")
        level = outer + weight
        if level > limit:
            place = (getattr(node.meta, "line", 0), getattr(node.meta, "column", 0))
            if first is None or place < first_place:
                first, first_place = (node, what), place
            continue
        pending.extend((child, level, what) for child in node.children
                       if isinstance(child, Tree))
    return first


def _nesting_message(what: str, limit: int) -> str:
    return (f"this {what} nests more than {limit} levels deep (each parenthesis, operator, "
            f"function call, pattern operator and JSON bracket is a level); split it into "
            f"smaller parts, for example with INSERT INTO rules or fewer parentheses")


# ------------------------------------------------------------------ parsing


def parse_tree(chunk: Chunk) -> Tree[Token]:
    """The raw Lark parse tree of one statement (raises Lark's errors). Its places count
    from the start of the statement: line 1 is the statement's first line."""
    return lark_parser().parse(chunk.text)


def iter_trees(text: str) -> Iterator[Tree[Token]]:
    """Parse trees of every statement of a file that parses (for `--print tree`)."""
    chunks, _ = split_statements(normalise(text))
    for chunk in chunks:
        try:
            yield parse_tree(chunk)
        except UnexpectedInput:
            continue


def pretty_tree(tree: Tree[Token], indent: str = "  ") -> str:
    """`tree.pretty()` without recursion: the same text for a tree of any depth."""
    out: list[str] = []
    pending: list[tuple[Any, int]] = [(tree, 0)]
    while pending:
        node, level = pending.pop()
        if not isinstance(node, Tree):
            out.append(f"{indent * level}{node}\n")
            continue
        if len(node.children) == 1 and not isinstance(node.children[0], Tree):
            out.append(f"{indent * level}{node.data}\t{node.children[0]}\n")
            continue
        out.append(f"{indent * level}{node.data}\n")
        pending.extend((child, level + 1) for child in reversed(node.children))
    return "".join(out)


def parse_text(text: str, path: str, diagnostics: Diagnostics) -> ast.RuleFile:
    """Parse a whole file; syntax errors go to `diagnostics`, good statements are kept.

    The text is normalised first (cep.language.sources): a byte-order mark dropped, every
    line break a `\n`. A statement that nests deeper than MAX_NESTING is an error at the
    place where it goes too deep, and is not read any further."""
    text = normalise(text)
    chunks, problems = split_statements(text)
    for message, line, col in problems:
        diagnostics.error(message, ast.Span(path, line, col, line, col + 2))
    statements: list[ast.Statement] = []
    to_ast = ToAst(path, diagnostics)
    with without_cycle_collection():
        for chunk in chunks:
            try:
                tree = parse_tree(chunk)
            except UnexpectedInput as exc:
                diagnostics.error(*syntax_error(exc, chunk, path))
                _note_failed(chunk, diagnostics)
                continue
            deep = too_deep(tree)
            if deep is not None:
                node, what = deep
                line, col = _place(chunk, getattr(node.meta, "line", 1),
                                   getattr(node.meta, "column", 1))
                diagnostics.error(_nesting_message(what, MAX_NESTING),
                                  ast.Span(path, line, col, line, col + 1))
                _note_failed(chunk, diagnostics)
                continue
            statements.append(to_ast.transform(tree, chunk.line, chunk.col))
    return ast.RuleFile(path, tuple(statements), ast.Span(path, 1, 1, 1, 1))


# What a statement declares, read from its text when it did not parse (so that the checks
# do not report the uses of those names as unknown: the syntax error said what is wrong).
# A chunk that lost its `;` holds two statements, and so may declare two names.
_DECLARES = re.compile(r"\b(?:CREATE\s+(EVENT|CONTEXT|WINDOW|LOCATION)|INSERT\s+INTO)\s+"
                       r"([A-Za-z_][A-Za-z0-9_]*)|\bSET\s+(LOCATION|TIMEZONE)\b", re.I)
_DECLARED_KIND = {"EVENT": EVENT_TYPE, "CONTEXT": CONTEXT, "WINDOW": WINDOW,
                  "LOCATION": LOCATION}


def declared_names(text: str) -> list[tuple[str, str]]:
    """(kind, name) of what a statement's text declares, read with a regular expression
    (strings and comments left out): `CREATE EVENT Name`, `INSERT INTO Name` (an event
    type), `CREATE CONTEXT Name`, `CREATE WINDOW Name`, `CREATE LOCATION Name`, and
    `SET LOCATION` / `SET TIMEZONE` (a setting)."""
    names: list[tuple[str, str]] = []
    for match in _DECLARES.finditer(_without_strings(text)):
        create, name, setting = match.groups()
        if setting is not None:
            names.append((SETTING, setting.upper()))
        else:
            names.append((_DECLARED_KIND[create.upper()] if create else EVENT_TYPE, name))
    return names


def _note_failed(chunk: Chunk, diagnostics: Diagnostics) -> None:
    for kind, name in declared_names(chunk.text):
        diagnostics.declaration_failed(kind, name)


@contextlib.contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused: parse trees and the AST hold no reference cycles
    (reference counting frees them), but the collector would scan the growing AST again
    and again, some 40 % of the time a large rule file takes.  The same holds for an
    engine's snapshot and restore (cep.runtime.snapshot), which it made five times
    slower with 50,000 partial matches."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _place(chunk: Chunk, line: int, col: int) -> tuple[int, int]:
    """A (line, col) in the chunk's own text as (line, col) in its file."""
    return chunk.line + line - 1, (col + chunk.col - 1 if line == 1 else col)


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
    "HASH": "`#`",
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
        rest -= _EXPRESSION_STARTERS | {"TRUE", "FALSE", "NULL", "MINUS", "NOT", "LPAR", "CONTEXT",
                                        "CASE"}
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


# Strings (even unterminated: to the end of their line) and comments (even unterminated:
# to the end), so that comments can be blanked out in one linear pass.
_LEXICAL = re.compile(r"""'[^'\\\n]*(?:\\.[^'\\\n]*)*'?|"[^"\\\n]*(?:\\.[^"\\\n]*)*"?"""
                      r"""|--[^\n]*|/\*[\s\S]*?(?:\*/|\Z)""")
_NOT_NEWLINE = re.compile(r"[^\n]")
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _blank(match: re.Match[str]) -> str:
    found = match.group(0)
    if found.startswith(("--", "/*")):
        return _NOT_NEWLINE.sub(" ", found)
    return found


def _without_comments(text: str) -> str:
    """`text` with every comment blanked out (newlines kept), strings left as they are."""
    return _LEXICAL.sub(_blank, text)


def _blank_all(match: re.Match[str]) -> str:
    return _NOT_NEWLINE.sub(" ", match.group(0))


def _without_strings(text: str) -> str:
    """`text` with every comment and string blanked out (newlines kept)."""
    return _LEXICAL.sub(_blank_all, text)


def _previous_word(text: str, pos: int) -> str:
    """The word or symbol just before `pos`, ignoring whitespace and comments."""
    before = _without_comments(text[:pos]).rstrip()
    if not before:
        return ""
    begin = len(before)
    while begin > 0 and before[begin - 1] in _WORD_CHARS:
        begin -= 1
    run = before[begin:]
    for k, char in enumerate(run):  # a word starts with a letter or `_`
        if not char.isdigit():
            return run[k:].upper()
    return before[-1].upper()


def _end_of_code(text: str, pos: int) -> tuple[int, int]:
    """Line and column (in `text`) just after the last code character before `pos`."""
    before = _without_comments(text[:pos]).rstrip()
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _found(token_type: str, value: str) -> str:
    if token_type == "$END":
        return "found the end of the statement"
    if len(value) > 40:
        value = value[:40] + "..."
    return f"found `{value}`"


def syntax_error(exc: UnexpectedInput, chunk: Chunk, path: str) -> tuple[str, ast.Span]:
    """Translate a Lark error into (message, span) a rule author understands.

    Lark's places count from the start of the chunk; the span is in the file."""
    text = chunk.text

    def span(line: int, col: int, width: int = 1) -> ast.Span:
        line, col = _place(chunk, line, col)
        return ast.Span(path, line, col, line, col + width)

    line, col = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream if exc.pos_in_stream is not None else len(text)
        char = text[at] if at < len(text) else ""
        if char in "'\"" and char:
            message = "unterminated string: a string must end on the line where it starts"
        elif char in _FOREIGN_OPERATORS:
            written = text[at:at + 2] if text[at:at + 2] == char * 2 else char
            return (_FOREIGN_OPERATORS[char].format(written=written),
                    span(line, col, len(written)))
        else:
            message = f"unexpected character `{char}`"
        return message, span(line, col)
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
    if "$END" in expected and token_type in _STATEMENT_STARTS:
        end_line, end_col = _end_of_code(text, pos)
        next_line = _place(chunk, line, col)[0]
        return (f"missing `;` at the end of this statement (the next one starts with `{value}` "
                f"at line {next_line})", span(end_line, end_col))
    previous = _previous_word(text, pos)
    foreign = _not_in_the_language(text, pos, token_type, value, previous)
    if foreign is not None:
        message, offset, length = foreign
        return message, span(*_chunk_place(text, offset), length)
    hint = _BY_PREVIOUS_WORD.get(previous)
    if previous == "(" and _previous_word(text, text.rfind("(", 0, pos)) in ("INTERVAL", "WITHIN"):
        hint = "expected a duration such as `20 min`"
    if hint is None or not _hint_fits(hint, expected):
        hint = "expected " + _friendly_expected(expected)
    return f"{hint}, {_found(token_type, value)}", span(line, col, width)


# Characters that other languages use as operators: `&&`, `||`, `!x` (`!=` is a comparison).
_FOREIGN_OPERATORS = {
    "&": "use AND instead of `{written}`: conditions are joined with AND and OR",
    "|": "use OR instead of `{written}`: conditions are joined with AND and OR",
    "!": "use NOT instead of `{written}` (`!=` is fine: it means not equal)",
}

# Words of SQL and Esper that the language does not have, and what to write instead.
_NOT_SUPPORTED = {
    "ORDER": ("ORDER BY is not supported: results come out in the order the events happen "
              "(docs/language.md, section 10)"),
    "LIMIT": ("LIMIT is not supported: keep the last n events with a view such as "
              "`#length(5)`, or send fewer results with `OUTPUT FIRST EVERY 10 min`"),
    "JOIN": ("JOIN is not supported: combine events of several types with a pattern, such as "
             "`FROM PATTERN [every a=Motion -> d=Door]`, or read the latest event of a type "
             "from a named window (`CREATE WINDOW LastDoor#lastevent FROM Door`, then "
             "`LastDoor.contact`)"),
    "DISTINCT": ("DISTINCT is not supported: keep one event per key with a view such as "
                 "`#unique(room)`, or let only changes through with `changed(attr)` in the "
                 "filter"),
}
_JOIN_WORDS = frozenset({"INNER", "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "NATURAL"})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_A_NUMBER_NEXT = re.compile(r"\s*\d")


def _words_before(text: str, pos: int, count: int) -> list[tuple[str, int]]:
    """The last `count` words (upper-cased) before `pos` with their offsets, comments left
    out, nearest first; stops at anything that is not a word."""
    before = _without_comments(text[:pos])
    found: list[tuple[str, int]] = []
    end = len(before.rstrip())
    while len(found) < count and end > 0:
        begin = end
        while begin > 0 and before[begin - 1] in _WORD_CHARS:
            begin -= 1
        if begin == end or not _WORD.fullmatch(before[begin:end]):
            break
        found.append((before[begin:end].upper(), begin))
        end = len(before[:begin].rstrip())
    return found


def _not_in_the_language(text: str, pos: int, token_type: str, value: str,
                         previous: str) -> tuple[str, int, int] | None:
    """A construct of another language (SQL, Esper, C) where the parser stopped: its message
    in words, and the offset and length of what to underline; None for anything else."""
    if token_type == "EQUALS" and pos > 0 and text[pos - 1] == "=" \
            and (pos < 2 or text[pos - 2] not in "<>!"):
        return "use `=` to compare (there is no `==`)", pos - 1, 2
    if token_type == "$END":
        return None
    word = value.upper()
    rest = _without_strings(text[pos + len(value):pos + 200])
    after = [w.upper() for w in _WORD.findall(rest)[:3]]
    if token_type == "NAME" and previous == ":":
        colon = text.rfind(":", 0, pos)
        before = _words_before(text, colon, 1)
        if before and before[0][0] == "TIMER":
            return (f"timer:{value} is not supported: use timer:interval(20 min) for a delay, "
                    "timer:at(07:30) for a clock time, or `p where timer:within(20 min)` for a "
                    "deadline"), before[0][1], pos + len(value) - before[0][1]
    if word == "JOIN" or (word in _JOIN_WORDS and "JOIN" in after):
        return _NOT_SUPPORTED["JOIN"], pos, len(value)
    if (word == "ORDER" and after[:1] == ["BY"]) or (
            word == "LIMIT" and _A_NUMBER_NEXT.match(text, pos + len(value))):
        return _NOT_SUPPORTED[word], pos, len(value)
    words = _words_before(text, pos, 2)
    if word == "BY" and words and words[0][0] == "ORDER":
        return _NOT_SUPPORTED["ORDER"], words[0][1], pos + len(value) - words[0][1]
    if len(words) == 2 and words[0][0] == "DISTINCT" and words[1][0] == "SELECT":
        return _NOT_SUPPORTED["DISTINCT"], words[0][1], len("DISTINCT")
    return None


def _chunk_place(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset` in a chunk's text."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


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
