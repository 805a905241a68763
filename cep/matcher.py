"""Patterns as state machines, with Esper's semantics.

A compiled pattern is a tree of *nodes* (one per operator, built once per
rule).  Running it creates *states*: each live sub-pattern instance is a state
object with a parent.  A state tells its parent when it turned true (with the
tags it bound, and whether it is finished: `quitted`) or permanently false.

- Atoms (`A(filter)`) register in the run's index by event type; an atom
  matches once and quits.  A state started by an event E never sees E: it
  records the engine's event sequence number at birth and is skipped for it.
- `every` restarts its sub-pattern when that turns true or permanently false.
- Atoms under a `not` are dispatched first, so when one event both makes a
  `not` false and would complete the other side of its `and`, the `not` wins.
- Stopped states unregister their atoms and cancel their timers at once, so
  memory follows live state only.
"""

from __future__ import annotations

from itertools import product
from typing import TYPE_CHECKING, Any, Callable, Optional

from cep.events import Event

if TYPE_CHECKING:
    from cep.clock import Timer

Match = dict  # tag -> Event, or list[Event] for a repeated tag
Filter = Callable[[Optional[dict], dict, Any], Any]


# ====================================================================== the run


class PatternRun:
    """One running instance of a rule's pattern (per context instance).

    Holds the index of live atoms by event type, and hands matches of the
    root to `on_match(match)`.
    """

    __slots__ = ("engine", "ctx", "on_match", "index", "priority_index", "root", "finished",
                 "timers", "born")

    def __init__(self, engine: "EngineServices", ctx: Any,
                 on_match: Callable[[Match], None]) -> None:
        self.engine = engine
        self.ctx = ctx
        self.on_match = on_match
        self.index: dict[str, dict["AtomState", None]] = {}
        self.priority_index: dict[str, dict["AtomState", None]] = {}
        self.timers: dict["TimedState", None] = {}
        self.root: Optional[RootState] = None
        self.finished = False
        self.born: Optional[int] = None  # while starting: the sequence number atoms take

    def start(self, node: "Node") -> None:
        """Start the pattern; it sees the event being delivered now, if any.

        A context instance opened by an event E (an initiator, a partition's first
        event) owns E, so its rules' atoms must be offered E as well.
        """
        self.root = RootState(self)
        child = node.create(self.root, self)
        self.root.child = child
        self.born = self.engine.event_seq - 1
        try:
            child.start({})
        finally:
            self.born = None

    def dispatch(self, event: Event) -> None:
        """Offer an event to every live atom of its type (under-`not` atoms first)."""
        seq = self.engine.event_seq
        for index in (self.priority_index, self.index):
            bucket = index.get(event.type)
            if bucket:
                for state in list(bucket):
                    if state.active and state.born < seq:
                        state.on_event(event)

    def stop(self) -> None:
        """Drop all state silently (the context instance closed)."""
        if self.root is not None and self.root.child is not None:
            self.root.child.stop()
        self.finished = True

    def live_states(self) -> int:
        """Live atoms and timers: the partial matches waiting for something."""
        return sum(len(b) for b in self.index.values()) + \
            sum(len(b) for b in self.priority_index.values()) + len(self.timers)

    # -------------------------------------------------------------- atom registry
    def add_atom(self, state: "AtomState") -> None:
        index = self.priority_index if state.node.under_not else self.index
        bucket = index.get(state.node.type)
        if bucket is None:
            bucket = index[state.node.type] = {}
        bucket[state] = None

    def remove_atom(self, state: "AtomState") -> None:
        index = self.priority_index if state.node.under_not else self.index
        bucket = index.get(state.node.type)
        if bucket is not None:
            bucket.pop(state, None)
            if not bucket:
                del index[state.node.type]


class EngineServices:
    """What pattern states need from the engine: the time, timers, the event sequence."""

    event_seq: int
    now: float

    def schedule(self, deadline: float, callback: Callable[[float], None]) -> "Timer":
        raise NotImplementedError


# ====================================================================== states


class State:
    __slots__ = ("parent", "run", "active")

    def __init__(self, parent: "Parent", run: PatternRun) -> None:
        self.parent = parent
        self.run = run
        self.active = True

    def start(self, match: Match) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.active = False


class Parent:
    """The interface a state uses to report to its parent."""

    __slots__ = ()

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        raise NotImplementedError

    def child_false(self, child: State) -> None:
        raise NotImplementedError


class RootState(Parent):
    __slots__ = ("run", "child")

    def __init__(self, run: PatternRun) -> None:
        self.run = run
        self.child: Optional[State] = None

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        if quitted:
            self.run.finished = True
        self.run.on_match(match)

    def child_false(self, child: State) -> None:
        self.run.finished = True


