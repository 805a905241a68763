"""Aggregates over a window's events, kept up to date as events enter and leave.

Each aggregate of a rule is one object per group: `add(seq, value)` when an event
enters the group, `remove(seq, value)` with the same two when it leaves, `result()`
at any time. `seq` numbers the window's entries in the order they entered.

Two families, chosen by how a window lets events leave:
- *first in, first out* (`#time`, `#length`, `#lastevent`): the event that leaves a
  group is always its oldest, so `min` and `max` keep a monotonic deque and `first`,
  `last` and `list` a deque of the values: every operation is O(1) amortised;
- *any order* (`#unique`, where a key's new event replaces its old one wherever that
  is in the group): `min`, `max`, `first`, `last` and `list` keep the values by entry
  number and look at them when asked (a `#unique` group holds one event per key).

`count`, `sum`, `avg` and `stddev` are O(1) either way. Sums of floats are compensated
(Knuth's two-sum keeps what each addition's rounding lost), so adding and then removing
a value leaves the sum as it was in all but extreme cases; a group that empties starts
again from exact zeros (it is dropped).

Nulls are ignored by every aggregate; over no values `count` is 0, `list` is `[]` and
the others are null; `stddev` (the sample standard deviation) needs two values.

`snapshot(w)` / `restore(data, r)` save and read back an aggregator's accumulators as
they are (floats exactly, kept values in order): a restored aggregate goes on as the
saved one would have, rounding residues and all.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

from cep.runtime.snapshot import Json, StateReader, StateWriter, need


class Aggregator:
    """One aggregate of one group."""

    __slots__ = ()

    def add(self, seq: int, value: Any) -> None:
        raise NotImplementedError

    def remove(self, seq: int, value: Any) -> None:
        raise NotImplementedError

    def result(self) -> Any:
        raise NotImplementedError

    def snapshot(self, w: StateWriter) -> Json:
        raise NotImplementedError

    def restore(self, data: Json, r: StateReader) -> None:
        """Fill a fresh aggregator (made by `make_aggregator`, as the saved one was)."""
        raise NotImplementedError


def _count(data: Json, what: str) -> int:
    need(type(data) is int and data >= 0, f"{what} is not a count")
    return int(data)


def _float(data: Json, r: StateReader, what: str) -> float:
    value = r.value(data)
    need(type(value) is float, f"{what} is not a float")
    return float(value)


def _seq_values(data: Json, r: StateReader, what: str) -> list[tuple[int, Any]]:
    """`[[seq, value], ...]` with growing entry numbers."""
    need(type(data) is list, f"{what} is not a list")
    out: list[tuple[int, Any]] = []
    for row in data:
        need(type(row) is list and len(row) == 2 and type(row[0]) is int
             and (not out or row[0] > out[-1][0]), f"{what}: a damaged [seq, value]")
        out.append((row[0], r.value(row[1])))
    return out


class _Counter(Aggregator):
    """Saved as its count: `n`."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def snapshot(self, w: StateWriter) -> Json:
        return self.n

    def restore(self, data: Json, r: StateReader) -> None:
        self.n = _count(data, "a count")


class CountAll(_Counter):
    """`count(*)`: the group's events (the runner passes True as the value)."""

    __slots__ = ()

    def add(self, seq: int, value: Any) -> None:
        self.n += 1

    def remove(self, seq: int, value: Any) -> None:
        self.n -= 1

    def result(self) -> int:
        return self.n


class Count(_Counter):
    """`count(x)`: the non-null values."""

    __slots__ = ()

    def add(self, seq: int, value: Any) -> None:
        if value is not None:
            self.n += 1

    def remove(self, seq: int, value: Any) -> None:
        if value is not None:
            self.n -= 1

    def result(self) -> int:
        return self.n


def _number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float


