"""`every a=A(...) -> b=B(...)`, with or without `where timer:within(d)` on B, run without
the tree of states of cep.runtime.matcher.

It is the pattern a home's rules use most ("a door opened, then motion within five
minutes", "each A followed by its B").  The general run makes, for each A, three states
(the wait for B, the state of its timer, the new wait for the next A) and files two atoms
in its index, and a B goes up through three states to the match; this run keeps one
entry per A waiting for its B, and a B completes each entry it matches directly.

It behaves exactly as the general run (`PatternRun`) does, event for event:

- the same matches in the same order: the entries are kept in the order their atoms
  would have registered, and the wait for the next A is always the newest atom, so an
  event is offered to the waiting entries first and then to the wait for A, as the
  general run's index would offer it; a state started by an event never sees it;
- the same timers, set at the same moments with the same priority (so timers due at one
  instant fire in the same order as the general run's), and cancelled alike;
- the same counts of partial matches (`live_states`), the same `at_rest`, and the same
  snapshot: `snapshot` writes the data the general run would write, and a saved run is
  restored by the general run and then taken over (`EveryThenRun.adopt`), so state files
  do not depend on which run wrote them.

`every_then_shape(node)` says whether a compiled pattern has this shape.  With
CEP_EVERY_THEN=0 in the environment every pattern runs the general way (to compare; the
output is the same, which tests check).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from cep.runtime.events import Event, Match
from cep.runtime.expressions import ContextView
from cep.runtime.matcher import (
    PATTERN_TIMER,
    AtomNode,
    AtomState,
    EngineServices,
    EveryNode,
    EveryState,
    FollowedByNode,
    FollowedByState,
    Node,
    PatternRun,
    State,
    WithinNode,
    WithinState,
)
from cep.runtime.snapshot import Json

if TYPE_CHECKING:
    from cep.runtime.clock import Timer
    from cep.runtime.snapshot import StateWriter


def every_then_wanted() -> bool:
    """Whether rules run this shape of pattern here: yes, unless CEP_EVERY_THEN=0."""
    return os.environ.get("CEP_EVERY_THEN", "1") != "0"


class EveryThenShape:
    """The parts of an `every a -> b [within d]` pattern: the two atoms, and the seconds of
    the within (None: no within)."""

    __slots__ = ("first", "first_key", "then", "then_key", "within")

    def __init__(self, first: AtomNode, then: AtomNode, within: float | None) -> None:
        self.first = first
        self.then = then
        self.within = within
        # an atom's `attr = constant` key as the index looks it up: (attr, {constant: 0})
        self.first_key = _lookup(first)
        self.then_key = _lookup(then)


def _lookup(atom: AtomNode) -> tuple[str, dict[Hashable, int]] | None:
    if atom.key is None:
        return None
    attr, constant = atom.key
    return attr, {constant: 0}


def every_then_shape(node: Node) -> EveryThenShape | None:
    """The shape of `node` when it is `every a -> b` or `every a -> b where timer:within`
    with a and b atoms; else None."""
    if type(node) is not FollowedByNode or len(node.steps) != 2:
        return None
    every, then = node.steps
    if type(every) is not EveryNode or type(every.body) is not AtomNode:
        return None
    within: float | None = None
    if type(then) is WithinNode:
        within = then.seconds
        then = then.body
    if type(then) is not AtomNode:
        return None
    first = every.body
    if first.under_not or then.under_not:
        return None
    return EveryThenShape(first, then, within)


class _Waiting:
    """An A waiting for its B: the match so far, the first event number and the
    registration order its atom would have in the general run, and its within timer."""

    __slots__ = ("active", "born", "match", "order", "run", "timer")

    def __init__(self, run: EveryThenRun, match: Match, born: int, order: int) -> None:
        self.run = run
        self.match = match
        self.born = born
        self.order = order
        self.active = True
        self.timer: Timer | None = None

    def expire(self, _: float) -> None:
        """The within ran out: the A waits no longer.  (The fired timer is let go: it holds
        this method, and a cycle would keep both until the cycle collector ran.)"""
        self.timer = None
        if self.active:
            self.active = False
            self.run.waiting.pop(self, None)


class EveryThenRun:
    """One running instance of an `every a -> b [within d]` pattern (see the module's
    docstring); it has the interface of `PatternRun` that rules use."""

    __slots__ = (
        "ctx",
        "eager",
        "engine",
        "finished",
        "first_born",
        "first_order",
        "on_match",
        "owner",
        "priority",
        "registered",
        "shape",
        "waiting",
    )

    def __init__(self, engine: EngineServices, ctx: ContextView | None,
                 on_match: Callable[[Match], None], owner: str, shape: EveryThenShape,
                 priority: int = PATTERN_TIMER) -> None:
        self.engine = engine
        self.ctx = ctx
        self.on_match = on_match
        self.owner = owner
        self.shape = shape
        self.priority = priority
        self.finished = False
        self.eager = False  # (never set: this pattern cannot match while it starts)
        self.registered = 0  # atoms the general run would have registered so far
        self.first_born = 0  # the wait for the next A: its first event number and order
        self.first_order = 0
        self.waiting: dict[_Waiting, None] = {}  # in registration order

    def start(self, node: Node) -> None:
        """Start waiting for the first A; it sees the event being delivered now, if any
        (see `PatternRun.start`)."""
        self.first_born = self.engine.event_seq - 1
        self.registered += 1
        self.first_order = self.registered

    def dispatch(self, event: Event) -> None:
        """Offer an event to the waiting entries it can complete, then to the wait for A."""
        seq = self.engine.event_seq
        attrs = event.attrs
        shape = self.shape
        type_name = event.type
        waiting = self.waiting
        if waiting and type_name == shape.then.type:
            key = shape.then_key
            wanted = True
            if key is not None:
                try:
                    wanted = attrs.get(key[0]) in key[1]
                except TypeError:  # an unhashable value equals no constant
                    wanted = False
            if wanted:
                for entry in list(waiting):
                    if entry.active and entry.born < seq:
                        self._then(entry, event)
        if type_name == shape.first.type and self.first_born < seq:
            key = shape.first_key
            if key is not None:
                try:
                    if attrs.get(key[0]) not in key[1]:
                        return
                except TypeError:
                    return
            self._first(event, seq)

    def _then(self, entry: _Waiting, event: Event) -> None:
        atom = self.shape.then
        if atom.filter is not None:
            try:
                passed = atom.filter(event.attrs, entry.match, self.ctx)
            except Exception as exc:  # as if it did not match; reported
                self.filter_failed(exc)
                return
            if not passed:
                return
        entry.active = False
        del self.waiting[entry]
        timer = entry.timer
        if timer is not None:
            timer.cancel()
        match = entry.match
        if atom.tag is not None:
            match = {**match, atom.tag: event}
        self.on_match(match)

    def _first(self, event: Event, seq: int) -> None:
        atom = self.shape.first
        match: Match = {}
        if atom.filter is not None:
            try:
                passed = atom.filter(event.attrs, match, self.ctx)
            except Exception as exc:
                self.filter_failed(exc)
                return
            if not passed:
                return
        if atom.tag is not None:
            match = {atom.tag: event}
        # as the general run: the within's timer, then the wait for B, then the next A
        self.registered += 1
        entry = _Waiting(self, match, seq, self.registered)
        within = self.shape.within
        if within is not None:
            engine = self.engine
            entry.timer = engine.timers.schedule(engine.now + within, entry.expire,
                                                 self.priority)
        self.waiting[entry] = None
        self.registered += 1
        self.first_born = seq
        self.first_order = self.registered

    def stop(self) -> None:
        """Drop all state silently (the context instance closed)."""
        for entry in self.waiting:
            entry.active = False
            if entry.timer is not None:
                entry.timer.cancel()
        self.waiting.clear()
        self.finished = True

    def live_states(self) -> int:
        """Live atoms and timers, as the general run counts them."""
        waiting = len(self.waiting)
        return 1 + waiting + (waiting if self.shape.within is not None else 0)

    def at_rest(self) -> bool:
        return not self.finished and not self.waiting

    def filter_failed(self, exc: Exception) -> None:
        self.engine.report_fault(self.owner, "a pattern filter", exc)

    def snapshot(self, w: StateWriter) -> Json:
        """What `PatternRun.snapshot` writes for the same state."""
        first: dict[str, Json] = {"m": w.match({}), "b": self.first_born,
                                  "o": self.first_order}
        children: list[Json] = [[0, {"m": w.match({}), "c": [first]}]]
        within = self.shape.within is not None
        for entry in self.waiting:
            atom: dict[str, Json] = {"m": w.match(entry.match), "b": entry.born,
                                     "o": entry.order}
            if within:
                children.append([1, {"t": w.timer(entry.timer), "c": atom}])
            else:
                children.append([1, atom])
        return {"f": self.finished, "e": self.eager, "n": self.registered,
                "c": {"c": children}}

    @classmethod
    def adopt(cls, run: PatternRun, shape: EveryThenShape) -> EveryThenRun | None:
        """This run in place of `run`, a general run of the same pattern just restored
        from a snapshot; its timers are taken over.  None when `run` is not as this run
        keeps its state (a finished or eager run, or orders out of place): the general
        run then goes on."""
        root = run.root
        if run.finished or run.eager or run.born is not None or root is None:
            return None
        followed = root.child
        if type(followed) is not FollowedByState or not followed.active:
            return None
        steps = list(followed.children.items())
        if not steps or type(steps[0][0]) is not EveryState or steps[0][1] != 0:
            return None
        every = steps[0][0]
        assert isinstance(every, EveryState)
        waits = list(every.children)
        if not every.active or every.starting is not None or len(waits) != 1:
            return None
        first = waits[0]
        if type(first) is not AtomState or not first.active:
            return None
        fast = cls(run.engine, run.ctx, run.on_match, run.owner, shape, run.priority)
        fast.registered = run.registered
        fast.first_born, fast.first_order = first.born, first.order
        taken: list[tuple[_Waiting, Timer | None]] = []
        last_order = 0
        for state, step in steps[1:]:
            if step != 1 or not state.active:
                return None
            timer: Timer | None = None
            atom: State | None = state
            if shape.within is not None:
                if type(state) is not WithinState or state not in run.timers:
                    return None
                timer = state.timer
                atom = state.child
            if type(atom) is not AtomState or not atom.active or atom.order <= last_order:
                return None
            last_order = atom.order
            entry = _Waiting(fast, atom.match, atom.born, atom.order)
            taken.append((entry, timer))
        if last_order >= fast.first_order:
            return None
        for entry, timer in taken:
            if timer is not None:
                timer.callback = entry.expire
                entry.timer = timer
            fast.waiting[entry] = None
        return fast