class AtomState(State):
    __slots__ = ("node", "match", "born")

    def __init__(self, node: "AtomNode", parent: Parent, run: PatternRun) -> None:
        super().__init__(parent, run)
        self.node = node

    def start(self, match: Match) -> None:
        self.match = match
        run = self.run
        self.born = run.engine.event_seq if run.born is None else run.born
        run.add_atom(self)

    def on_event(self, event: Event) -> None:
        node = self.node
        if node.filter is not None and not node.filter(event.attrs, self.match, self.run.ctx):
            return
        self.stop()
        match = self.match
        if node.tag is not None:
            match = {**match, node.tag: event}
        self.parent.child_true(self, match, True)

    def stop(self) -> None:
        if self.active:
            self.active = False
            self.run.remove_atom(self)


class TimedState(State):
    """A state owning one timer (timer:interval, within)."""

    __slots__ = ("timer",)

    def set_timer(self, seconds: float, callback: Callable[[float], None]) -> None:
        engine = self.run.engine
        self.timer = engine.schedule(engine.now + seconds, callback)
        self.run.timers[self] = None

    def clear_timer(self) -> None:
        self.timer.cancel()
        self.run.timers.pop(self, None)


class IntervalState(TimedState):
    __slots__ = ("match", "seconds")

    def __init__(self, node: "IntervalNode", parent: Parent, run: PatternRun) -> None:
        super().__init__(parent, run)
        self.seconds = node.seconds

    def start(self, match: Match) -> None:
        self.match = match
        self.set_timer(self.seconds, self.fire)

    def fire(self, _: float) -> None:
        if self.active:
            self.active = False
            self.run.timers.pop(self, None)
            self.parent.child_true(self, self.match, True)

    def stop(self) -> None:
        if self.active:
            self.active = False
            self.clear_timer()


class FollowedByState(State, Parent):
    __slots__ = ("node", "children")

    def __init__(self, node: "FollowedByNode", parent: Parent, run: PatternRun) -> None:
        super().__init__(parent, run)
        self.node = node
        self.children: dict[State, int] = {}

    def start(self, match: Match) -> None:
        self._start_step(0, match)

    def _start_step(self, step: int, match: Match) -> None:
        child = self.node.steps[step].create(self, self.run)
        self.children[child] = step
        child.start(match)

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        if not self.active:
            return
        step = self.children[child] if not quitted else self.children.pop(child)
        if step + 1 < len(self.node.steps):
            self._start_step(step + 1, match)
            return
        finished = only_negations(self.children)
        if finished:
            self.stop()
        self.parent.child_true(self, match, finished)

    def child_false(self, child: State) -> None:
        self.children.pop(child, None)
        if self.active and not self.children:
            self.active = False
            self.parent.child_false(self)

    def stop(self) -> None:
        self.active = False
        for child in list(self.children):
            child.stop()
        self.children.clear()


def only_negations(children: dict) -> bool:
    """True when no child but `not`s is left: a `not` that is true never quits by itself,
    so a parent whose other children are done is done, and stops the `not`s (as in Esper)."""
    return all(isinstance(child, NotState) for child in children)


class EveryState(State, Parent):
    __slots__ = ("node", "match", "children", "starting")

    def __init__(self, node: "EveryNode", parent: Parent, run: PatternRun) -> None:
        super().__init__(parent, run)
        self.node = node
        self.children: dict[State, None] = {}
        self.starting: Optional[State] = None

    def start(self, match: Match) -> None:
        self.match = match
        self._spawn()

    def _spawn(self) -> None:
        child = self.node.body.create(self, self.run)
        self.children[child] = None
        self.starting = child
        child.start(self.match)
        self.starting = None

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        if not self.active:
            return
        if quitted:
            self.children.pop(child, None)
        self.parent.child_true(self, match, False)
        # A result during the child's own start would restart it forever (`every not A`).
        if self.active and child is not self.starting:
            self._spawn()

    def child_false(self, child: State) -> None:
        self.children.pop(child, None)
        if not self.active:
            return
        if child is self.starting:  # false at once: restarting would loop
            if not self.children:
                self.active = False
                self.parent.child_false(self)
            return
        self._spawn()

    def stop(self) -> None:
        self.active = False
        for child in list(self.children):
            child.stop()
        self.children.clear()