class Sum(Aggregator):
    """`sum(x)`: whole numbers summed exactly; floats with Neumaier's compensation."""

    __slots__ = ("floats", "high", "low", "n", "whole")

    def __init__(self) -> None:
        self.n = 0         # values summed
        self.floats = 0    # of which floats (the sum is a float while there is one)
        self.whole = 0     # the sum of the whole numbers
        self.high = 0.0    # the sum of the floats ...
        self.low = 0.0     # ... and what its rounding lost

    # (The two-sum step is written out in add and remove: they run for every event that
    # enters or leaves a window, and a call would cost as much as the step.)
    def add(self, seq: int, value: Any) -> None:
        kind = type(value)
        if kind is float:
            if value - value != 0.0:  # NaN or an infinity: not summed
                return
            self.n += 1
            self.floats += 1
            high = self.high
            total = high + value
            part = total - high  # Knuth's two-sum: what the rounding of `total` lost
            self.low += (high - (total - part)) + (value - part)
            self.high = total
        elif kind is int:
            self.n += 1
            self.whole += value

    def remove(self, seq: int, value: Any) -> None:
        kind = type(value)
        if kind is float:
            if value - value != 0.0:
                return
            self.n -= 1
            self.floats -= 1
            if self.floats == 0:
                self.high = self.low = 0.0
                return
            high = self.high
            total = high - value
            part = total - high
            self.low += (high - (total - part)) - (value + part)
            self.high = total
        elif kind is int:
            self.n -= 1
            self.whole -= value

    def result(self) -> int | float | None:
        if self.n == 0:
            return None
        if self.floats == 0:
            return self.whole
        return self.whole + (self.high + self.low)

    def snapshot(self, w: StateWriter) -> Json:
        """`[n, floats, whole, high, low]`."""
        return [self.n, self.floats, self.whole, w.value(self.high), w.value(self.low)]

    def restore(self, data: Json, r: StateReader) -> None:
        need(type(data) is list and len(data) == 5 and type(data[2]) is int,
             "a sum is not [n, floats, whole, high, low]")
        self.n = _count(data[0], "a sum's count")
        self.floats = _count(data[1], "a sum's count of floats")
        need(self.floats <= self.n, "a sum has more floats than values")
        self.whole = data[2]
        self.high = _float(data[3], r, "a sum's total")
        self.low = _float(data[4], r, "a sum's compensation")


class Avg(Sum):
    """`avg(x)`: the sum over the count of non-null values, a FLOAT."""

    __slots__ = ()

    def result(self) -> float | None:
        if self.n == 0:
            return None
        if self.floats == 0:
            return self.whole / self.n
        return (self.whole + (self.high + self.low)) / self.n


class Stddev(Aggregator):
    """`stddev(x)`: the sample standard deviation (Welford's update, run backwards for a
    value that leaves)."""

    __slots__ = ("m2", "mean", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, seq: int, value: Any) -> None:
        if not _number(value) or not math.isfinite(value):
            return
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def remove(self, seq: int, value: Any) -> None:
        if not _number(value) or not math.isfinite(value):
            return
        self.n -= 1
        if self.n == 0:
            self.mean = self.m2 = 0.0
            return
        delta = value - self.mean
        self.mean -= delta / self.n
        self.m2 -= delta * (value - self.mean)

    def result(self) -> float | None:
        n = self.n
        if n < 2:
            return None
        m2 = self.m2
        # Values that left leave a rounding residue (about 1e-16 of mean² per step): what
        # is within that of zero is zero, so equal values have a stddev of exactly 0.
        if m2 <= 1e-12 * n * self.mean * self.mean:
            return 0.0
        return math.sqrt(m2 / (n - 1))

    def snapshot(self, w: StateWriter) -> Json:
        """`[n, mean, m2]`."""
        return [self.n, w.value(self.mean), w.value(self.m2)]

    def restore(self, data: Json, r: StateReader) -> None:
        need(type(data) is list and len(data) == 3, "a stddev is not [n, mean, m2]")
        self.n = _count(data[0], "a stddev's count")
        self.mean = _float(data[1], r, "a stddev's mean")
        self.m2 = _float(data[2], r, "a stddev's m2")


def _before(x: Any, y: Any) -> bool:
    """x < y for values of one kind; values that cannot be ordered against each other
    (the checks keep them apart) keep the older one."""
    try:
        return bool(x < y)
    except TypeError:
        return False


