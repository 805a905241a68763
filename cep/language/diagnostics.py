"""Diagnostics: errors and warnings located in rule files, as data and as text.

Every stage (parser, transformer, checks) reports through a `Diagnostics`
collector instead of raising, so one run lists every problem in every file.
`render` produces the `file:line:col: error: message` form with the source
line and a caret under the column (a long line is quoted around the column only).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cep.language.ast import Span
from cep.language.sources import normalise, printable

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # ERROR or WARNING
    message: str
    span: Span

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def headline(self) -> str:
        """`file:line:col: severity: message` (control characters that a message quotes from
        the rule text shown as spaces, so none reaches the terminal)."""
        return printable(f"{self.span.file}:{self.span.line}:{self.span.col}: {self.severity}: "
                         f"{self.message}")

    def render(self, sources: SourceMap) -> str:
        """The headline, then the source line and a caret under the column."""
        line_text = sources.line(self.span.file, self.span.line)
        if line_text is None:
            return self.headline()
        shown, span = quoted_line(line_text, self.span)
        return f"{self.headline()}\n{shown}\n{caret_line(shown, span)}"

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "col": self.span.col,
        }


QUOTE_WIDTH = 160  # the most of a source line a diagnostic quotes
_CONTEXT_BEFORE = 60  # of which before the column, when the line is longer
_CUT = "..."


def quoted_line(line_text: str, span: Span) -> tuple[str, Span]:
    """The part of a source line to quote, printable, and the span moved to match.

    A line of at most QUOTE_WIDTH characters is quoted whole; a longer one (a minified
    file, thousands of statements on one line) around the column, cut with `...`, so that
    quoting costs the same however long the line is."""
    if len(line_text) <= QUOTE_WIDTH:
        return printable(line_text), span
    start = max(0, min(span.col - 1 - _CONTEXT_BEFORE, len(line_text) - QUOTE_WIDTH))
    end = start + QUOTE_WIDTH
    head = _CUT if start > 0 else ""
    tail = _CUT if end < len(line_text) else ""
    shift = len(head) - start
    end_col = span.end_col + shift if span.end_line == span.line else span.end_col
    moved = Span(span.file, span.line, span.col + shift, span.end_line,
                 min(end_col, len(head) + QUOTE_WIDTH + 1))
    return head + printable(line_text[start:end]) + tail, moved


def caret_line(line_text: str, span: Span) -> str:
    """A caret under `span.col` (and tildes to its end on the same line).

    Tabs before the column are kept as tabs, so the caret lines up however the
    terminal expands them.
    """
    col = max(span.col, 1)
    prefix = "".join(ch if ch == "\t" else " " for ch in line_text[: col - 1])
    if span.end_line == span.line and span.end_col > col + 1:
        width = min(span.end_col, len(line_text) + 1) - col
        return prefix + "^" + "~" * max(width - 1, 0)
    return prefix + "^"


class SourceMap:
    """The text of every loaded file, for quoting lines in diagnostics.

    Lines are counted as the lexer counts them (cep.language.sources)."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}
        self._texts: dict[str, str] = {}

    def add(self, path: str, text: str) -> None:
        text = normalise(text)
        lines = text.split("\n")
        if len(lines) > 1 and lines[-1] == "":
            lines.pop()  # the end of the last line, not a line of its own
        self._lines[path] = lines
        self._texts[path] = text

    def text(self, path: str) -> str | None:
        """The file's text as it was parsed (normalised), if it was loaded."""
        return self._texts.get(path)

    def line(self, path: str, number: int) -> str | None:
        lines = self._lines.get(path)
        if lines is None or not 1 <= number <= len(lines):
            return None
        return lines[number - 1]


# The kinds of names a statement can declare, for `Diagnostics.declaration_failed`.
EVENT_TYPE = "event type"  # CREATE EVENT, INSERT INTO
CONTEXT = "context"
WINDOW = "window"
LOCATION = "location"      # CREATE LOCATION
SETTING = "setting"        # SET LOCATION (name `LOCATION`), SET TIMEZONE (`TIMEZONE`)


@dataclass
class Diagnostics:
    """A collector of diagnostics, in the order they were found.

    `failed` holds the names that statements which did not parse meant to declare (kind ->
    names: an event type of a `CREATE EVENT` or `INSERT INTO`, a context, a window, a
    location, a setting such as `LOCATION` of `SET LOCATION`), and settings that were
    refused (a SET LOCATION out of range): the checks do not report their uses again, since
    the statement's own error already said what is wrong."""

    items: list[Diagnostic] = field(default_factory=list)
    failed: dict[str, set[str]] = field(default_factory=dict)

    def declaration_failed(self, kind: str, name: str) -> None:
        """A statement meant to declare `name` (of `kind`) but failed to parse."""
        self.failed.setdefault(kind, set()).add(name)

    def failed_to_declare(self, kind: str, name: str) -> bool:
        """Whether a statement that failed to parse meant to declare `name` (of `kind`)."""
        names = self.failed.get(kind)
        return names is not None and name in names

    def error(self, message: str, span: Span) -> None:
        self.items.append(Diagnostic(ERROR, message, span))

    def warning(self, message: str, span: Span) -> None:
        self.items.append(Diagnostic(WARNING, message, span))

    def extend(self, other: Iterable[Diagnostic]) -> None:
        self.items.extend(other)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if not d.is_error]

    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        """By file (in load order), line and column; stable for ties."""
        order: dict[str, int] = {}
        for d in self.items:
            order.setdefault(d.span.file, len(order))
        return sorted(self.items, key=lambda d: (order[d.span.file], d.span.line, d.span.col))

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class RuleError(Exception):
    """Raised by APIs that need a compiled rule set when the files have errors."""

    def __init__(self, diagnostics: list[Diagnostic], sources: SourceMap) -> None:
        self.diagnostics = diagnostics
        self.sources = sources
        super().__init__(self.report())

    def report(self) -> str:
        return "\n".join(d.render(self.sources) for d in self.diagnostics)


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 line`, `2 lines`; `many` for a plural that is not `one` + s (`1 match`,
    `2 matches`), or when the noun is not last (`1 line after the stop mark`)."""
    return f"{count} {one if count == 1 else (many if many is not None else one + 's')}"
