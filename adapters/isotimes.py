"""ISO-8601 times with an offset as Unix seconds, by sums within a minute once compiled.

A trace's times come in order, many to a minute, all written alike
(`2024-01-01T08:00:12.250+01:00`). `OffsetTimes` remembers, for the minute it met last
(`2024-01-01T08:00` and `+01:00`), the Unix microseconds at which that minute starts, and,
for the seconds texts it has met (`:12.250`), the microseconds they add (up to
MAX_SECONDS_TEXTS of them); a seconds text in milliseconds that it has not met it reads by
arithmetic on its digits. A time of that minute, written alike, whose seconds text it knows
or can read so is then a sum; any other goes through `datetime.fromisoformat`, and teaches
it.

The result is exactly what `datetime.fromisoformat(text).timestamp()` gives (the same
integer microseconds divided the same way), and None for the same texts (refused, or without
an offset): a text is summed only when it is the remembered minute's prefix and offset
around a seconds text learned from a text that `fromisoformat` read in the same layout
(`YYYY-MM-DD?HH:MM`, then `:SS` with an optional fraction, then `Z` or `±HH:MM`), or, when
that layout was `:SS.fff`, around ASCII digits in it (seconds below 60).

The sums pay off in the compiled build (a third of the cost of `fromisoformat` and
`timestamp`, which make a datetime, two timedeltas and big-integer arithmetic per line);
interpreted, the steps (and the call) cost more than they save, so the fused reading
uses them only when this module is compiled (`SUMS_PAY`) and else calls `fromisoformat`
itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MINUTE = 16  # len("YYYY-MM-DDTHH:MM"): the minute's prefix
MAX_SECONDS_TEXTS = 16_384  # seconds texts remembered (`:SS.fff`: 60,000 of them at most)
SUMS_PAY = not __file__.endswith(".py")  # this module is compiled (mypyc)


class OffsetTimes:
    """`unix(text)`: `datetime.fromisoformat(text).timestamp()` for a text with an offset
    (None for any other), by a sum when it can (see the module's docstring)."""

    __slots__ = ("base", "cut", "length", "millis", "prefix", "seconds", "suffix")

    def __init__(self) -> None:
        self.prefix = "\0"  # the remembered minute's prefix (matches no time at first)
        self.suffix = ""    # its offset, as written
        self.length = -1    # the length of the texts written like that
        self.cut = 0        # where the seconds text ends in them
        self.base = 0       # Unix microseconds at the minute's start
        self.millis = False  # its seconds text is `:SS.fff`: read by `_millis_into`
        self.seconds: dict[str, int] = {}  # seconds text -> microseconds into the minute

    def unix(self, text: str) -> float | None:
        if len(text) == self.length and text.startswith(self.prefix) and \
                text.endswith(self.suffix):
            seconds = self.seconds
            key = text[_MINUTE:self.cut]
            into = seconds.get(key, -1)
            if into < 0 and self.millis:
                into = _millis_into(text)
                if into >= 0 and len(seconds) < MAX_SECONDS_TEXTS:
                    seconds[key] = into
            if into >= 0:
                return (self.base + into) / 1_000_000
        return self._read(text)

    def _read(self, text: str) -> float | None:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        total = (moment - _EPOCH) // _MICROSECOND  # what timestamp() divides, exactly
        self._learn(text, moment, total)
        return total / 1_000_000

    def _learn(self, text: str, moment: datetime, total: int) -> None:
        """Remember the minute and the seconds text of `text` (read as `moment`, `total`
        microseconds) when it is written in the layout the sums rely on."""
        length = len(text)
        if text.endswith("Z"):
            suffix = 1
        elif length >= _MINUTE + 9 and text[-6] in "+-" and text[-3] == ":":
            suffix = 6
        else:
            return
        if text[4] != "-" or text[7] != "-" or text[13] != ":" or text[_MINUTE] != ":":
            return
        into = moment.second * 1_000_000 + moment.microsecond
        cut = length - suffix
        seconds = self.seconds
        key = text[_MINUTE:cut]
        if key not in seconds and len(seconds) < MAX_SECONDS_TEXTS:
            seconds[key] = into
        self.millis = cut == _MINUTE + 7 and _millis_into(text) == into
        self.prefix = text[:_MINUTE]
        self.suffix = text[cut:]
        self.length = length
        self.cut = cut
        self.base = total - into


def _millis_into(text: str) -> int:
    """The microseconds into its minute of a time whose seconds text is `:SS.fff` (ASCII
    digits, seconds below 60), or -1 when the text has no such seconds text."""
    if text[_MINUTE] != ":" or text[_MINUTE + 3] != ".":
        return -1
    tens = ord(text[_MINUTE + 1]) - 48
    ones = ord(text[_MINUTE + 2]) - 48
    hundreds = ord(text[_MINUTE + 4]) - 48
    tenths = ord(text[_MINUTE + 5]) - 48
    last = ord(text[_MINUTE + 6]) - 48
    if not (0 <= tens <= 5 and 0 <= ones <= 9 and 0 <= hundreds <= 9 and 0 <= tenths <= 9
            and 0 <= last <= 9):
        return -1
    return (tens * 10 + ones) * 1_000_000 + (hundreds * 100 + tenths * 10 + last) * 1000
