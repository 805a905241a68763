"""Counting bad bus messages and reporting them without flooding: once per topic per minute.

Time is engine time passed in by the caller (a replay of a week of data must
report as a live run over that week would), never the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["BadMessageReporter"]


class _Topic:
    """One topic's count, when it was last reported, and bad messages held back since."""

    __slots__ = ("count", "held_back", "reported_at")

    def __init__(self, now: float) -> None:
        self.count = 1
        self.reported_at = now
        self.held_back = 0


class BadMessageReporter:
    """Counts bad messages per topic; reports the first, then at most one per `interval`."""

    __slots__ = ("_interval", "_report", "_topics", "total")

    def __init__(self, report: Callable[[str], None], interval: float = 60.0) -> None:
        self._report = report
        self._interval = interval
        self._topics: dict[str, _Topic] = {}
        self.total = 0

    def bad(self, topic: str, reason: str, now: float) -> bool:
        """Count a bad message at engine time `now`; True when it was reported."""
        self.total += 1
        state = self._topics.get(topic)
        if state is None:
            self._topics[topic] = _Topic(now)
            self._report(f"bad message on {topic}: {reason}")
            return True
        state.count += 1
        if now - state.reported_at < self._interval:
            state.held_back += 1
            return False
        held_back = state.held_back
        state.reported_at, state.held_back = now, 0
        more = (f" (and {held_back} more on this topic since the last report)"
                if held_back else "")
        self._report(f"bad message on {topic}: {reason}{more}")
        return True

    def count(self, topic: str) -> int:
        state = self._topics.get(topic)
        return state.count if state is not None else 0

    @property
    def counts(self) -> dict[str, int]:
        """Bad messages per topic, topics in name order."""
        return {topic: self._topics[topic].count for topic in sorted(self._topics)}

    def summary(self) -> str:
        """One line: `3 bad messages on 2 topics: a/b 2, c/d 1` (or `no bad messages`)."""
        if not self.total:
            return "no bad messages"
        topics = len(self._topics)
        parts = ", ".join(f"{topic} {count}" for topic, count in self.counts.items())
        return (f"{self.total} bad message{'s' if self.total != 1 else ''} on {topics} "
                f"topic{'s' if topics != 1 else ''}: {parts}")
