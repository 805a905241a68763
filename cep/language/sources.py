"""Rule text as every stage sees it: decoded from UTF-8, without a byte-order mark, and
with one definition of a line.

A line ends at `\\n`, `\\r\\n` or a lone `\\r`, and nowhere else: the lexer counts only
`\\n`, so `normalise` turns the other two into `\\n` before anything is parsed or quoted.
Form feeds, vertical tabs, `\\x1c`-`\\x1e`, NEL (U+0085) and the Unicode line and paragraph
separators (U+2028, U+2029) are ordinary characters inside a line (Python's
`str.splitlines` would break lines there, and then line numbers and carets disagree).
"""

from __future__ import annotations

from dataclasses import dataclass

BOM = "\ufeff"


def normalise(text: str) -> str:
    """`text` without a leading byte-order mark, every line break a `\\n`."""
    if text.startswith(BOM):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def split_lines(text: str) -> list[str]:
    """The lines of `text` (normalised first), as the lexer and the diagnostics count them."""
    return normalise(text).split("\n")


# Characters shown as a space when a diagnostic quotes a source line: C0 and C1 controls
# except the tab (the caret line keeps tabs), DEL, and U+2028/U+2029. A terminal would move
# the cursor for some of them, and the caret would no longer stand under the column.
_UNPRINTABLE = dict.fromkeys([*range(0x00, 0x09), *range(0x0a, 0x20), *range(0x7f, 0xa0),
                              0x2028, 0x2029], " ")


def printable(line: str) -> str:
    """A source line as it can be quoted on a terminal: one character per character."""
    return line.translate(_UNPRINTABLE)


@dataclass(frozen=True)
class BadEncoding:
    """Where a file stops being UTF-8: the line and column of the first bad byte."""

    line: int
    col: int
    message: str


def decode(data: bytes) -> tuple[str, BadEncoding | None]:
    """The text of a rule file, and where it is not UTF-8 (None when it all is).

    Bytes that are not UTF-8 become U+FFFD in the text, so that the bad place can be
    quoted. A leading byte-order mark is removed by `normalise`, with the line breaks."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        before = normalise(data[:exc.start].decode("utf-8"))
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        byte = data[exc.start]
        hint = (" (it looks like UTF-16)" if data.startswith((b"\xff\xfe", b"\xfe\xff"))
                else "")
        message = (f"this file is not UTF-8 text{hint}: byte 0x{byte:02x} here is not valid "
                   f"UTF-8 ({exc.reason}); save the file as UTF-8")
        return data.decode("utf-8", errors="replace"), BadEncoding(line, col, message)
