"""Engine time: the timer queue.

The engine never reads the wall clock: it is told what time it is (by the events in
replay and tests, by the live adapter's clock when live).  Timers live in one
`TimerQueue`, ordered by deadline, then priority (context deadlines before pattern
timers), then the order they were set.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable


class Timer:
    """A scheduled callback; `cancel()` makes it a no-op (removed lazily from the heap).

    Its place in the queue is its heap entry's (deadline, priority, seq), not the timer's.
    """

    __slots__ = ("callback", "cancelled", "deadline", "priority", "queue", "seq")

    def __init__(self, deadline: float, callback: Callable[[float], None],
                 queue: TimerQueue | None = None, priority: int = 1, seq: int = 0) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False
        self.queue = queue
        self.priority = priority  # (kept for snapshots: the heap entry orders the queue)
        self.seq = seq

    def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        self.callback = _noop  # drop references to engine state at once
        queue = self.queue
        if queue is not None:  # (counted here: a call less for every cancelled timer)
            queue.cancelled_entries += 1
            if queue.cancelled_entries > queue.COMPACT_ABOVE:
                queue.compact()


def _noop(_: float) -> None:
    return None


# A heap entry: (deadline, priority, seq, timer).  Tuples compare in C, which is
# most of the cost of a heap push or pop; seq is unique, so the timer is never compared.
_Entry = tuple[float, int, int, Timer]


class TimerQueue:
    """Timers by (deadline, priority, set order).

    A cancelled timer stays in the heap until it reaches the top, so cancelling is
    O(1); when cancelled entries outnumber live ones the heap is rebuilt without
    them, so memory follows live timers even when long timers are mostly cancelled.
    """

    COMPACT_ABOVE = 1024  # cancelled entries tolerated before a rebuild is considered

    def __init__(self) -> None:
        # the heap; the engine reads it directly for its once-per-event "is a timer due?"
        # (only ever changed in place, so that reference stays valid)
        self.heap: list[_Entry] = []
        self.seq = 0  # the next timer's set order
        self.cancelled_entries = 0  # cancelled entries still in the heap

    def schedule(self, deadline: float, callback: Callable[[float], None],
                 priority: int = 1) -> Timer:
        """Timers due at the same instant fire by priority (lower first), then in set order."""
        seq = self.seq
        self.seq = seq + 1
        timer = Timer(deadline, callback, self, priority, seq)
        heapq.heappush(self.heap, (deadline, priority, seq, timer))
        return timer

    def restore(self, deadline: float, priority: int, seq: int,
                callback: Callable[[float], None]) -> Timer:
        """A timer read back from a snapshot, in its saved place (`seq` as it was set; the
        queue's own count moves past it, so later timers come after it)."""
        timer = Timer(deadline, callback, self, priority, seq)
        heapq.heappush(self.heap, (deadline, priority, seq, timer))
        if seq >= self.seq:
            self.seq = seq + 1
        return timer

    def compact(self) -> None:
        """Rebuild the heap without its cancelled entries once they outnumber the live."""
        heap = self.heap
        if 2 * self.cancelled_entries > len(heap):
            heap[:] = [entry for entry in heap if not entry[3].cancelled]
            heapq.heapify(heap)
            self.cancelled_entries = 0

    def _drop_cancelled_top(self) -> None:
        heap = self.heap
        while heap and heap[0][3].cancelled:
            heapq.heappop(heap)
            self.cancelled_entries -= 1

    def next_deadline(self) -> float | None:
        self._drop_cancelled_top()
        heap = self.heap
        return heap[0][0] if heap else None

    def due(self, now: float) -> bool:
        """Whether some entry (perhaps a cancelled one) is due at or before `now`: a cheap
        test before `pop_due`."""
        heap = self.heap
        return bool(heap) and heap[0][0] <= now

    def pop_due(self, now: float) -> Timer | None:
        """The earliest live timer due at or before `now`, removed from the queue."""
        self._drop_cancelled_top()
        heap = self.heap
        if heap and heap[0][0] <= now:
            timer = heapq.heappop(heap)[3]
            timer.queue = None  # fired: a later cancel() is not counted
            return timer
        return None

    def pending(self) -> int:
        """Timers not yet fired or cancelled (for statistics and tests)."""
        return len(self.heap) - self.cancelled_entries
