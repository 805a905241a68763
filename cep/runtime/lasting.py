"""`X FOR d`: a condition that lasts, as Home Assistant's `for: 5 minutes`.

`tag=Type(filter) FOR d` waits for an event matching the atom (the *start*); from then
on it watches the events of the type from the start's source (`Event.source`, the MQTT
topic, or the type for an event without one: the sources `changed()` tells apart).  One
of them that fails the filter before d has passed makes it permanently false; otherwise
a timer makes it true d after the start, the tag bound to the starting event.

- The `changed()` conditions of the filter choose the start only: the filter's top-level
  AND conjuncts that call `changed` anywhere are left out of the test of the later
  events (the *hold* test), so a repeated "still open" report does not end the wait.
- The state is one atom at a time in the run's index (`AtomIndex`): the start atom (with
  its `attr = constant` key), then the hold atom (no key: a closing door must reach it
  whatever the start's key says; the rule's `Interest` then takes every event of the
  type).  While it waits it turns neither true nor false, so an `every` around it does
  not restart it: an event of another source that would start a wait is ignored (one
  wait per device is a rule in a PARTITION BY context).
- As everywhere, the hold atom never sees the starting event, and timers due at or before
  an event fire first: an event failing the filter exactly d after the start comes too
  late, the atom is already true.
- A filter that raises is reported and counts as false (as for any atom): at the start,
  the event starts nothing; during the wait, it ends the wait.
- Stopped, it unregisters its atom and cancels its timer; true or false, it leaves
  nothing behind.
"""

from __future__ import annotations

from cep.language import ast
from cep.language.walk import walk_expr
from cep.runtime.events import Event, Match
from cep.runtime.matcher import (
    AtomNode,
    AtomState,
    Node,
    Parent,
    PatternRun,
    Rebuild,
    TimedState,
    save_state,
)
from cep.runtime.snapshot import Json, StateWriter, need


def hold_condition(expr: ast.Expr | None) -> ast.Expr | None:
    """The filter without its top-level AND conjuncts that call `changed()` (None when
    nothing is left): what the later events of the source must still pass."""
    if expr is None:
        return None
    kept: ast.Expr | None = None
    for conjunct in _conjuncts(expr):
        if any(isinstance(node, ast.Call) and node.name == "changed"
               for node in walk_expr(conjunct)):
            continue
        kept = conjunct if kept is None else \
            ast.Binary(span=conjunct.span, op="and", left=kept, right=conjunct)
    return kept


def _conjuncts(expr: ast.Expr) -> list[ast.Expr]:
    """`a and b and c` as [a, b, c] (any other expression as [expr])."""
    pending, found = [expr], []
    while pending:
        item = pending.pop()
        if isinstance(item, ast.Binary) and item.op == "and":
            pending += (item.right, item.left)
        else:
            found.append(item)
    return found


class ForNode(Node):
    """`X FOR d`: `start` is the atom X as compiled (tag, key, filter), `hold` the atom
    of the hold test (X's type, no tag, no key; None when every conjunct of the filter
    calls `changed()`: nothing can then end the wait)."""

    def __init__(self, start: AtomNode, hold: AtomNode | None, seconds: float) -> None:
        self.start = start
        self.hold = hold
        self.seconds = seconds

    def create(self, parent: Parent, run: PatternRun) -> ForState:
        return ForState(self, parent, run)

    def children(self) -> tuple[Node, ...]:
        """Its atoms, so that `atom_nodes` (and the rule's `Interest`) know them."""
        return (self.start,) if self.hold is None else (self.start, self.hold)


