"""SQL LIKE without a regular expression: linear in the text for `%`, O(n·m) at worst with `_`.

`%` stands for any run of characters (none included), `_` for exactly one character
(any: newlines too); everything else is itself, case counts, and there is no escape
character; the whole text must match.  A backtracking regex (`.*a.*b.*c`) takes
exponential time on hostile texts and patterns; this matcher never does.

The pattern is cut at its `%`s into segments of fixed length.  The first must match at
the start of the text and the last at its end; those in between are found left to right,
each at its earliest place after the one before.  Taking the earliest place is always
right: a segment found earlier leaves more text for the segments after it, and `%`
takes whatever lies between.  A segment without `_` is found with `str.find`; one with
`_`s with a regular expression of that segment alone (literal characters and `.`, no
repetition: it cannot backtrack beyond the segment's length at each place).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

__all__ = ["like_matcher"]

Matcher = Callable[[str], bool]

# A segment: its length, its literal pieces as (offset in the segment, text) (the
# characters between the pieces are `_`s), and how to find it: a regular expression for
# a segment with `_`s and literal characters, else None.
_Segment = tuple[int, tuple[tuple[int, str], ...], "re.Pattern[str] | None"]


def _segment(text: str, searched: bool = False) -> _Segment:
    """A segment of the pattern; `searched` for one found anywhere (between `%`s)."""
    pieces = []
    offset = 0
    for piece in text.split("_"):
        if piece:
            pieces.append((offset, piece))
        offset += len(piece) + 1
    mixed = searched and "_" in text and bool(pieces)
    finder = re.compile("".join("." if ch == "_" else re.escape(ch) for ch in text), re.S) \
        if mixed else None
    return len(text), tuple(pieces), finder


def _fits(segment: _Segment, value: str, at: int) -> bool:
    """Whether `segment` matches `value` at `at` (the caller knows it fits in length)."""
    for offset, piece in segment[1]:
        if not value.startswith(piece, at + offset):
            return False
    return True


def _find(segment: _Segment, value: str, start: int, end: int) -> int:
    """The earliest place at or after `start` where `segment` matches and ends by `end`,
    or -1."""
    length, pieces, finder = segment
    if end - start < length:
        return -1
    if not pieces:  # only `_`s: any place
        return start
    if finder is None:  # no `_`: one literal piece
        return value.find(pieces[0][1], start, end)
    found = finder.search(value, start, end)
    return found.start() if found is not None else -1


CACHED_UP_TO = 1000  # characters of a pattern whose matcher is kept for the next use


def like_matcher(pattern: str) -> Matcher:
    """A function telling whether a text matches the LIKE `pattern`.

    Patterns taken from events repeat, so the matchers of short ones are cached (a long
    one is prepared for each use: a cache of them could hold megabytes).  Preparing a
    pattern takes time proportional to its length."""
    if len(pattern) <= CACHED_UP_TO:
        return _cached(pattern)
    return _build(pattern)


@lru_cache(maxsize=256)
def _cached(pattern: str) -> Matcher:
    return _build(pattern)


def _build(pattern: str) -> Matcher:
    if "%" not in pattern:
        if "_" not in pattern:
            return pattern.__eq__
        only = _segment(pattern)
        size = len(pattern)
        return lambda value: len(value) == size and _fits(only, value, 0)
    parts = pattern.split("%")
    first, last = parts[0], parts[-1]
    middle = tuple(_segment(p, searched=True) for p in parts[1:-1] if p)
    if "_" not in pattern:
        if not middle:  # 'a%', '%b', 'a%b', '%'
            if not first:
                return (lambda value: value.endswith(last)) if last else _anything
            if not last:
                return lambda value: value.startswith(first)
            least = len(first) + len(last)
            return lambda value: len(value) >= least and value.startswith(first) \
                and value.endswith(last)
        if len(middle) == 1 and not first and not last:  # '%a%'
            needle = next(p for p in parts if p)
            return lambda value: needle in value
    head, tail = _segment(first), _segment(last)
    head_size, tail_size = len(first), len(last)
    least = head_size + tail_size + sum(segment[0] for segment in middle)

    def matches(value: str) -> bool:
        size = len(value)
        if size < least:
            return False
        end = size - tail_size
        if not _fits(head, value, 0) or not _fits(tail, value, end):
            return False
        at = head_size
        for segment in middle:
            found = _find(segment, value, at, end)
            if found < 0:
                return False
            at = found + segment[0]
        return True
    return matches


def _anything(value: str) -> bool:
    return True
