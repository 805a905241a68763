"""Diagnostics: errors and warnings located in rule files, as data and as text.

Every stage (parser, transformer, checks) reports through a `Diagnostics`
collector instead of raising, so one run lists every problem in every file.
`render` produces the `file:line:col: error: message` form with the source
line and a caret under the column.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cep.language.ast import Span

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
        """`file:line:col: severity: message`."""
        return f"{self.span.file}:{self.span.line}:{self.span.col}: {self.severity}: {self.message}"

    def render(self, sources: SourceMap) -> str:
        """The headline, then the source line and a caret under the column."""
        line_text = sources.line(self.span.file, self.span.line)
        if line_text is None:
            return self.headline()
        return f"{self.headline()}\n{line_text}\n{caret_line(line_text, self.span)}"

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "col": self.span.col,
        }


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
    """The text of every loaded file, for quoting lines in diagnostics."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}

    def add(self, path: str, text: str) -> None:
        self._lines[path] = text.splitlines()

    def line(self, path: str, number: int) -> str | None:
        lines = self._lines.get(path)
        if lines is None or not 1 <= number <= len(lines):
            return None
        return lines[number - 1]


@dataclass
class Diagnostics:
    """A collector of diagnostics, in the order they were found."""

    items: list[Diagnostic] = field(default_factory=list)

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
