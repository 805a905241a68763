"""Pattern checks: event types exist, filters type-check, tags are bound where used.

Walks a pattern in the order events can bind tags.  A filter may use the
tags bound *before* its atom can match: those of earlier `->` steps, never
those of a sibling `and`/`or` branch, of a later step, or from inside a `not`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping

from cep.checks.declarations import check_clock, check_days, check_duration
from cep.checks.expressions import ExpressionChecker
from cep.checks.scope import Scope, TagInfo
from cep.checks.windows import IN_FILTER, tag_clash_message, unknown_type
from cep.language import ast
from cep.language.catalog import WindowInfo
from cep.language.diagnostics import EVENT_TYPE, Diagnostics
from cep.language.walk import PatternVisitor, declared_tags

Tags = dict[str, TagInfo]


class PatternChecker(PatternVisitor[Tags]):
    """Checks one pattern; `check` returns the tags a complete match can carry.

    Each node is visited with the tags bound before it can match (`available`) and,
    inside `[n]` or `until`, the repetition its tags get (`repeated`); it returns the
    tags it binds.
    """

    def __init__(self, event_attrs: dict[str, dict[str, str] | None],
                 make_scope: Callable[[], Scope], diagnostics: Diagnostics,
                 windows: Mapping[str, WindowInfo] | None = None,
                 taken: Collection[str] = ()) -> None:
        self.event_attrs = event_attrs
        self.make_scope = make_scope
        self.diagnostics = diagnostics
        self.windows: Mapping[str, WindowInfo] = windows or {}
        self.taken = taken  # window names a tag must not have
        self.all_tags: dict[str, ast.EventAtom] = {}

    def check(self, pattern: ast.Pattern) -> Tags:
        self.all_tags = declared_tags(pattern)
        return self.visit(pattern, {}, None)

    # -------------------------------------------------------------- visiting
    def timer_at(self, node: ast.TimerAt, available: Tags, repeated: TagInfo | None) -> Tags:
        """`timer:at(07:30 [ON days])`, `timer:at(SUNSET - 15 min)`: a time of day (a sun
        event needs SET LOCATION, which cep.checks.sun checks for the whole rule set)."""
        check_clock(node.at, self.diagnostics)
        check_days(node.days, self.diagnostics)
        return {}

    def for_atom(self, node: ast.ForAtom, available: Tags, repeated: TagInfo | None) -> Tags:
        """`X FOR d`: X's filter sees what an atom's would, and the FOR binds X's tag."""
        check_duration(node.duration, self.diagnostics)
        return self.visit(node.atom, available, repeated)

    def timer_interval(self, node: ast.TimerInterval, available: Tags,
                       repeated: TagInfo | None) -> Tags:
        check_duration(node.duration, self.diagnostics)
        return {}

    def followed_by(self, node: ast.FollowedBy, available: Tags,
                    repeated: TagInfo | None) -> Tags:
        produced: Tags = {}
        current = dict(available)
        for step in node.steps:
            step_tags = self.visit(step, current, repeated)
            # (a tag bound by an earlier step is reported at its atom: "already bound")
            self._merge(produced, {tag: info for tag, info in step_tags.items()
                                   if tag not in current}, step, allow_same_type=False)
            produced.update(step_tags)
            current.update(step_tags)
        return produced

    def pattern_or(self, node: ast.PatternOr, available: Tags,
                   repeated: TagInfo | None) -> Tags:
        return self._branches(node.items, available, repeated, allow_same_type=True)

    def pattern_and(self, node: ast.PatternAnd, available: Tags,
                    repeated: TagInfo | None) -> Tags:
        return self._branches(node.items, available, repeated, allow_same_type=False)

    def _branches(self, items: tuple[ast.Pattern, ...], available: Tags,
                  repeated: TagInfo | None, allow_same_type: bool) -> Tags:
        produced: Tags = {}
        for item in items:
            self._merge(produced, self.visit(item, available, repeated), item,
                        allow_same_type=allow_same_type)
        return produced

    def pattern_not(self, node: ast.PatternNot, available: Tags,
                    repeated: TagInfo | None) -> Tags:
        self.visit(node.body, available, repeated)
        return {}

    def within(self, node: ast.Within, available: Tags, repeated: TagInfo | None) -> Tags:
        check_duration(node.duration, self.diagnostics)
        return self.visit(node.body, available, repeated)

    def every(self, node: ast.Every, available: Tags, repeated: TagInfo | None) -> Tags:
        return self.visit(node.body, available, repeated)

    def repeat(self, node: ast.Repeat, available: Tags, repeated: TagInfo | None) -> Tags:
        return self.visit(node.body, available, TagInfo("", True, node.count))

    def until(self, node: ast.Until, available: Tags, repeated: TagInfo | None) -> Tags:
        body = self.visit(node.body, available, TagInfo("", True, None))
        body = {tag: TagInfo(info.type, True, None) if info.count is None else info
                for tag, info in body.items()}
        return {**body, **self.visit(node.stop, available, repeated)}

    def event_atom(self, atom: ast.EventAtom, available: Tags,
                   repeated: TagInfo | None) -> Tags:
        attrs = self.event_attrs.get(atom.type)  # None: a derived type whose schema is unknown
        if atom.type not in self.event_attrs \
                and not self.diagnostics.failed_to_declare(EVENT_TYPE, atom.type):
            self.diagnostics.error(unknown_type(atom.type, self.event_attrs, self.windows),
                                   atom.span)
        if atom.tag == "context":
            self.diagnostics.error("`context` cannot be a tag: `context.key` and `context.name` "
                                   "read the rule's context", atom.span)
        elif atom.tag is not None and atom.tag in self.taken:
            self.diagnostics.error(tag_clash_message(atom.tag), atom.span)
        if atom.tag is not None and atom.tag in available:
            self.diagnostics.error(f"tag `{atom.tag}` is already bound earlier in this pattern",
                                   atom.span)
        if atom.filter is not None and attrs is not None:
            scope = self.make_scope()
            scope.attrs = attrs
            scope.attrs_owner = f"event type {atom.type}"
            scope.tags = available  # only read while this filter is checked
            scope.unbound = _Unbound(self.all_tags, available, atom)
            scope.in_filter = True
            scope.no_prior = IN_FILTER
            ExpressionChecker(scope, self.diagnostics).condition(atom.filter, "a filter")
        if atom.tag is None:
            return {}
        if repeated is not None:
            return {atom.tag: TagInfo(atom.type, True, repeated.count)}
        return {atom.tag: TagInfo(atom.type)}

    def _merge(self, produced: Tags, new: Tags, node: ast.Pattern, allow_same_type: bool) -> None:
        """Add a sub-pattern's tags; the same tag twice is an error, except in two
        branches of `or` with the same event type (only one of them binds it)."""
        atoms: dict[str, ast.EventAtom] | None = None  # the node's tags, found once if needed
        for tag, info in new.items():
            old = produced.get(tag)
            if old is not None and not (allow_same_type and old.type == info.type):
                if atoms is None:
                    atoms = declared_tags(node)
                where = atoms.get(tag, node)
                self.diagnostics.error(f"tag `{tag}` is bound twice in this pattern", where.span)
            produced[tag] = info


class _Unbound(Mapping[str, str]):
    """The tags of the pattern that are not bound at one atom, and why: worked out only for
    the names a filter asks about (a pattern with thousands of tagged atoms would otherwise
    cost thousands of tags at each of them)."""

    def __init__(self, all_tags: Mapping[str, ast.EventAtom], available: Tags,
                 atom: ast.EventAtom) -> None:
        self.all_tags = all_tags
        self.available = available
        self.atom = atom

    def __getitem__(self, tag: str) -> str:
        if tag not in self.all_tags or tag in self.available:
            raise KeyError(tag)
        if tag == self.atom.tag:
            return "a filter cannot use its own tag; use the bare attribute name"
        return ("it is bound later in the pattern, in another branch of `and`/`or`, or "
                "inside `not`")

    def __iter__(self) -> Iterator[str]:
        return (tag for tag in self.all_tags if tag not in self.available)

    def __len__(self) -> int:
        return sum(1 for _ in self)
