"""Counting bad bus messages and reporting them without flooding: once per topic per minute.

Time is engine time passed in by the caller (a replay of a week of data must
report as a live run over that week would), never the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["BadMessageReporter"]


class BadMessageReporter:
    """Counts bad messages per topic; reports the first, then at most one per `interval`."""

    __slots__ = ("_interval", "_report", "_topics", "total")

    def __init__(self, report: Callable[[str], None], interval: float = 60.0) -> None:
        self._report = report
        self._interval = interval
        # topic -> [count, engine time of the last report, bad messages held back since it]
        self._topics: dict[str, list] = {}
        self.total = 0

    def bad(self, topic: str, reason: str, now: float) -> bool:
        """Count a bad message at engine time `now`; True when it was reported."""
        self.total += 1
        state = self._topics.get(topic)
        if state is None:
            self._topics[topic] = [1, now, 0]
            self._report(f"bad message on {topic}: {reason}")
            return True
        state[0] += 1
        if now - state[1] < self._interval:
            state[2] += 1
            return False
        held_back = state[2]
        state[1], state[2] = now, 0
        more = (f" (and {held_back} more on this topic since the last report)"
                if held_back else "")
        self._report(f"bad message on {topic}: {reason}{more}")
        return True

    def count(self, topic: str) -> int:
        state = self._topics.get(topic)
        return state[0] if state is not None else 0

    @property
    def counts(self) -> dict[str, int]:
        """Bad messages per topic, topics in name order."""
        return {topic: self._topics[topic][0] for topic in sorted(self._topics)}

    def summary(self) -> str:
        """One line: `3 bad messages on 2 topics: a/b 2, c/d 1` (or `no bad messages`)."""
        if not self.total:
            return "no bad messages"
        topics = len(self._topics)
        parts = ", ".join(f"{topic} {count}" for topic, count in self.counts.items())
        return (f"{self.total} bad message{'s' if self.total != 1 else ''} on {topics} "
                f"topic{'s' if topics != 1 else ''}: {parts}")