class ForState(TimedState):
    """Waiting for the start (`begun` None, `watch` the start atom), then for d to pass
    (`watch` the hold atom or None, the timer set)."""

    __slots__ = ("begun", "match", "node", "source", "watch")

    match: Match
    source: str  # the start's source

    def __init__(self, node: ForNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out)
        self.run = run
        self.active = True
        self.node = node
        self.begun: Event | None = None
        self.watch: AtomState | None = None

    def start(self, match: Match) -> None:
        self.match = match
        self.watch = _StartWatch(self.node.start, self, self.run)
        self.watch.start(match)

    def at_rest(self) -> bool:
        return self.active and self.begun is None

    def started(self, event: Event) -> None:
        """An event the start atom was offered."""
        if not self._passes(self.node.start, event):
            return
        run = self.run
        if self.watch is not None:
            self.watch.stop()
            self.watch = None
        self.begun = event
        self.source = event.source if event.source is not None else event.type
        self.set_timer(self.node.seconds, self.fire)
        hold = self.node.hold
        if hold is not None:  # registered now, it never sees the starting event
            self.watch = _HoldWatch(hold, self, run)
            self.watch.start(self.match)

    def held(self, event: Event) -> None:
        """An event of the type during the wait: from the start's source, it must pass."""
        source = event.source if event.source is not None else event.type
        if source != self.source or self._passes(self.node.hold, event):
            return
        self.stop()
        self.parent.child_false(self)

    def fire(self, _: float) -> None:
        if not self.active:
            return
        self.timer_fired()
        if self.watch is not None:
            self.watch.stop()
            self.watch = None
        match = self.match
        tag = self.node.start.tag
        if tag is not None and self.begun is not None:
            match = {**match, tag: self.begun}
        self.parent.child_true(self, match, True)

    def stop(self) -> None:
        if self.active:
            self.active = False
            if self.watch is not None:
                self.watch.stop()
                self.watch = None
            if self.begun is not None:
                self.clear_timer()

    def save(self, w: StateWriter) -> dict[str, Json]:
        """`{"m": match, "g": the start event or null, "s": its source, "w": the atom
        watched or null (the start's before it, the hold test's after), "t": timer}`."""
        data = {"m": w.match(self.match), "w": None if self.watch is None else
                save_state(self.watch, w), "t": self.saved_timer(w)}
        if self.begun is not None:
            data["g"] = w.event(self.begun)
            data["s"] = self.source
        return data

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        self.match = rebuild.match(data, "m")
        if data.get("g") is not None:
            self.begun = rebuild.r.event(data["g"])
            source = data.get("s")
            need(type(source) is str, "a FOR state's source is not a string")
            self.source = str(source)
        watch = data.get("w")
        if watch is not None:
            if self.begun is None:
                self.watch = rebuild.fill(_StartWatch(self.node.start, self, self.run), watch)
            else:
                hold = self.node.hold
                need(hold is not None, "a FOR state watches a hold test it has not")
                assert hold is not None
                self.watch = rebuild.fill(_HoldWatch(hold, self, self.run), watch)
        rebuild.timer(self, data, self.fire)

    def _passes(self, node: AtomNode | None, event: Event) -> bool:
        """Whether the event passes the atom's filter (not when it raises: reported)."""
        check = node.filter if node is not None else None
        if check is None:
            return True
        try:
            return bool(check(event.attrs, self.match, self.run.ctx))
        except Exception as exc:  # counts as false; reported
            self.run.filter_failed(exc)
            return False


class _StartWatch(AtomState):
    """The start atom of a FOR state in the run's index: it hands its events to the state."""

    __slots__ = ("owner",)

    def __init__(self, node: AtomNode, owner: ForState, run: PatternRun) -> None:
        super().__init__(node, owner, run)
        self.owner = owner

    def on_event(self, event: Event) -> None:
        self.owner.started(event)


class _HoldWatch(AtomState):
    """The hold atom of a FOR state in the run's index: it hands its events to the state."""

    __slots__ = ("owner",)

    def __init__(self, node: AtomNode, owner: ForState, run: PatternRun) -> None:
        super().__init__(node, owner, run)
        self.owner = owner

    def on_event(self, event: Event) -> None:
        self.owner.held(event)