class _Kept(Aggregator):
    """A first-in-first-out group's values kept as (seq, value), oldest first: the value
    that leaves is the head's, when it is still kept."""

    __slots__ = ("kept",)

    def __init__(self) -> None:
        self.kept: deque[tuple[int, Any]] = deque()

    def remove(self, seq: int, value: Any) -> None:
        kept = self.kept
        if kept and kept[0][0] == seq:
            kept.popleft()

    def snapshot(self, w: StateWriter) -> Json:
        """`[[seq, value], ...]`, oldest first."""
        return [[seq, w.value(value)] for seq, value in self.kept]

    def restore(self, data: Json, r: StateReader) -> None:
        self.kept = deque(_seq_values(data, r, "kept values"))


class MinMaxFifo(_Kept):
    """`min(x)` / `max(x)` of a first-in-first-out group: a deque of (seq, value) whose
    values only rise (min) or fall (max), so its head is the answer."""

    __slots__ = ("better",)

    def __init__(self, largest: bool) -> None:
        super().__init__()
        # better(new, old): the new value makes the old one useless from now on
        self.better: Callable[[Any, Any], bool] = (
            (lambda new, old: not _before(new, old)) if largest else
            (lambda new, old: not _before(old, new)))

    def add(self, seq: int, value: Any) -> None:
        if value is None or value != value:  # null, NaN: not ordered, left out
            return
        kept = self.kept
        better = self.better
        while kept and better(value, kept[-1][1]):
            kept.pop()
        kept.append((seq, value))

    def result(self) -> Any:
        kept = self.kept
        return kept[0][1] if kept else None


class ValuesFifo(_Kept):
    """`first(x)`, `last(x)`, `list(x)` of a first-in-first-out group: its non-null
    values in entry order."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def add(self, seq: int, value: Any) -> None:
        if value is not None:
            self.kept.append((seq, value))

    def result(self) -> Any:
        kept = self.kept
        if self.kind == "list":
            return [value for _, value in kept]
        if not kept:
            return None
        return kept[0][1] if self.kind == "first" else kept[-1][1]


class ValuesAnyOrder(Aggregator):
    """`min`, `max`, `first`, `last`, `list` of a group whose events may leave in any
    order: its non-null values by entry number, looked at when the result is asked for.
    (Entry numbers only grow, so the dictionary's order is the entries' order.)"""

    __slots__ = ("kind", "values")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.values: dict[int, Any] = {}

    def add(self, seq: int, value: Any) -> None:
        if value is not None and (value == value or self.kind not in ("min", "max")):
            self.values[seq] = value

    def remove(self, seq: int, value: Any) -> None:
        self.values.pop(seq, None)

    def snapshot(self, w: StateWriter) -> Json:
        """`[[seq, value], ...]` in entry order."""
        return [[seq, w.value(value)] for seq, value in self.values.items()]

    def restore(self, data: Json, r: StateReader) -> None:
        self.values = dict(_seq_values(data, r, "kept values"))

    def result(self) -> Any:
        values = self.values
        kind = self.kind
        if kind == "list":
            return list(values.values())
        if not values:
            return None
        if kind == "first":
            return next(iter(values.values()))
        if kind == "last":
            return next(reversed(values.values()))
        best: Any = None
        for value in values.values():
            if best is None or (_before(best, value) if kind == "max" else _before(value, best)):
                best = value
        return best


def make_aggregator(name: str, counts_all: bool, fifo: bool) -> Aggregator:
    """A fresh aggregator for `name(...)` (`counts_all`: `count(*)`)."""
    if name == "count":
        return CountAll() if counts_all else Count()
    if name == "sum":
        return Sum()
    if name == "avg":
        return Avg()
    if name == "stddev":
        return Stddev()
    if name in ("min", "max"):
        return MinMaxFifo(name == "max") if fifo else ValuesAnyOrder(name)
    if name in ("first", "last", "list"):
        return ValuesFifo(name) if fifo else ValuesAnyOrder(name)
    raise ValueError(f"not an aggregate: {name}")