class OrState(State, Parent):
    __slots__ = ("node", "children")

    def __init__(self, node: "OrNode", parent: Parent, run: PatternRun) -> None:
        super().__init__(parent, run)
        self.node = node
        self.children: dict[State, None] = {}

    def start(self, match: Match) -> None:
        created = [item.create(self, self.run) for item in self.node.items]
        for child in created:
            self.children[child] = None
        for child in created:
            if self.active and child in self.children:
                child.start(match)

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        if not self.active:
            return
        if quitted:  # one side is done: the `or` is done
            self.children.pop(child, None)
            self.stop()
        self.parent.child_true(self, match, quitted)

    def child_false(self, child: State) -> None:
        self.children.pop(child, None)
        if self.active and not self.children:
            self.active = False
            self.parent.child_false(self)

    def stop(self) -> None:
        self.active = False
        for child in list(self.children):
            child.stop()
        self.children.clear()


class AndState(State, Parent):
    __slots__ = ("node", "children", "results")

    def __init__(self, node: "AndNode", parent: Parent, run: PatternRun) -> None:
        super().__init__(parent, run)
        self.node = node
        self.children: dict[State, int] = {}
        self.results: list[list[Match]] = [[] for _ in node.items]

    def start(self, match: Match) -> None:
        created = [item.create(self, self.run) for item in self.node.items]
        for position, child in enumerate(created):
            self.children[child] = position
        for child in created:
            if self.active and child in self.children:
                child.start(match)

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        if not self.active:
            return
        position = self.children.pop(child) if quitted else self.children[child]
        others = [r for i, r in enumerate(self.results) if i != position]
        self.results[position].append(match)
        if not all(others):
            return
        combined = []
        for combination in product(*others):
            merged = dict(match)
            for other in combination:
                for tag, value in other.items():
                    merged.setdefault(tag, value)
            combined.append(merged)
        finished = only_negations(self.children)
        if finished:
            self.stop()
        for i, merged in enumerate(combined):
            self.parent.child_true(self, merged, finished and i == len(combined) - 1)

    def child_false(self, child: State) -> None:
        if not self.active:
            return
        self.children.pop(child, None)
        self.stop()
        self.parent.child_false(self)

    def stop(self) -> None:
        self.active = False
        for child in list(self.children):
            child.stop()
        self.children.clear()
        self.results = []


class NotState(State, Parent):
    __slots__ = ("node", "child")

    def __init__(self, node: "NotNode", parent: Parent, run: PatternRun) -> None:
        super().__init__(parent, run)
        self.node = node
        self.child: Optional[State] = None

    def start(self, match: Match) -> None:
        self.child = self.node.body.create(self, self.run)
        self.child.start(match)
        if self.active:
            self.parent.child_true(self, match, False)  # true from the start

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        if self.active:
            child.stop()
            self.child = None
            self.active = False
            self.parent.child_false(self)

    def child_false(self, child: State) -> None:
        self.child = None  # the negated pattern can never happen: stay true

    def stop(self) -> None:
        self.active = False
        if self.child is not None:
            self.child.stop()
            self.child = None


class RepeatState(State, Parent):
    """`[n] p`: p, then p again started after that, n times; tags become lists."""

    __slots__ = ("node", "begin", "children")

    def __init__(self, node: "RepeatNode", parent: Parent, run: PatternRun) -> None:
        super().__init__(parent, run)
        self.node = node
        self.children: dict[State, list[Match]] = {}

    def start(self, match: Match) -> None:
        self.begin = match
        self._start_round([])

    def _start_round(self, rounds: list[Match]) -> None:
        child = self.node.body.create(self, self.run)
        self.children[child] = rounds
        child.start(self.begin)

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        if not self.active:
            return
        rounds = (self.children.pop(child) if quitted else self.children[child]) + [match]
        if len(rounds) < self.node.count:
            self._start_round(rounds)
            return
        finished = not self.children
        if finished:
            self.active = False
        self.parent.child_true(self, collect(self.begin, rounds, self.node.tags), finished)

    def child_false(self, child: State) -> None:
        self.children.pop(child, None)
        if self.active and not self.children:
            self.active = False
            self.parent.child_false(self)

    def stop(self) -> None:
        self.active = False
        for child in list(self.children):
            child.stop()
        self.children.clear()


