"""Counting bad bus messages and reporting them without flooding; `printable` for outside text.

A bad message is reported the first time on its topic, then at most once per topic per
minute; over all topics at most `MAX_REPORTS` lines a minute (the rest are held back and
counted in the next line); at most `MAX_TOPICS` topics are remembered one by one (the
others are counted together), so a stream of bad messages on ever new topics can neither
flood stderr nor grow memory.

Time is engine time passed in by the caller (a replay of a week of data must
report as a live run over that week would), never the wall clock.

Every string from the outside (topics, payload excerpts, client ids, broker reason
strings) is printed through `printable`, so no escape sequence or line break in it
reaches the terminal.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MAX_REPORTS", "MAX_TOPICS", "BadMessageReporter", "printable"]

MAX_TOPICS = 1000        # topics counted one by one; the others are counted together
MAX_REPORTS = 20         # report lines per interval over all topics
SHOWN_TOPICS = 10        # topics listed by name in the summary
TOPIC_SHOWN = 200        # characters of a topic shown in a report line

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: object, limit: int | None = None) -> str:
    """`text` safe to print on a terminal or in the view: every character that is not
    printable (C0 and C1 control characters, DEL, bidirectional overrides and the other
    format characters, separators other than the space, lone surrogates, unassigned code
    points) is shown as an escape — `\\n`, `\\t`, `\\r`, `\\x1b`, `\\u202e` — and the rest as
    it is.  A backslash is left alone, so applying it twice changes nothing.  With `limit`,
    at most that many characters (the last one `…` when cut)."""
    s = text if isinstance(text, str) else str(text)
    if not s.isprintable():  # what it refuses (control, format, separator other than the
        # space, surrogate, private-use, unassigned) is what gets escaped
        s = "".join(c if c.isprintable() else _escape(c) for c in s)
    if limit is not None and len(s) > limit:
        s = s[: max(0, limit - 1)] + "…"
    return s


class _Topic:
    """One topic's count, when it was last reported, and bad messages held back since."""

    __slots__ = ("count", "held_back", "reported_at")

    def __init__(self, now: float) -> None:
        self.count = 1
        self.reported_at = now
        self.held_back = 0


class BadMessageReporter:
    """Counts bad messages per topic; reports the first, then at most one per `interval`.

    `label` starts every line (`bad message on TOPIC: why`); the same limits serve other
    reports keyed by topic, such as actions refused before publishing, and payload paths
    that did not resolve (with no label: `TOPIC: why`).
    """

    __slots__ = ("_interval", "_label", "_other", "_report", "_topics", "_window",
                 "_window_reports", "held_back_total", "total")

    def __init__(self, report: Callable[[str], None], interval: float = 60.0,
                 label: str = "bad message on") -> None:
        self._report = report
        self._interval = interval
        self._label = label
        self._topics: dict[str, _Topic] = {}
        self._other: _Topic | None = None      # every topic beyond MAX_TOPICS, together
        self._window = float("-inf")           # start of the current reporting interval
        self._window_reports = 0               # lines reported in it
        self.held_back_total = 0               # held back by the limit over all topics
        self.total = 0

    def bad(self, topic: str, reason: str, now: float) -> bool:
        """Count a bad message at engine time `now`; True when it was reported."""
        self.total += 1
        state = self._topics.get(topic)
        if state is None:
            if len(self._topics) < MAX_TOPICS:
                self._topics[topic] = _Topic(now)
                return self._say(topic, reason, now, "")
            state = self._other
            if state is None:
                self._other = _Topic(now)
                return self._say(topic, reason, now, "")
        state.count += 1
        if now - state.reported_at < self._interval:
            state.held_back += 1
            return False
        held_back = state.held_back
        where = "on this topic" if state is not self._other else "on other topics"
        more = (f" (and {held_back} more {where} since the last report)" if held_back else "")
        if self._say(topic, reason, now, more):
            state.reported_at, state.held_back = now, 0
            return True
        state.held_back += 1
        return False

    def _say(self, topic: str, reason: str, now: float, more: str) -> bool:
        """Report one line unless MAX_REPORTS lines were reported in this interval."""
        if now - self._window >= self._interval:
            self._window, self._window_reports = now, 0
        if self._window_reports >= MAX_REPORTS:
            self.held_back_total += 1
            return False
        self._window_reports += 1
        limited = ""
        if self.held_back_total:
            limited = (f" ({self.held_back_total} more held back by the limit of "
                       f"{MAX_REPORTS} reports a minute)")
            self.held_back_total = 0
        label = f"{self._label} " if self._label else ""
        self._report(f"{label}{printable(topic, TOPIC_SHOWN)}: {printable(reason)}"
                     f"{more}{limited}")
        return True

    def count(self, topic: str) -> int:
        state = self._topics.get(topic)
        return state.count if state is not None else 0

    @property
    def counts(self) -> dict[str, int]:
        """Bad messages per topic (the first MAX_TOPICS topics), topics in name order."""
        return {topic: self._topics[topic].count for topic in sorted(self._topics)}

    def summary(self) -> str:
        """One line: `3 bad messages on 2 topics: a/b 2, c/d 1` (or `no bad messages`); past
        SHOWN_TOPICS topics, those with the most, then how many more."""
        if not self.total:
            return "no bad messages"
        counts = self.counts
        topics = len(counts)
        other = self._other.count if self._other is not None else 0
        if topics <= SHOWN_TOPICS and not other:
            shown = list(counts.items())
            rest = ""
        else:
            shown = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:SHOWN_TOPICS]
            rest = f", and {self.total - sum(n for _, n in shown)} more on other topics"
        parts = ", ".join(f"{printable(topic, TOPIC_SHOWN)} {count}" for topic, count in shown)
        where = f"more than {MAX_TOPICS:,}" if other else f"{topics}"
        return (f"{self.total} bad message{'s' if self.total != 1 else ''} on {where} "
                f"topic{'s' if topics != 1 or other else ''}: {parts}{rest}")
