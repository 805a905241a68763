"""Each rule's pattern drawn as a state machine, built from the AST.

The picture is a readable reduction of Esper's semantics, not the runtime's objects:
- an event atom or a timer is a transition (`a=Temp(value > 28)`, `after 20 min`);
- `p -> q` chains states; `p or q` gives parallel transitions between the same states;
- `p and q` forks into branches that all have to arrive at the join;
- `not p` is a dashed transition "not p" to where it leads, and p itself leads to ✗
  (the attempt is dropped);
- `every p` is a dashed loop on the state where p starts ("every: start another");
- `[n] p` repeats p n times in a chain; `p until q` loops p until q moves on;
- `p where timer:within(d)` adds "after d" to ✗ from where p starts.
A stream rule is one transition per event; ON START/END one per instance opening/closing.
"""

from __future__ import annotations

from cep.language import ast
from cep.language.catalog import RuleInfo
from cep.language.printer import format_duration, format_pattern, format_source
from cep.language.walk import PatternVisitor
from cep.tools.graph.model import Graph

UNROLL = 5   # `[n] p` with n up to this is drawn as n copies


class _Builder(PatternVisitor[None]):
    """Draws each pattern node as transitions from state `entry` to state `exit`."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.failed: str | None = None

    def state(self, label: str, kind: str = "state") -> str:
        return self.graph.add(kind, label, "s")

    def fail(self) -> str:
        if self.failed is None:
            self.failed = self.state("✗ dropped", "fail")
        return self.failed

    def build(self, p: ast.Pattern, entry: str, exit: str) -> None:
        self.visit(p, entry, exit)

    def event_atom(self, node: ast.EventAtom, entry: str, exit: str) -> None:
        self.graph.edge(entry, exit, format_pattern(node))

    def timer_interval(self, node: ast.TimerInterval, entry: str, exit: str) -> None:
        self.graph.edge(entry, exit, f"after {format_duration(node.duration)}")

    def timer_at(self, node: ast.TimerAt, entry: str, exit: str) -> None:
        self.graph.edge(entry, exit, format_pattern(node))

    def for_atom(self, node: ast.ForAtom, entry: str, exit: str) -> None:
        """The matching event, then its state lasting d (broken: dropped)."""
        waiting = self.state(f"{format_pattern(node.atom)} seen")
        self.graph.edge(entry, waiting, format_pattern(node.atom))
        self.graph.edge(waiting, exit, f"after {format_duration(node.duration)}")
        self.graph.edge(waiting, self.fail(), "its source fails the filter", "kill")

    def followed_by(self, node: ast.FollowedBy, entry: str, exit: str) -> None:
        current = entry
        for index, step in enumerate(node.steps):
            last = index == len(node.steps) - 1
            following = exit if last else self.state(_after(step, index))
            self.build(step, current, following)
            current = following

    def pattern_or(self, node: ast.PatternOr, entry: str, exit: str) -> None:
        for item in node.items:
            self.build(item, entry, exit)

    def pattern_and(self, node: ast.PatternAnd, entry: str, exit: str) -> None:
        fork, join = self.state("", "fork"), self.state("", "join")
        self.graph.edge(entry, fork)
        for item in node.items:
            self.build(item, fork, join)
        self.graph.edge(join, exit)

    def pattern_not(self, node: ast.PatternNot, entry: str, exit: str) -> None:
        self.graph.edge(entry, exit, f"not {format_pattern(node.body)}", "dashed")
        self.build(node.body, entry, self.fail())

    def every(self, node: ast.Every, entry: str, exit: str) -> None:
        self.graph.edge(entry, entry, "every: start another", "dashed")
        self.build(node.body, entry, exit)

    def repeat(self, node: ast.Repeat, entry: str, exit: str) -> None:
        self._repeat(node.body, node.count, entry, exit)

    def until(self, node: ast.Until, entry: str, exit: str) -> None:
        if node.count is None:
            self.build(node.body, entry, entry)
            self.build(node.stop, entry, exit)
        else:
            self._repeat(node.body, node.count, entry, exit)
            self.build(node.stop, entry, self.fail())

    def within(self, node: ast.Within, entry: str, exit: str) -> None:
        self.build(node.body, entry, exit)
        self.graph.edge(entry, self.fail(), f"after {format_duration(node.duration)} (within)",
                        "kill")

    def _repeat(self, body: ast.Pattern, count: int, entry: str, exit: str) -> None:
        if count > UNROLL:
            middle = self.state(f"repeat {count} times")
            self.build(body, entry, middle)
            self.graph.edge(middle, entry, f"fewer than {count}", "dashed")
            self.graph.edge(middle, exit, f"{count} times")
            return
        current = entry
        for index in range(count):
            following = exit if index == count - 1 else self.state(f"{index + 1} of {count}")
            self.build(body, current, following)
            current = following


def _after(step: ast.Pattern, index: int) -> str:
    """The label of the state reached when step `index` of a `->` chain is done."""
    if isinstance(step, ast.Every):
        step = step.body
    if isinstance(step, ast.EventAtom):
        return f"after {step.tag or format_pattern(step)}"
    if isinstance(step, ast.TimerInterval):
        return f"after {format_duration(step.duration)}"
    return f"step {index + 1} done"


def build_machine(info: RuleInfo) -> Graph:
    """The state machine of one rule."""
    rule = info.rule
    graph = Graph(f"rule {info.name}")
    builder = _Builder(graph)
    where = f" (context {info.context})" if info.context else ""
    start = builder.state(f"start{where}", "start")
    result = "publish" if info.is_on_rule else f"match → {info.output_type}"
    if rule.where is not None:
        result += " if WHERE holds"
    match = builder.state(result, "match")
    source = rule.source if isinstance(rule, ast.SelectRule) else rule.trigger
    if isinstance(source, ast.PatternSource):
        builder.build(source.pattern, start, match)
    elif isinstance(source, ast.StreamSource):
        graph.edge(start, start, "every event", "dashed")
        graph.edge(start, match, format_source(source))
    else:
        graph.edge(start, match, f"instance {'opens' if source.kind == 'start' else 'closes'}")
    return graph