class UntilState(State, Parent):
    """`p until q` (and `[n] p until q`): p repeatedly, until q; p's tags become lists."""

    __slots__ = ("node", "begin", "body", "stop_child", "rounds")

    def __init__(self, node: "UntilNode", parent: Parent, run: PatternRun) -> None:
        super().__init__(parent, run)
        self.node = node
        self.body: Optional[State] = None
        self.stop_child: Optional[State] = None
        self.rounds: list[Match] = []

    def start(self, match: Match) -> None:
        self.begin = match
        self.stop_child = self.node.stop.create(self, self.run)
        self.stop_child.start(match)  # first, so the until event wins over the repeated one
        if self.active:
            self._start_body()

    def _start_body(self) -> None:
        self.body = self.node.body.create(self, self.run)
        self.body.start(self.begin)

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        if not self.active:
            return
        if child is self.stop_child:
            if self.node.count is not None:  # q before n p's: never completes
                self._finish_false()
                return
            result = collect(match, self.rounds, self.node.tags)
            self.stop()
            self.parent.child_true(self, result, True)
            return
        self.rounds.append(match)
        if self.node.count is not None and len(self.rounds) >= self.node.count:
            result = collect(self.begin, self.rounds, self.node.tags)
            self.stop()
            self.parent.child_true(self, result, True)
            return
        if quitted:
            self._start_body()

    def child_false(self, child: State) -> None:
        if not self.active:
            return
        if child is self.stop_child or self.node.count is not None:
            self._finish_false()
        else:
            self.body = None  # no more repetitions; still waiting for q

    def _finish_false(self) -> None:
        self.stop()
        self.parent.child_false(self)

    def stop(self) -> None:
        self.active = False
        for child in (self.body, self.stop_child):
            if child is not None:
                child.stop()
        self.body = self.stop_child = None


class WithinState(TimedState, Parent):
    __slots__ = ("node", "child")

    def __init__(self, node: "WithinNode", parent: Parent, run: PatternRun) -> None:
        super().__init__(parent, run)
        self.node = node
        self.child: Optional[State] = None

    def start(self, match: Match) -> None:
        self.set_timer(self.node.seconds, self.expire)
        self.child = self.node.body.create(self, self.run)
        self.child.start(match)

    def expire(self, _: float) -> None:
        if self.active:
            self.run.timers.pop(self, None)
            self.active = False
            if self.child is not None:
                self.child.stop()
                self.child = None
            self.parent.child_false(self)

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        if not self.active:
            return
        if quitted:
            self.active = False
            self.child = None
            self.clear_timer()
        self.parent.child_true(self, match, quitted)

    def child_false(self, child: State) -> None:
        if self.active:
            self.active = False
            self.child = None
            self.clear_timer()
            self.parent.child_false(self)

    def stop(self) -> None:
        if self.active:
            self.active = False
            self.clear_timer()
            if self.child is not None:
                self.child.stop()
                self.child = None


def collect(base: Match, rounds: list[Match], tags: tuple[str, ...]) -> Match:
    """`base` plus, for each repeated tag, the list of its events over the rounds."""
    result = dict(base)
    for tag in tags:
        result[tag] = [r[tag] for r in rounds if tag in r]
    return result


# ====================================================================== nodes


class Node:
    """A compiled pattern operator; `create` makes a fresh (unstarted) state of `state_class`."""

    state_class: type

    def create(self, parent: Parent, run: PatternRun) -> State:
        return self.state_class(self, parent, run)


class AtomNode(Node):
    state_class = AtomState

    def __init__(self, type: str, tag: Optional[str], filter: Optional[Filter],
                 under_not: bool) -> None:
        self.type = type
        self.tag = tag
        self.filter = filter
        self.under_not = under_not


class IntervalNode(Node):
    state_class = IntervalState

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class FollowedByNode(Node):
    state_class = FollowedByState

    def __init__(self, steps: list[Node]) -> None:
        self.steps = steps


class EveryNode(Node):
    state_class = EveryState

    def __init__(self, body: Node) -> None:
        self.body = body


class OrNode(Node):
    state_class = OrState

    def __init__(self, items: list[Node]) -> None:
        self.items = items


class AndNode(Node):
    state_class = AndState

    def __init__(self, items: list[Node]) -> None:
        self.items = items


class NotNode(Node):
    state_class = NotState

    def __init__(self, body: Node) -> None:
        self.body = body


class RepeatNode(Node):
    state_class = RepeatState

    def __init__(self, count: int, body: Node, tags: tuple[str, ...]) -> None:
        self.count = count
        self.body = body
        self.tags = tags


class UntilNode(Node):
    state_class = UntilState

    def __init__(self, body: Node, stop: Node, count: Optional[int],
                 tags: tuple[str, ...]) -> None:
        self.body = body
        self.stop = stop
        self.count = count
        self.tags = tags


class WithinNode(Node):
    state_class = WithinState

    def __init__(self, body: Node, seconds: float) -> None:
        self.body = body
        self.seconds = seconds
