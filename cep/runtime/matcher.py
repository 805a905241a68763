"""Patterns as state machines, with Esper's semantics.

A compiled pattern is a tree of *nodes* (one per operator, built once per
rule).  Running it creates *states*: each live sub-pattern instance is a state
object with a parent.  A state tells its parent when it turned true (with the
tags it bound, and whether it is finished: `quitted`) or permanently false.

- Atoms (`A(filter)`) register in the run's index by event type (and by the
  constant of an `attr = constant` in their filter, see `AtomIndex`); an atom
  matches once and quits.  A state started by an event E never sees E: it
  records the engine's event sequence number at birth and is skipped for it.
- `every` restarts its sub-pattern when that turns true or permanently false.
- Atoms under a `not` are dispatched first, so when one event both makes a
  `not` false and would complete the other side of its `and`, the `not` wins.
- Stopped states unregister their atoms and cancel their timers at once, so
  memory follows live state only.
- A filter that raises is reported (`EngineServices.report_fault`) and counts as false:
  the states around it go on as if the event had not matched.
- `X FOR d` (cep.runtime.lasting) is made of these pieces: one atom at a time in the
  index (its start, then the test of its source's later events) and a timer.
- A run saves itself as data (`PatternRun.snapshot`) and is rebuilt from it instead of
  being started (`PatternRun.restore`): each state is made by its node (the data names
  operands by position), with its atoms back in the index and its timers in the queue
  in their old order.
- `at_rest()` tells whether a run is exactly as it started (only its first step
  waiting, no timer, not finished, nothing matched while starting): a partition may
  then release it and start a new one later, with the same effect.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from itertools import pairwise, product
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from cep.runtime.events import Attrs, Event, Match
from cep.runtime.expressions import Constant, ContextView, EqualityKey, Fn
from cep.runtime.snapshot import Json, need

if TYPE_CHECKING:
    from cep.runtime.clock import Timer, TimerQueue
    from cep.runtime.snapshot import StateReader, StateWriter


# ====================================================================== the run


class AtomIndex:
    """The live atoms of one event type in one run, found by their filters' equality keys.

    An atom whose filter has an `attr = constant` conjunct (its node's `key`) is
    filed under that attribute and constant, so an event is offered only to the
    atoms whose constant its attribute equals, plus the atoms without a key: with
    `every a=Ev(etype = 'A') -> b=Ev(etype = 'B')`, an `X` event costs one lookup
    instead of one filter call per waiting atom.  Candidates come out in the order
    the atoms registered, as if every atom had been asked in turn.
    """

    __slots__ = ("keyed", "plain", "size")

    def __init__(self) -> None:
        self.plain: dict[AtomState, None] = {}
        # attr -> constant -> atoms; looked up by an event's value, which may be anything
        self.keyed: dict[str, dict[Hashable, dict[AtomState, None]]] = {}
        self.size = 0

    # (atoms are filed and taken out by PatternRun.add_atom and remove_atom, which have
    # the index at hand: a call less for every atom)

    def candidates(self, attrs: Attrs) -> list[AtomState]:
        """The atoms whose key the event's attributes satisfy, in registration order."""
        if not self.plain and len(self.keyed) == 1:  # the usual case: one keyed attribute
            for attr, by_constant in self.keyed.items():
                try:
                    states = by_constant.get(attrs.get(attr))
                except TypeError:  # an unhashable value equals no constant
                    return []
                return list(states) if states else []
        found = list(self.plain)
        groups = 1 if found else 0
        for attr, by_constant in self.keyed.items():
            try:
                states = by_constant.get(attrs.get(attr))
            except TypeError:  # an unhashable value equals no constant
                continue
            if states:
                found.extend(states)
                groups += 1
        if groups > 1:
            found.sort(key=_registration_order)
        return found


_ABSENT = object()


class Interest:
    """Which events some atom of a pattern could ever match: its atoms' event types,
    with their `attr = constant` keys (see `AtomIndex`).  Fixed when the rule is built.

    A rule runs one pattern per context instance (per device, say); an event that no
    atom of the pattern can match is dropped before it is handed to any instance's
    run.  With `every a=Ev(etype = 'A') -> b=Ev(etype = 'B')`, the `X` events (most
    of them) stop here.  A stream rule whose filter requires `attr = constant` has one
    too; the engine merges the interests of a type's rules into its early drop
    (cep.runtime.screen).
    """

    __slots__ = ("keyed", "plain")

    def __init__(self, atoms: Iterable[tuple[str, EqualityKey | None]]) -> None:
        """The interest of atoms given as (type, key or None)."""
        self.plain: set[str] = set()  # types with an atom that has no key
        self.keyed: dict[str, dict[str, set[Constant]]] = {}  # type -> attr -> constants
        for type_name, key in atoms:
            if key is None:
                self.plain.add(type_name)
            else:
                attr, constant = key
                self.keyed.setdefault(type_name, {}).setdefault(attr, set()).add(constant)
        for type_name in self.plain:  # a plain atom of a type wants all its events
            self.keyed.pop(type_name, None)

    @classmethod
    def of_pattern(cls, root: Node) -> Interest:
        return cls((atom.type, atom.key) for atom in atom_nodes(root))

    def of_type(self, type_name: str) -> dict[str, set[Constant]] | None:
        """The values of an event of `type_name` that some atom can match, by attribute
        (empty: none can), or None when any event of the type may match."""
        if type_name in self.plain:
            return None
        return self.keyed.get(type_name, {})

    def wants(self, event: Event) -> bool:
        type_name = event.type
        if type_name in self.plain:
            return True
        by_attr = self.keyed.get(type_name)
        if by_attr is None:
            return False
        attrs = event.attrs
        for attr, constants in by_attr.items():
            try:
                if attrs.get(attr) in constants:
                    return True
            except TypeError:  # an unhashable value equals no constant
                continue
        return False


def _registration_order(state: AtomState) -> int:
    return state.order


# Timers due at one instant fire by priority, lowest first: output periods' ends (-3),
# window expiries (-2), context ends (-1: deadlines, terminating patterns), context starts
# (0: recurring starts, initiating patterns), then the rules' patterns (1).
CONTEXT_END_TIMER = -1
CONTEXT_START_TIMER = 0
PATTERN_TIMER = 1


class PatternRun:
    """One running instance of a rule's pattern (per context instance).

    Holds the index of live atoms by event type (`AtomIndex`), and hands matches of
    the root to `on_match(match)`.
    """

    __slots__ = (
        "born",
        "ctx",
        "eager",
        "engine",
        "finished",
        "index",
        "on_match",
        "owner",
        "priority",
        "priority_index",
        "registered",
        "root",
        "timers",
    )

    def __init__(self, engine: EngineServices, ctx: ContextView | None,
                 on_match: Callable[[Match], None], owner: str = "a pattern",
                 priority: int = PATTERN_TIMER) -> None:
        self.engine = engine
        self.ctx = ctx
        # the priority of its timers among those due at one instant: a context's
        # terminating pattern closes its instance before the instance's rules' timers
        self.priority = priority
        self.on_match = on_match
        self.owner = owner  # who runs it, for reports: "rule 'name'", "context 'C'"
        self.eager = False  # it matched while starting (`not A`): a restart would again
        self.index: dict[str, AtomIndex] = {}
        self.priority_index: dict[str, AtomIndex] = {}
        self.timers: dict[TimedState, None] = {}
        self.root: RootState | None = None
        self.finished = False
        self.born: int | None = None  # while starting: the sequence number atoms take
        self.registered = 0  # atoms registered so far: each atom's `order`

    def start(self, node: Node) -> None:
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
        """Offer an event to the live atoms it can match (under-`not` atoms first)."""
        seq = self.engine.event_seq
        type_name = event.type
        if self.priority_index:
            atoms = self.priority_index.get(type_name)
            if atoms is not None:
                for state in atoms.candidates(event.attrs):
                    if state.active and state.born < seq:
                        state.on_event(event)
        atoms = self.index.get(type_name)
        if atoms is not None:
            for state in atoms.candidates(event.attrs):
                if state.active and state.born < seq:
                    state.on_event(event)

    def stop(self) -> None:
        """Drop all state silently (the context instance closed)."""
        if self.root is not None and self.root.child is not None:
            self.root.child.stop()
        self.finished = True

    def live_states(self) -> int:
        """Live atoms and timers: the partial matches waiting for something."""
        return sum(atoms.size for atoms in self.index.values()) + \
            sum(atoms.size for atoms in self.priority_index.values()) + len(self.timers)

    def at_rest(self) -> bool:
        """Whether the run is as it started: a new run would behave exactly alike."""
        root = self.root
        if self.finished or self.eager or self.timers or root is None or root.child is None:
            return False
        return root.child.at_rest()

    def filter_failed(self, exc: Exception) -> None:
        self.engine.report_fault(self.owner, "a pattern filter", exc)

    # -------------------------------------------------------------- snapshots
    def snapshot(self, w: StateWriter) -> Json:
        """`{"f": finished, "e": eager, "n": atoms registered, "c": root state}`; a state is
        an object of what it holds: "m" match, "t" timer, "o"/"b" an atom's order and first
        event number, "c" children (`[[step or operand, state], ...]` when the node has
        several operands), "off": true once no longer active."""
        data: dict[str, Json] = {"f": self.finished, "e": self.eager, "n": self.registered}
        if self.born is not None:  # (only while starting: never between two events)
            data["b"] = self.born
        if self.root is not None:
            child = self.root.child
            data["c"] = None if child is None else save_state(child, w)
        return data

    def restore(self, node: Node, data: Json, r: StateReader) -> None:
        """Rebuild a run saved by `snapshot` (of a run of `node`), instead of `start`:
        its states, the index of its atoms in their order, its timers in their places."""
        need(type(data) is dict, "a pattern run is not an object")
        self.finished = _flag(data, "f")
        self.eager = _flag(data, "e")
        self.registered = _count(data, "n")
        born = data.get("b")
        need(born is None or type(born) is int, "a pattern run's start is not an event number")
        self.born = born
        if "c" not in data:
            return
        self.root = RootState(self)
        rebuild = Rebuild(self, r)
        if data["c"] is not None:
            self.root.child = rebuild.state(node, self.root, data["c"])
        rebuild.finish()

    # -------------------------------------------------------------- atom registry
    def add_atom(self, state: AtomState) -> None:
        """File a started atom in the index of its type (see `AtomIndex`)."""
        node = state.node
        index = self.priority_index if node.under_not else self.index
        atoms = index.get(node.type)
        if atoms is None:
            atoms = index[node.type] = AtomIndex()
        self.registered += 1
        state.order = self.registered
        key = node.key
        if key is None:
            atoms.plain[state] = None
        else:
            attr, constant = key
            keyed = atoms.keyed
            by_constant = keyed.get(attr)
            if by_constant is None:
                by_constant = keyed[attr] = {}
            states = by_constant.get(constant)
            if states is None:
                states = by_constant[constant] = {}
            states[state] = None
        atoms.size += 1

    def remove_atom(self, state: AtomState) -> None:
        """Take a stopped atom out of the index, which keeps no empty entries."""
        node = state.node
        index = self.priority_index if node.under_not else self.index
        atoms = index.get(node.type)
        if atoms is None:
            return
        key = node.key
        if key is None:
            if atoms.plain.pop(state, _ABSENT) is _ABSENT:
                return
        else:
            attr, constant = key
            keyed = atoms.keyed
            by_constant = keyed.get(attr)
            if by_constant is None:
                return
            states = by_constant.get(constant)
            if states is None or states.pop(state, _ABSENT) is _ABSENT:
                return
            if not states:  # keep the index as small as the live atoms
                del by_constant[constant]
                if not by_constant:
                    del keyed[attr]
        atoms.size -= 1
        if not atoms.size:
            del index[node.type]


class EngineServices(Protocol):
    """What pattern states need from the engine: the time, timers (`schedule`, or the
    queue itself), the event sequence, and where to report a filter that fails."""

    event_seq: int
    now: float
    timers: TimerQueue

    def schedule(self, deadline: float, callback: Callable[[float], None],
                 priority: int = 1) -> Timer: ...

    def report_fault(self, source: str, what: str, exc: BaseException) -> None: ...


# ====================================================================== states


class Parent:
    """The interface a state uses to report to its parent."""

    __slots__ = ()

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        raise NotImplementedError

    def child_false(self, child: State) -> None:
        raise NotImplementedError


class State(Parent):
    """A live sub-pattern instance; every state can be a parent (the operators' states
    are; an atom's or a timer's never is told anything)."""

    __slots__ = ("active", "parent", "run")

    def __init__(self, parent: Parent, run: PatternRun) -> None:
        # (the states' own __init__ set these three themselves, without calling this:
        # super() costs more than the rest of making a state, and one is made per step)
        self.parent = parent
        self.run = run
        self.active = True

    def start(self, match: Match) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.active = False

    def at_rest(self) -> bool:
        """Whether the state is as it was started (see `PatternRun.at_rest`)."""
        return False

    def save(self, w: StateWriter) -> dict[str, Json]:
        """The state's own fields (its children's included; see `PatternRun.snapshot`)."""
        raise NotImplementedError

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        """Fill the fresh state (made by its node, not started) from `save`'s data."""
        raise NotImplementedError


class RootState(Parent):
    __slots__ = ("child", "run")

    def __init__(self, run: PatternRun) -> None:
        self.run = run
        self.child: State | None = None

    def child_true(self, child: State, match: Match, quitted: bool) -> None:
        run = self.run
        if quitted:
            run.finished = True
        if run.born is not None:  # still starting
            run.eager = True
        run.on_match(match)

    def child_false(self, child: State) -> None:
        self.run.finished = True


class AtomState(State):
    __slots__ = ("born", "match", "node", "order")

    born: int    # the event sequence number it started at: it never sees that event
    match: Match
    order: int   # registration order in its run (see `AtomIndex.candidates`)

    def __init__(self, node: AtomNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out: one call less per atom)
        self.run = run
        self.active = True
        self.node = node

    def start(self, match: Match) -> None:
        self.match = match
        run = self.run
        self.born = run.engine.event_seq if run.born is None else run.born
        run.add_atom(self)

    def on_event(self, event: Event) -> None:
        node = self.node
        if node.filter is not None:
            try:
                passed = node.filter(event.attrs, self.match, self.run.ctx)
            except Exception as exc:  # as if it did not match; reported
                self.run.filter_failed(exc)
                return
            if not passed:
                return
        self.active = False  # (stop, written out)
        self.run.remove_atom(self)
        match = self.match
        if node.tag is not None:
            match = {**match, node.tag: event}
        self.parent.child_true(self, match, True)

    def stop(self) -> None:
        if self.active:
            self.active = False
            self.run.remove_atom(self)

    def at_rest(self) -> bool:
        return self.active

    def save(self, w: StateWriter) -> dict[str, Json]:
        return {"m": w.match(self.match), "b": self.born, "o": self.order}

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        self.match = rebuild.match(data, "m")
        born = _field(data, "b")  # (-1: started before the first event)
        need(type(born) is int and born >= -1, "an atom's start is not an event number")
        self.born = born
        self.order = _count(data, "o")
        if self.active:  # (live, it is in the index: back in it once all are read)
            rebuild.atoms.append(self)


class TimedState(State):
    """A state owning one timer (timer:interval, within)."""

    __slots__ = ("timer",)

    timer: Timer

    def set_timer(self, seconds: float, callback: Callable[[float], None]) -> None:
        run = self.run
        engine = run.engine
        self.timer = engine.timers.schedule(engine.now + seconds, callback, run.priority)
        run.timers[self] = None

    def clear_timer(self) -> None:
        self.timer.cancel()
        self.run.timers.pop(self, None)

    def timer_fired(self) -> None:
        """The timer went off: the state is done with it, and no longer active."""
        self.active = False
        self.run.timers.pop(self, None)

    def stop(self) -> None:
        if self.active:
            self.active = False
            self.clear_timer()

    def saved_timer(self, w: StateWriter) -> Json:
        """The state's timer, if it is waiting (None: not set yet, fired or cleared)."""
        return w.timer(self.timer) if self in self.run.timers else None


class IntervalState(TimedState):
    __slots__ = ("match", "seconds")

    match: Match

    def __init__(self, node: IntervalNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out)
        self.run = run
        self.active = True
        self.seconds = node.seconds

    def start(self, match: Match) -> None:
        self.match = match
        self.set_timer(self.seconds, self.fire)

    def fire(self, _: float) -> None:
        if self.active:
            self.timer_fired()
            self.parent.child_true(self, self.match, True)

    def save(self, w: StateWriter) -> dict[str, Json]:
        return {"m": w.match(self.match), "t": self.saved_timer(w)}

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        self.match = rebuild.match(data, "m")
        rebuild.timer(self, data, self.fire)


V = TypeVar("V")


class BranchState(State, Generic[V]):
    """A state with any number of live children; `children` maps each to what the state
    keeps about it (a step, a position, the rounds so far)."""

    __slots__ = ("children",)

    children: dict[State, V]  # set by each subclass's __init__ (one call less per state)

    def child_false(self, child: State) -> None:
        """Permanently false once no child is left (`and` and `every` decide otherwise)."""
        self.children.pop(child, None)
        if self.active and not self.children:
            self.active = False
            self.parent.child_false(self)

    def stop(self) -> None:
        self.active = False
        for child in list(self.children):
            child.stop()
        self.children.clear()


class FollowedByState(BranchState[int]):
    """`p -> q -> ...`: children map to their step."""

    __slots__ = ("node",)

    def __init__(self, node: FollowedByNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out)
        self.run = run
        self.active = True
        self.node = node
        self.children = {}

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
        finished = True  # (only_negations, written out: this runs on every match)
        for other in self.children:
            if type(other) is not NotState:
                finished = False
                break
        if finished:
            self.stop()
        self.parent.child_true(self, match, finished)

    def at_rest(self) -> bool:
        if not self.active or len(self.children) != 1:
            return False
        for child, step in self.children.items():
            return step == 0 and child.at_rest()
        return False

    def save(self, w: StateWriter) -> dict[str, Json]:
        return {"c": save_branches(self.children, w)}

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        rebuild.branches(self, self.node.steps, _field(data, "c"))


def only_negations(children: Iterable[State]) -> bool:
    """True when no child but `not`s is left: a `not` that is true never quits by itself,
    so a parent whose other children are done is done, and stops the `not`s (as in Esper)."""
    for child in children:  # a plain loop: this runs on every match
        if type(child) is not NotState:
            return False
    return True


class EveryState(BranchState[None]):
    __slots__ = ("match", "node", "starting")

    match: Match

    def __init__(self, node: EveryNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out)
        self.run = run
        self.active = True
        self.node = node
        self.children = {}
        self.starting: State | None = None

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

    def at_rest(self) -> bool:
        if not self.active or len(self.children) != 1:
            return False
        for child in self.children:
            return child.at_rest()
        return False

    def save(self, w: StateWriter) -> dict[str, Json]:
        data = {"m": w.match(self.match), "c": [save_state(child, w) for child in self.children]}
        if self.starting is not None:  # (only while starting: never between two events)
            data["s"] = list(self.children).index(self.starting)
        return data

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        self.match = rebuild.match(data, "m")
        children = _field(data, "c")
        need(type(children) is list, "an every's children are not a list")
        created = [rebuild.state(self.node.body, self, child) for child in children]
        for child in created:
            self.children[child] = None
        starting = data.get("s")
        if starting is not None:
            need(type(starting) is int and 0 <= starting < len(created),
                 "an every's starting child is not one of its children")
            self.starting = created[starting]


class OrState(BranchState[int]):
    """`p or q ...`: children map to their position."""

    __slots__ = ("node",)

    def __init__(self, node: OrNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out)
        self.run = run
        self.active = True
        self.node = node
        self.children = {}

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
        if quitted:  # one side is done: the `or` is done
            self.children.pop(child, None)
            self.stop()
        self.parent.child_true(self, match, quitted)

    def at_rest(self) -> bool:
        return self.active and len(self.children) == len(self.node.items) and \
            all(child.at_rest() for child in self.children)

    def save(self, w: StateWriter) -> dict[str, Json]:
        return {"c": save_branches(self.children, w)}

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        rebuild.branches(self, self.node.items, _field(data, "c"))


class AndState(BranchState[int]):
    """`p and q ...`: children map to their position; `results` keeps each one's matches."""

    __slots__ = ("node", "rest", "results")

    def __init__(self, node: AndNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out)
        self.run = run
        self.active = True
        self.node = node
        self.children = {}
        self.results: list[list[Match]] = [[] for _ in node.items]
        self.rest = -1  # results held once started (from `not`s, true from the start)

    def start(self, match: Match) -> None:
        created = [item.create(self, self.run) for item in self.node.items]
        for position, child in enumerate(created):
            self.children[child] = position
        for child in created:
            if self.active and child in self.children:
                child.start(match)
        if self.active:
            self.rest = sum(len(r) for r in self.results)

    def at_rest(self) -> bool:
        return self.active and len(self.children) == len(self.node.items) and \
            sum(len(r) for r in self.results) == self.rest and \
            all(child.at_rest() for child in self.children)

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
        super().stop()
        self.results = []

    def save(self, w: StateWriter) -> dict[str, Json]:
        return {"c": save_branches(self.children, w),
                "r": [[w.match(match) for match in results] for results in self.results],
                "n": self.rest}

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        items = self.node.items
        rebuild.branches(self, items, _field(data, "c"))
        results = _field(data, "r")
        # (a stopped `and` has dropped them all)
        need(type(results) is list and len(results) in (0, len(items)),
             "an and's results are not one list per operand")
        self.results = [rebuild.matches(item) for item in results]
        rest = _field(data, "n")
        need(type(rest) is int and rest >= -1, "an and's held results are not a count")
        self.rest = rest


class NotState(State):
    __slots__ = ("child", "node")

    def __init__(self, node: NotNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out)
        self.run = run
        self.active = True
        self.node = node
        self.child: State | None = None

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

    def at_rest(self) -> bool:
        return self.active and self.child is not None and self.child.at_rest()

    def save(self, w: StateWriter) -> dict[str, Json]:
        return {"c": None if self.child is None else save_state(self.child, w)}

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        self.child = rebuild.maybe_state(self.node.body, self, data, "c")


class RepeatState(BranchState[list[Match]]):
    """`[n] p`: p, then p again started after that, n times; tags become lists.
    Children map to the matches of the rounds before theirs."""

    __slots__ = ("begin", "node")

    begin: Match

    def __init__(self, node: RepeatNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out)
        self.run = run
        self.active = True
        self.node = node
        self.children = {}

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

    def at_rest(self) -> bool:
        if not self.active or len(self.children) != 1:
            return False
        for child, rounds in self.children.items():
            return not rounds and child.at_rest()
        return False

    def save(self, w: StateWriter) -> dict[str, Json]:
        return {"g": w.match(self.begin),
                "c": [[[w.match(match) for match in rounds], save_state(child, w)]
                      for child, rounds in self.children.items()]}

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        self.begin = rebuild.match(data, "g")
        children = _field(data, "c")
        need(type(children) is list, "a repetition's children are not a list")
        for item in children:
            need(type(item) is list and len(item) == 2,
                 "a repetition's child is not [rounds, state]")
            rounds = rebuild.matches(item[0])
            need(len(rounds) < self.node.count, "a repetition has too many rounds")
            self.children[rebuild.state(self.node.body, self, item[1])] = rounds


class UntilState(State):
    """`p until q` (and `[n] p until q`): p repeatedly, until q; p's tags become lists."""

    __slots__ = ("begin", "body", "node", "rounds", "stop_child")

    begin: Match

    def __init__(self, node: UntilNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out)
        self.run = run
        self.active = True
        self.node = node
        self.body: State | None = None
        self.stop_child: State | None = None
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

    def at_rest(self) -> bool:
        return self.active and not self.rounds and self.body is not None and \
            self.stop_child is not None and self.body.at_rest() and self.stop_child.at_rest()

    def stop(self) -> None:
        self.active = False
        for child in (self.body, self.stop_child):
            if child is not None:
                child.stop()
        self.body = self.stop_child = None

    def save(self, w: StateWriter) -> dict[str, Json]:
        return {"g": w.match(self.begin), "r": [w.match(match) for match in self.rounds],
                "b": None if self.body is None else save_state(self.body, w),
                "s": None if self.stop_child is None else save_state(self.stop_child, w)}

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        self.begin = rebuild.match(data, "g")
        self.rounds = rebuild.matches(_field(data, "r"))
        self.stop_child = rebuild.maybe_state(self.node.stop, self, data, "s")
        self.body = rebuild.maybe_state(self.node.body, self, data, "b")


class WithinState(TimedState):
    __slots__ = ("child", "node")

    def __init__(self, node: WithinNode, parent: Parent, run: PatternRun) -> None:
        self.parent = parent  # (State.__init__ written out)
        self.run = run
        self.active = True
        self.node = node
        self.child: State | None = None

    def start(self, match: Match) -> None:
        self.set_timer(self.node.seconds, self.expire)
        self.child = self.node.body.create(self, self.run)
        self.child.start(match)

    def expire(self, _: float) -> None:
        if self.active:
            self.timer_fired()
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
            self.timer.cancel()  # (clear_timer, written out)
            self.run.timers.pop(self, None)
        self.parent.child_true(self, match, quitted)

    def child_false(self, child: State) -> None:
        if self.active:
            self.active = False
            self.child = None
            self.clear_timer()
            self.parent.child_false(self)

    def stop(self) -> None:
        if self.active:
            super().stop()
            if self.child is not None:
                self.child.stop()
                self.child = None

    def save(self, w: StateWriter) -> dict[str, Json]:
        return {"t": self.saved_timer(w),
                "c": None if self.child is None else save_state(self.child, w)}

    def load(self, data: dict[str, Json], rebuild: Rebuild) -> None:
        rebuild.timer(self, data, self.expire)
        self.child = rebuild.maybe_state(self.node.body, self, data, "c")


def collect(base: Match, rounds: list[Match], tags: tuple[str, ...]) -> Match:
    """`base` plus, for each repeated tag, the list of its events over the rounds."""
    result = dict(base)
    for tag in tags:
        result[tag] = [r[tag] for r in rounds if tag in r]
    return result


# ====================================================================== snapshots


def save_state(state: State, w: StateWriter) -> dict[str, Json]:
    """A state's data (see `PatternRun.snapshot`)."""
    data = state.save(w)
    if not state.active:
        data["off"] = True
    return data


def save_branches(children: dict[State, int], w: StateWriter) -> Json:
    """Children that map to their step or position: `[[position, state], ...]`."""
    return [[position, save_state(child, w)] for child, position in children.items()]


class Rebuild:
    """Restoring one run (`PatternRun.restore`): makes each state with its node and fills
    it; collects the live atoms and the timed states, put back in the run's index and
    timers once all are read, in their saved order."""

    __slots__ = ("atoms", "r", "run", "timed")

    def __init__(self, run: PatternRun, r: StateReader) -> None:
        self.run = run
        self.r = r
        self.atoms: list[AtomState] = []
        self.timed: list[TimedState] = []

    def state(self, node: Node, parent: Parent, data: Json) -> State:
        """The state of `node` under `parent`, as saved."""
        return self.fill(node.create(parent, self.run), data)

    def maybe_state(self, node: Node, parent: Parent, data: dict[str, Json],
                    name: str) -> State | None:
        """The state in the field `name` (None when there is none)."""
        child = _field(data, name)
        return None if child is None else self.state(node, parent, child)

    def fill(self, state: S, data: Json) -> S:
        """`state` (fresh, not started) filled from its data."""
        need(type(data) is dict, "a pattern state is not an object")
        off = data.get("off", False)
        need(type(off) is bool, "a pattern state's 'off' is not true or false")
        if off:
            state.active = False
        state.load(data, self)
        return state

    def branches(self, parent: BranchState[int], nodes: Sequence[Node], data: Json) -> None:
        """The children of `parent` (`save_branches`), each the state of its node in `nodes`."""
        need(type(data) is list, "a pattern state's children are not a list")
        for item in data:
            need(type(item) is list and len(item) == 2 and type(item[0]) is int
                 and 0 <= item[0] < len(nodes), "a pattern state's child is not [position, state]")
            position = item[0]
            parent.children[self.state(nodes[position], parent, item[1])] = position

    def match(self, data: dict[str, Json], name: str) -> Match:
        found = _field(data, name)
        need(type(found) is dict, f"a pattern state's '{name}' is not a match")
        return self.r.match(found)

    def matches(self, data: Json) -> list[Match]:
        need(type(data) is list and all(type(item) is dict for item in data),
             "a list of matches is not a list of objects")
        return [self.r.match(item) for item in data]

    def timer(self, state: TimedState, data: dict[str, Json],
              callback: Callable[[float], None]) -> None:
        """The state's timer in the field "t", in its saved place (None: none waiting)."""
        timer = self.r.timer(_field(data, "t"), callback)
        if timer is not None:
            state.timer = timer
            self.timed.append(state)

    def finish(self) -> None:
        """The live atoms back in the index, by registration order (the order `candidates`
        gives), and the timed states back in the run's timers (set order, as their seq)."""
        run = self.run
        atoms = sorted(self.atoms, key=_registration_order)
        for before, after in pairwise(atoms):
            need(before.order < after.order, f"two atoms have the order {after.order}")
        need(not atoms or atoms[-1].order <= run.registered,
             "an atom's order is past the atoms registered")
        registered = run.registered
        for atom in atoms:  # filed as a started atom is, keeping their saved numbers
            order = atom.order
            run.add_atom(atom)
            atom.order = order
        run.registered = registered
        for state in sorted(self.timed, key=lambda state: state.timer.seq):
            run.timers[state] = None


S = TypeVar("S", bound=State)


def _field(data: dict[str, Json], name: str) -> Json:
    need(name in data, f"a pattern state has no '{name}'")
    return data[name]


def _flag(data: dict[str, Json], name: str) -> bool:
    value = _field(data, name)
    need(type(value) is bool, f"a pattern run's '{name}' is not true or false")
    return bool(value)


def _count(data: dict[str, Json], name: str) -> int:
    value = _field(data, name)
    need(type(value) is int and value >= 0, f"a pattern's '{name}' is not a count")
    return int(value)


# ====================================================================== nodes


class Node:
    """A compiled pattern operator; `create` makes a fresh (unstarted) state of it."""

    def create(self, parent: Parent, run: PatternRun) -> State:
        raise NotImplementedError

    def children(self) -> tuple[Node, ...]:
        """The operands (for walking the compiled tree)."""
        return ()


def atom_nodes(node: Node) -> list[AtomNode]:
    """Every atom of a compiled pattern, in tree order."""
    if isinstance(node, AtomNode):
        return [node]
    return [atom for child in node.children() for atom in atom_nodes(child)]


class AtomNode(Node):
    """`tag=Type(filter)`.  `key` is `(attr, constant)` when the filter requires
    `attr = constant` (its atoms are indexed by it, see `AtomIndex`); `filter` is
    then the rest of the filter (None when nothing is left)."""

    def __init__(self, type: str, tag: str | None, filter: Fn | None,
                 under_not: bool, key: EqualityKey | None = None) -> None:
        self.type = type
        self.tag = tag
        self.filter = filter
        self.under_not = under_not
        self.key = key

    def create(self, parent: Parent, run: PatternRun) -> AtomState:
        return AtomState(self, parent, run)


class IntervalNode(Node):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def create(self, parent: Parent, run: PatternRun) -> IntervalState:
        return IntervalState(self, parent, run)


class FollowedByNode(Node):
    def __init__(self, steps: list[Node]) -> None:
        self.steps = steps

    def create(self, parent: Parent, run: PatternRun) -> FollowedByState:
        return FollowedByState(self, parent, run)

    def children(self) -> tuple[Node, ...]:
        return tuple(self.steps)


class OrNode(Node):
    def __init__(self, items: list[Node]) -> None:
        self.items = items

    def create(self, parent: Parent, run: PatternRun) -> OrState:
        return OrState(self, parent, run)

    def children(self) -> tuple[Node, ...]:
        return tuple(self.items)


class AndNode(Node):
    def __init__(self, items: list[Node]) -> None:
        self.items = items

    def create(self, parent: Parent, run: PatternRun) -> AndState:
        return AndState(self, parent, run)

    def children(self) -> tuple[Node, ...]:
        return tuple(self.items)


class BodyNode(Node):
    """An operator over one pattern, its `body`."""

    def __init__(self, body: Node) -> None:
        self.body = body

    def children(self) -> tuple[Node, ...]:
        return (self.body,)


class EveryNode(BodyNode):
    def create(self, parent: Parent, run: PatternRun) -> EveryState:
        return EveryState(self, parent, run)


class NotNode(BodyNode):
    def create(self, parent: Parent, run: PatternRun) -> NotState:
        return NotState(self, parent, run)


class RepeatNode(BodyNode):
    def __init__(self, count: int, body: Node, tags: tuple[str, ...]) -> None:
        super().__init__(body)
        self.count = count
        self.tags = tags

    def create(self, parent: Parent, run: PatternRun) -> RepeatState:
        return RepeatState(self, parent, run)


class UntilNode(Node):
    def __init__(self, body: Node, stop: Node, count: int | None,
                 tags: tuple[str, ...]) -> None:
        self.body = body
        self.stop = stop
        self.count = count
        self.tags = tags

    def create(self, parent: Parent, run: PatternRun) -> UntilState:
        return UntilState(self, parent, run)

    def children(self) -> tuple[Node, ...]:
        return (self.body, self.stop)


class WithinNode(BodyNode):
    def __init__(self, body: Node, seconds: float) -> None:
        super().__init__(body)
        self.seconds = seconds

    def create(self, parent: Parent, run: PatternRun) -> WithinState:
        return WithinState(self, parent, run)
