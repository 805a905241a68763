"""Engine time: clocks and the timer queue.

The engine never reads the wall clock: it is told what time it is.  In replay
and tests a `VirtualClock` follows the events; live, a `RealClock` reads the
system time (the only place that does).  Timers live in one `TimerQueue`,
ordered by deadline, then priority (context deadlines before pattern timers),
then the order they were set.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Callable, Optional


class Timer:
    """A scheduled callback; `cancel()` makes it a no-op (removed lazily from the heap)."""

    __slots__ = ("deadline", "priority", "seq", "callback", "cancelled")

    def __init__(self, deadline: float, seq: int, callback: Callable[[float], None],
                 priority: int = 1) -> None:
        self.deadline = deadline
        self.priority = priority
        self.seq = seq
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.callback = _noop  # drop references to engine state at once

    def __lt__(self, other: "Timer") -> bool:
        return (self.deadline, self.priority, self.seq) < \
            (other.deadline, other.priority, other.seq)


def _noop(_: float) -> None:
    return None


class TimerQueue:
    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def schedule(self, deadline: float, callback: Callable[[float], None],
                  priority: int = 1) -> Timer:
        """Timers due at the same instant fire by priority (lower first), then in set order."""
        timer = Timer(deadline, next(self._seq), callback, priority)
        heapq.heappush(self._heap, timer)
        return timer

    def next_deadline(self) -> Optional[float]:
        heap = self._heap
        while heap and heap[0].cancelled:
            heapq.heappop(heap)
        return heap[0].deadline if heap else None

    def pop_due(self, now: float) -> Optional[Timer]:
        """The earliest live timer due at or before `now`, removed from the queue."""
        heap = self._heap
        while heap:
            if heap[0].cancelled:
                heapq.heappop(heap)
                continue
            if heap[0].deadline <= now:
                return heapq.heappop(heap)
            return None
        return None

    def pending(self) -> int:
        """Timers not yet fired or cancelled (for statistics and tests)."""
        return sum(1 for t in self._heap if not t.cancelled)


class VirtualClock:
    """Time as the events say; it only moves forward."""

    def __init__(self, start: Optional[float] = None) -> None:
        self.now: Optional[float] = start

    def advance(self, to: float) -> None:
        if self.now is None or to > self.now:
            self.now = to


class RealClock(VirtualClock):
    """The system clock, for live runs: `read()` is the only wall-clock access in cep."""

    def read(self) -> float:
        return time.time()
