"""Output rate limiting (`OUTPUT FIRST | LAST | SNAPSHOT EVERY d`), per context instance
and per group, on the engine's clock.

- FIRST: a result passes, then the group's results are dropped until d has passed (one
  at exactly t0 + d passes and starts a new period).
- LAST: periods of d from the rule's start in its instance; at each period's end the
  last result of each group in that period goes out, stamped with the period's end.
- SNAPSHOT: the rule's window answers at each period's end (cep.runtime.agents); this
  module only says when the periods end.

Timers are set only while something waits for a period's end, so a quiet instance
costs nothing. What a LAST period holds when its instance closes is dropped.

`OutputLimiter.snapshot(w)` / `restore(data, r)` save the periods of every instance (by
the instance's number, cep.runtime.snapshot), what LAST holds and the parked starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from cep.language import ast
from cep.runtime.clock import Timer
from cep.runtime.snapshot import Json, StateReader, StateWriter, need
from cep.runtime.windows import SAME_INSTANT, hashable, read_key

# A period's end fires before anything else due at the same instant: what happens at its
# end (a pattern's timer, an event) belongs to the next period, [start, end).
OUTPUT_TIMER = -3


PRUNE_ABOVE = 1024  # FIRST periods kept before the finished ones are dropped


class RateHost(Protocol):
    now: float

    def schedule(self, deadline: float, callback: Callable[[float], None],
                 priority: int = 1) -> Timer: ...


def period_end(start: float, every: float, now: float) -> float:
    """The end of the period of length `every` (counted from `start`) that `now` is in:
    a time exactly on a boundary begins the next period."""
    end = start + (math.floor((now - start + SAME_INSTANT) / every) + 1) * every
    while end <= now + SAME_INSTANT:  # rounding
        end += every
    return end


class _InstanceRate:
    __slots__ = ("held", "prune_above", "start", "timer", "until")

    def __init__(self, start: float) -> None:
        self.start = start
        self.until: dict[Any, float] = {}   # FIRST: group -> when its next result may pass
        self.prune_above = PRUNE_ABOVE      # FIRST: `until` entries before pruning it
        self.held: dict[Any, Any] = {}      # LAST: group -> its last result of the period
        self.timer: Timer | None = None


class OutputLimiter:
    """One rule's output clause. `release(instance, held)` is what the rule does with a
    held result at a LAST period's end."""

    def __init__(self, clause: ast.OutputClause, host: RateHost,
                 release: Callable[[Any, Any], None]) -> None:
        self.kind = clause.kind
        self.every = clause.every.seconds
        self.host = host
        self.release = release
        self.instances: dict[Any, _InstanceRate] = {}
        self.parked: dict[Any, float] = {}  # LAST: a released instance's key -> its start

    def start(self, instance: Any) -> None:
        start = self.parked.pop(hashable(instance.key), None) if self.parked else None
        self.instances[instance] = _InstanceRate(self.host.now if start is None else start)

    def park(self, instance: Any) -> None:
        """The instance is released (at rest): LAST periods run from its start, so the
        key's next instance keeps it."""
        state = self.instances.get(instance)
        if state is not None and self.kind == "last":
            self.parked[hashable(instance.key)] = state.start
        self.stop(instance)

    def stop(self, instance: Any) -> None:
        state = self.instances.pop(instance, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()

    def _state(self, instance: Any) -> _InstanceRate:
        state = self.instances.get(instance)
        if state is None:  # (started before this limiter knew the instance)
            state = self.instances[instance] = _InstanceRate(self.host.now)
        return state

    def offer(self, instance: Any, group: Any, result: Any) -> bool:
        """Whether a result goes out now (FIRST); LAST holds it for its period's end."""
        state = self._state(instance)
        now = self.host.now
        if self.kind == "first":
            until = state.until
            if now + SAME_INSTANT < until.get(group, -math.inf):
                return False
            if len(until) > state.prune_above:  # amortised: the limit doubles what is kept
                for key in [k for k, t in until.items() if t <= now]:
                    del until[key]
                state.prune_above = max(PRUNE_ABOVE, 2 * len(until))
            until[group] = now + self.every
            return True
        if self.kind == "last":
            state.held[group] = result
            if state.timer is None:
                state.timer = self.host.schedule(
                    period_end(state.start, self.every, now),
                    self._period_end(instance, state), OUTPUT_TIMER)
            return False
        return False  # SNAPSHOT: only the periods' ends answer

    def _period_end(self, instance: Any, state: _InstanceRate) -> Callable[[float], None]:
        return lambda at: self._period_ended(instance, state)

    def _period_ended(self, instance: Any, state: _InstanceRate) -> None:
        state.timer = None
        held, state.held = state.held, {}
        for result in held.values():
            self.release(instance, result)

    def at_rest(self, instance: Any) -> bool:
        """Whether releasing the instance (`park`) changes nothing: FIRST with no period
        running, LAST with nothing held."""
        state = self.instances.get(instance)
        if state is None:
            return True
        if self.kind == "last":
            return not state.held
        return all(t <= self.host.now for t in state.until.values())

    # -------------------------------------------------------------- snapshots
    def snapshot(self, w: StateWriter) -> Json:
        """`{"instances": [[instance, {"start": t, "until": [[group, t], ...], "prune": n,
        "held": [[group, result], ...], "timer": t}], ...], "parked": [[key, start], ...]}`
        (`until`, `prune`: FIRST; `held`, `timer`: LAST; in the order they were made)."""
        return {
            "instances": [[w.instance(instance), {
                "start": w.value(state.start),
                "until": [[w.value(group), w.value(t)] for group, t in state.until.items()],
                "prune": state.prune_above,
                "held": [[w.value(group), w.value(held)] for group, held in state.held.items()],
                "timer": w.timer(state.timer)}]
                for instance, state in self.instances.items()],
            "parked": [[w.value(key), w.value(start)] for key, start in self.parked.items()]}

    def restore(self, data: Json, r: StateReader) -> None:
        need(type(data) is dict and type(data.get("instances")) is list
             and type(data.get("parked")) is list, "an output clause's state is damaged")
        for row in data["instances"]:
            need(type(row) is list and len(row) == 2 and type(row[1]) is dict,
                 "an output clause's instance is damaged")
            instance, body = r.instance(row[0]), row[1]
            need(instance not in self.instances, "an output clause's instance is given twice")
            state = _InstanceRate(r.number(body.get("start"), "an output period's start"))
            for group, until in _pairs(body.get("until"), "until"):
                state.until[read_key(group, r, "a group")] = r.number(until, "a FIRST period")
            prune = body.get("prune")
            need(type(prune) is int and prune >= 0, "'prune' is damaged")
            state.prune_above = prune
            for group, held in _pairs(body.get("held"), "held"):
                state.held[read_key(group, r, "a group")] = r.value(held)
            need(self.kind == "last" or not state.held, "only OUTPUT LAST holds results")
            timer = body.get("timer")
            need(timer is None or self.kind == "last", "only OUTPUT LAST sets timers")
            state.timer = r.timer(timer, self._period_end(instance, state))
            self.instances[instance] = state
        for key, start in _pairs(data["parked"], "parked"):
            self.parked[read_key(key, r, "a parked key")] = r.number(start, "a parked start")


def _pairs(data: Json, what: str) -> list[list[Json]]:
    need(type(data) is list and all(type(row) is list and len(row) == 2 for row in data),
         f"'{what}' is not a list of pairs")
    return list(data)
