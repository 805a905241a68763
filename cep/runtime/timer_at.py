"""`timer:at(hh:mm [ON days])`, `timer:at(SUNSET [± d] [ON days])`: a pattern atom that
turns true at the next such instant strictly after it started.

The instant is computed once, when the state starts, from the engine's clock (event time)
in the rules' zone, at the home's location (for sun events), by `next_instant` (the same
instants as a recurring context's START: DST and sun rules in cep.runtime.recurrence). A
time point that never happens again (a sun event of a polar location, in theory) makes the
atom permanently false at once. `every timer:at(07:30 ON MON-FRI)` fires each weekday
morning: `every` starts a new atom at each firing, which waits for the next day's.
"""

from __future__ import annotations

from datetime import tzinfo

from cep.language import ast
from cep.runtime.events import Match
from cep.runtime.matcher import Node, Parent, PatternRun, Rebuild, TimedState
from cep.runtime.recurrence import check_point, day_set, next_instant
from cep.runtime.snapshot import Json, StateWriter
from cep.runtime.sun import Location


class AtNode(Node):
    """The compiled `timer:at`: the time point, its days, the zone and the location."""

    def __init__(self, at: ast.TimePoint, days: tuple[ast.DayRange, ...], zone: tzinfo,
                 location: Location | None = None) -> None:
        check_point(at, location)  # a sun event needs a location (the checks say so first)
        self.at = at
        self.days = day_set(days)
        self.zone = zone
        self.location = location
        # The last answer: (after, instant) holds for every time in [after, instant), so
        # the many runs of a partition that start at one instant compute it once.
        self._known: tuple[float, float] | None = None

    def next_after(self, ts: float) -> float | None:
        """The first instant of the time point on a selected day strictly after `ts`."""
        known = self._known
        if known is not None and known[0] <= ts < known[1]:
            return known[1]
        found = next_instant(self.at, self.days, ts, self.zone, self.location)
        if found is not None:
            self._known = (ts, found)
        return found

    def create(self, parent: Parent, run: PatternRun) -> AtState:
        return AtState(self, parent, run)


class AtState(TimedState):
    """Waits for its node's next instant after the moment it started."""

    __slots__ = ("match", "node")

    match: Match

    def __init__(self, node: AtNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out)
        self.run = run
        self.active = True
        self.node = node

    def start(self, match: Match) -> None:
        self.match = match
        run = self.run
        engine = run.engine
        deadline = self.node.next_after(engine.now)
        if deadline is None:  # never again: permanently false
            self.active = False
            self.parent.child_false(self)
            return
        self.timer = engine.schedule(deadline, self.fire, run.priority)
        run.timers[self] = None

    def fire(self, _: float) -> None:
        if self.active:
            self.timer_fired()
            self.parent.child_true(self, self.match, True)

    def save(self, w: StateWriter) -> dict[str, Json]:
        """`{"m": match, "t": timer}` (the instant is the timer's deadline)."""
        return {"m": w.match(self.match), "t": self.saved_timer(w)}

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        self.match = rebuild.match(data, "m")
        rebuild.timer(self, data, self.fire)
