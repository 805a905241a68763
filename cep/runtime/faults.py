"""Reporting what went wrong while running, without flooding: once per kind per minute.

A rule that fails on one value fails the same way on the next thousand; a partition
context at its limit refuses every new key.  Each kind of report (a rule and what failed,
a context and its limit) is reported the first time, then at most once per `interval` of
engine time, saying how many were held back.  Counting is the engine's (its `stats`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

__all__ = ["FaultReporter", "describe_exception"]

MAX_KINDS = 4096  # kinds remembered (then start afresh: the reports stay rate-limited)
MESSAGE_LIMIT = 300  # characters of an exception's text kept in a report


class _Kind:
    __slots__ = ("held_back", "reported_at")

    def __init__(self, now: float) -> None:
        self.reported_at = now
        self.held_back = 0


class FaultReporter:
    """Reports the first fault of each kind, then at most one per `interval` seconds."""

    __slots__ = ("_interval", "_kinds", "_report")

    def __init__(self, report: Callable[[str], None], interval: float) -> None:
        self._report = report
        self._interval = interval
        self._kinds: dict[Hashable, _Kind] = {}

    def __call__(self, kind: Hashable, message: Callable[[], str], now: float) -> bool:
        """One fault of `kind` at engine time `now`; `message` makes the text only when it
        is reported.  True when it was reported."""
        state = self._kinds.get(kind)
        if state is None:
            if len(self._kinds) >= MAX_KINDS:
                self._kinds.clear()
            self._kinds[kind] = _Kind(now)
            self._report(message())
            return True
        if now - state.reported_at < self._interval:
            state.held_back += 1
            return False
        held_back = state.held_back
        state.reported_at, state.held_back = now, 0
        more = f" (and {held_back} more like it since the last report)" if held_back else ""
        self._report(message() + more)
        return True


def describe_exception(exc: BaseException) -> str:
    """`TypeError: text`, the text shortened (it may quote a whole payload)."""
    try:
        detail = str(exc)
    except Exception:  # an exception whose text itself fails
        detail = "(no description)"
    text = f"{type(exc).__name__}: {detail}"
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."
