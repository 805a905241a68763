"""Checks of one rule: its context, source, filters, WHERE, SELECT schema and actions.

`check_rule` fills in the rule's result schema (names and types of its
SELECT list), which INSERT INTO turns into a derived event type.
"""

from __future__ import annotations

from dataclasses import replace

from cep.checks.declarations import check_duration, check_template, template_names, text_span
from cep.checks.expressions import ExpressionChecker, comparable, describe
from cep.checks.instances import (
    Longest,
    interval_types,
    longest_instance,
    never_ends,
)
from cep.checks.patterns import PatternChecker
from cep.checks.scope import Scope, TagInfo, needs_window, suggestion
from cep.checks.timers import warn_timers
from cep.checks.windows import (
    IN_FILTER,
    alias_clash,
    check_view,
    misplaced_view,
    tag_names_taken,
    unknown_type,
)
from cep.language import ast
from cep.language.catalog import (
    ANY,
    EVENT,
    EVENTS,
    LIST,
    NULL,
    Catalog,
    EventTypeInfo,
    RuleInfo,
)
from cep.language.context_info import (
    FirstTypes,
    flatten,
    initiator_tags,
    lifecycle_attrs,
    partition_attrs,
    repeated_initiator_tags,
)
from cep.language.diagnostics import CONTEXT, EVENT_TYPE, Diagnostics
from cep.language.walk import aggregates, event_types, has_every, select_name

KNOWN_ANNOTATIONS = ("name", "description", "once")

PRIOR_IN_SNAPSHOT = ("prior() counts back from the arriving event, and an OUTPUT SNAPSHOT "
                     "result has none (it is made at a period's end): use it in WHERE, or "
                     "aggregate over the window, such as `first(x)`")
PRIOR_IN_PATTERN = ("prior() needs a stream (`FROM Type` or `ON Type`), and a pattern reads "
                    "several: compare the events through their tags, such as `a.x < b.x`")
AGGREGATE_BEFORE_WINDOW = ("an aggregate cannot be in {where}, which tests each event before "
                           "it enters the window: put this condition in HAVING")
AGGREGATE_IN_PUBLISH = ("an aggregate cannot be in PUBLISH, which sees the rule's result: "
                        "select it with a name, such as `avg(x) AS mean`, and publish `mean`")


def event_attrs(catalog: Catalog) -> dict[str, dict[str, str] | None]:
    return {name: (info.attrs if info.declaration is not None or info.producers_checked
                   else None)
            for name, info in catalog.events.items()}


class RuleSet:
    """What the check of every rule reads about the others, built once per check run (not
    once per rule: that made checking quadratic in the number of rules) and kept up to
    date as INSERT INTO rules give derived types their attributes (`derived`)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.attrs_of = event_attrs(catalog)
        self.located = frozenset(n for n, e in catalog.events.items() if e.located)
        self.first_types = FirstTypes(catalog)
        self.tag_names_taken = tag_names_taken(catalog)  # window names a tag may not have
        self._keys: dict[str, list[str]] = {}
        self._initiator_tags: dict[str, dict[str, TagInfo]] = {}
        self._longest: dict[str, list[Longest]] = {}

    def keys(self, context: str) -> list[str]:
        """The key attributes of a context's instances: its partitions' and keyed event
        intervals' (contexts do not change)."""
        keys = self._keys.get(context)
        if keys is None:
            keys = self._keys[context] = partition_attrs(context, self.catalog)
        return keys

    def key_type(self, context: str) -> str:
        """The type of `context.key`: a LIST for several key attributes; for one, its type in
        the event types a keyed event interval reads, or else in the first type that has it."""
        keys = self.keys(context)
        if len(keys) != 1:
            return LIST
        key = keys[0]
        for part in flatten(context, self.catalog):
            spec = part.spec
            if isinstance(spec, ast.EventInterval) and key in (k.name for k in spec.keys):
                for type_name in interval_types(spec):
                    attrs = self.attrs_of.get(type_name)
                    if attrs is not None and key in attrs:
                        return attrs[key]
                return ANY
        return self.first_types(key) or ANY

    def initiator_tags(self, context: str) -> dict[str, TagInfo]:
        """The tags of the initiating patterns of a context (and of its parts), which its ON
        START and ON END rules read (`a.person`, `m[0].room` for a repeated one), as the
        engine binds them (cep.language.context_info)."""
        tags = self._initiator_tags.get(context)
        if tags is None:
            repeated = repeated_initiator_tags(context, self.catalog)
            tags = self._initiator_tags[context] = {
                tag: TagInfo(type_name, tag in repeated)
                for tag, type_name in initiator_tags(context, self.catalog).items()}
        return tags

    def longest(self, context: str) -> list[Longest]:
        """What bounds how long an instance of the context lasts (cep.checks.instances)."""
        found = self._longest.get(context)
        if found is None:
            found = self._longest[context] = longest_instance(context, self.catalog)
        return found

    def derived(self, target: EventTypeInfo) -> None:
        """A derived type's attributes are known now."""
        self.attrs_of[target.name] = target.attrs
        self.first_types.update(target.name, target.attrs)


class RuleChecker:
    def __init__(self, info: RuleInfo, catalog: Catalog, diagnostics: Diagnostics,
                 rules: RuleSet | None = None) -> None:
        self.info = info
        self.rule = info.rule
        self.catalog = catalog
        self.diagnostics = diagnostics
        self.context: str | None = None
        self.context_unknown = False  # the rule's CONTEXT names no context (reported)
        self.source_unknown = False  # its stream's type is unknown: so is its result's schema
        self.rules = rules if rules is not None else RuleSet(catalog)
        self.attrs_of = self.rules.attrs_of
        self.located = self.rules.located
        self.no_window_span: ast.Span | None = None  # where a rule without a view said so

    def scope(self) -> Scope:
        keys = self.rules.keys(self.context) if self.context else []
        key_type = self.rules.key_type(self.context) if self.context and keys else ANY
        return Scope(context=self.context, context_unknown=self.context_unknown,
                     has_key=bool(keys), key_type=key_type, event_attrs=self.attrs_of,
                     located=self.located, windows=self.catalog.windows)

    @property
    def source(self) -> ast.Source | ast.LifecycleTrigger:
        rule = self.rule
        return rule.source if isinstance(rule, ast.SelectRule) else rule.trigger

    @property
    def windowed(self) -> bool:
        """A SELECT rule reading its stream through a view: aggregates are over the view."""
        source = self.source
        return (isinstance(self.rule, ast.SelectRule) and isinstance(source, ast.StreamSource)
                and source.view is not None)

    def example(self) -> str:
        """`FROM Type#time(10 min)` with the rule's own stream type, for messages."""
        source = self.source
        name = source.type if isinstance(source, ast.StreamSource) else "Type"
        return f"`FROM {name}#time(10 min)`"

    def needs_window(self) -> str:
        source = self.source
        return needs_window(source.type if isinstance(source, ast.StreamSource) else "Type")

    def at(self, scope: Scope, aggregated: bool, where: str) -> Scope:
        """`scope` for the SELECT, WHERE, HAVING or PUBLISH: prior() reads the rule's stream,
        and aggregates are allowed where `aggregated` says (`where` names the place)."""
        source = self.source
        output = self.rule.output
        if isinstance(source, ast.StreamSource) and output is not None \
                and output.kind == "snapshot" and where != "WHERE":
            prior_type, no_prior = None, PRIOR_IN_SNAPSHOT
        elif isinstance(source, ast.StreamSource):
            prior_type, no_prior = source.type, scope.no_prior
        elif isinstance(source, ast.PatternSource):
            prior_type, no_prior = None, PRIOR_IN_PATTERN
        else:
            prior_type, no_prior = None, (f"prior() needs a stream (`FROM Type` or `ON Type`), "
                                          f"and ON {source.kind.upper()} has none")
        if aggregated or (self.no_window_span is not None and where in ("SELECT", "HAVING")):
            no_aggregates = None
        elif not self.windowed:
            no_aggregates = self.needs_window()
        elif where == "PUBLISH":
            no_aggregates = AGGREGATE_IN_PUBLISH
        else:
            no_aggregates = AGGREGATE_BEFORE_WINDOW.format(where=where)
        return replace(scope, prior_type=prior_type, no_prior=no_prior,
                       no_aggregates=no_aggregates)

    # -------------------------------------------------------------- the rule
    def check(self) -> None:
        rule = self.rule
        self._context()
        source_scope = self._source()
        self._check_once()
        self._needs_window()
        self._output()
        if rule.where is not None and source_scope is not None:
            ExpressionChecker(self.at(source_scope, False, "WHERE"),
                              self.diagnostics).condition(rule.where, "WHERE")
        if isinstance(rule, ast.SelectRule):
            schema = self._select(source_scope)
            self.info.schema = schema
            self._group_by(source_scope)
            if rule.having is not None and source_scope is not None:
                self._having(rule.having, source_scope, schema)
            action_scope = self.scope()
            action_scope.attrs = dict(schema)
            action_scope.attrs_owner = "the rule's result (its SELECT names)"
            names_known = source_scope is not None or rule.select is not None
            if source_scope is None and rule.select is not None:
                # its source is unknown (reported): the names are known, not their types
                action_scope.attrs = {name: ANY for item in rule.select
                                      if (name := select_name(item)) is not None}
        else:
            action_scope = source_scope or self.scope()
            names_known = source_scope is not None  # else its trigger is unknown (reported)
        action_scope = self.at(action_scope, False, "PUBLISH")
        for action in rule.actions:
            self._action(action, action_scope, names_known)

    def _having(self, having: ast.Expr, scope: Scope, schema: dict[str, str]) -> None:
        """HAVING filters results, in the scope of the stream (plus aggregates over a window)."""
        why = (f"HAVING sees the attributes of {scope.attrs_owner}"
               f"{' and aggregates' if self.windowed else ''}, not the SELECT names: repeat "
               "the expression")
        hidden = {name: why for name in schema if name not in scope.attrs}
        having_scope = replace(self.at(scope, self.windowed, "HAVING"), hidden=hidden)
        ExpressionChecker(having_scope, self.diagnostics).condition(having, "HAVING")

    def _needs_window(self) -> None:
        """A SELECT rule without a view that aggregates, groups or repeats a snapshot: one
        error, at the first of them (a view fixes them all), and the others are then checked
        as if the rule had one."""
        rule = self.rule
        if not isinstance(rule, ast.SelectRule) or self.windowed:
            return
        first = next((found for item in rule.select or () for found in aggregates(item.expr)),
                     None)
        having = aggregates(rule.having) if rule.having is not None else []
        if first is not None:
            message, span = self.needs_window(), first.span
        elif rule.group_by:
            message = ("GROUP BY needs a window: it groups the events a view holds, so read the "
                       f"stream through one, such as {self.example()}")
            span = rule.group_by[0].span
        elif having:
            message, span = self.needs_window(), having[0].span
        elif rule.output is not None and rule.output.kind == "snapshot":
            message = ("OUTPUT SNAPSHOT needs a window: it repeats what a SELECT rule's window "
                       f"holds, so read the stream through a view, such as {self.example()}")
            span = rule.output.span
        else:
            return
        self.diagnostics.error(message, span)
        self.no_window_span = span

    def _output(self) -> None:
        """OUTPUT FIRST | LAST EVERY d throttles a rule's results; SNAPSHOT repeats its window."""
        output = self.rule.output
        if output is None:
            return
        check_duration(output.every, self.diagnostics)
        source = self.source
        if output.kind == "snapshot" and not self.windowed:
            if self.no_window_span is None:  # an ON rule: _needs_window is for SELECT rules
                self.diagnostics.error("OUTPUT SNAPSHOT needs a window: it repeats what a "
                                       "SELECT rule's window holds, so read the stream through "
                                       f"a view, such as {self.example()}", output.span)
        elif isinstance(source, ast.LifecycleTrigger):
            self.diagnostics.error(f"OUTPUT {output.kind.upper()} needs a stream or a pattern to "
                                   f"throttle: ON {source.kind.upper()} runs once per context "
                                   "instance", output.span)

    def _group_by(self, scope: Scope | None) -> None:
        rule = self.rule
        assert isinstance(rule, ast.SelectRule)
        if not rule.group_by or scope is None or not isinstance(self.source, ast.StreamSource):
            return  # without a window (a pattern), _needs_window has said so
        if not self.windowed and self.no_window_span == rule.group_by[0].span:
            return  # said at the GROUP BY: its names are checked once it has a window
        seen: set[str] = set()
        right = True
        for ident in rule.group_by:
            if ident.name not in scope.attrs:
                self.diagnostics.error(f"GROUP BY `{ident.name}` is not an attribute of "
                                       f"{scope.attrs_owner}{suggestion(ident.name, scope.attrs)}",
                                       ident.span)
                right = False
            elif ident.name in seen:
                self.diagnostics.error(f"`{ident.name}` appears twice in GROUP BY", ident.span)
            seen.add(ident.name)
        if right and self.windowed:
            self._ungrouped(seen, scope)

    def _ungrouped(self, grouped: set[str], scope: Scope) -> None:
        """Warn about plain attributes selected beside GROUP BY (as Esper does)."""
        rule, source = self.rule, self.source
        assert isinstance(rule, ast.SelectRule) and isinstance(source, ast.StreamSource)
        stream_tag = source.alias or source.type
        for item in rule.select or ():
            expr = item.expr
            name = (expr.name if isinstance(expr, ast.Name) else
                    expr.attr if isinstance(expr, ast.Attribute) and expr.tag == stream_tag
                    and expr.index is None else None)
            if name is not None and name in scope.attrs and name not in grouped:
                self.diagnostics.warning(f"`{name}` is neither aggregated nor in GROUP BY: it is "
                                         f"the arriving event's value (add it to GROUP BY, or "
                                         f"write `last({name})` to say so)", item.span)

    def _context(self) -> None:
        ident = self.rule.context
        if ident is None:
            return
        if ident.name not in self.catalog.contexts:
            self.context_unknown = True
            if not self.diagnostics.failed_to_declare(CONTEXT, ident.name):
                self.diagnostics.error(f"unknown context {ident.name}"
                                       f"{suggestion(ident.name, self.catalog.contexts)}",
                                       ident.span)
            return
        self.context = ident.name

    # -------------------------------------------------------------- sources
    def _source(self) -> Scope | None:
        source = self.source
        if isinstance(source, ast.LifecycleTrigger):
            return self._lifecycle(source)
        if isinstance(source, ast.StreamSource):
            return self.stream_scope(source)
        return self._pattern(source)

    def stream_scope(self, source: ast.StreamSource) -> Scope | None:
        self.info.inputs = [source.type]
        alias_clash(source, self.rules.tag_names_taken, self.diagnostics)
        if source.view is not None and not isinstance(self.rule, ast.SelectRule):
            misplaced_view(source.view, "an ON trigger, which reacts to each event as it "
                           "arrives", self.diagnostics)
        elif source.view is not None:
            check_view(source.view, source.type, self.attrs_of.get(source.type),
                       self.diagnostics)
        if source.type not in self.attrs_of:
            self.source_unknown = True
            if not self.diagnostics.failed_to_declare(EVENT_TYPE, source.type):
                self.diagnostics.error(unknown_type(source.type, self.attrs_of,
                                                    self.catalog.windows), source.span)
            return None
        scope = self.scope()
        attrs = self.attrs_of[source.type]
        if attrs is None:  # derived type whose schema is unknown (in a cycle)
            self.source_unknown = True
            return None
        scope.attrs = dict(attrs)
        scope.attrs_owner = f"event type {source.type}"
        scope.tags = {source.alias or source.type: TagInfo(source.type)}
        if source.filter is not None:
            no_aggregates = (AGGREGATE_BEFORE_WINDOW.format(where="a filter") if self.windowed
                             else self.needs_window())
            filter_scope = replace(scope, in_filter=True, no_prior=IN_FILTER,
                                   no_aggregates=no_aggregates)
            ExpressionChecker(filter_scope, self.diagnostics).condition(source.filter,
                                                                        "a filter")
        return scope

    def _pattern(self, source: ast.PatternSource) -> Scope:
        self.info.inputs = event_types(source.pattern)
        tags = PatternChecker(self.attrs_of, self.scope, self.diagnostics, self.catalog.windows,
                              self.rules.tag_names_taken).check(source.pattern)
        once = self._once()
        if has_every(source.pattern):
            if once is not None:
                self.diagnostics.error("@once says this rule fires once per context instance, "
                                       "but its pattern has `every`, which makes it fire again: "
                                       "remove @once or the `every`", once.span)
        elif once is None:
            self.diagnostics.warning(
                "this pattern has no `every`: it fires at most once per context instance "
                "(write @once before the rule if that is meant)", source.span)
        if self.context is not None:
            warn_timers(source.pattern, self.context, self.rules.longest(self.context),
                        self.diagnostics)
        scope = self.scope()
        scope.tags = tags
        scope.attrs_owner = "a pattern rule (read attributes through tags, such as `a.value`)"
        return scope

    def _once(self) -> ast.Annotation | None:
        return next((a for a in self.rule.annotations if a.name == "once"), None)

    def _check_once(self) -> None:
        """@once acknowledges a pattern without `every` (checked with the pattern); a rule
        that reads a stream fires for every event, so it cannot claim to fire once."""
        once = self._once()
        source = self.source
        if once is not None and isinstance(source, ast.StreamSource):
            self.diagnostics.error("@once is for a pattern without `every`, which fires once "
                                   f"per context instance; this rule fires for every "
                                   f"{source.type} event: remove @once", once.span)

    def _lifecycle(self, trigger: ast.LifecycleTrigger) -> Scope | None:
        if self.rule.context is None:
            self.diagnostics.error(f"ON {trigger.kind.upper()} needs a CONTEXT: it runs when an "
                                   "instance of that context opens or closes", trigger.span)
            return None
        if self.context is None:
            return None
        if trigger.kind == "end":
            reason = never_ends(self.context, self.catalog)
            if reason is not None:
                self.diagnostics.warning(f"ON END of {self.context} never runs: {reason}",
                                         trigger.span)
        scope = self.scope()
        scope.attrs = lifecycle_attrs(self.context, self.catalog, self.rules.first_types)
        scope.tags = dict(self.rules.initiator_tags(self.context))
        scope.attrs_owner = (f"context {self.context} (its partition key and initiating "
                             "event)")
        return scope

    # -------------------------------------------------------------- SELECT
    def _select(self, scope: Scope | None) -> dict[str, str]:
        rule = self.rule
        assert isinstance(rule, ast.SelectRule)
        if scope is None:
            return {}
        if rule.select is None:  # SELECT *
            if isinstance(rule.source, ast.StreamSource):
                return dict(scope.attrs)
            return {tag: EVENTS if info.repeated else EVENT for tag, info in scope.tags.items()}
        schema: dict[str, str] = {}
        checker = ExpressionChecker(self.at(scope, self.windowed, "SELECT"), self.diagnostics)
        for item in rule.select:
            item_type = checker.infer(item.expr)
            name = select_name(item)
            if name is None:
                self.diagnostics.error("give this expression a name with AS, such as "
                                       "`... AS level`", item.span)
                continue
            if name in schema:
                self.diagnostics.error(f"the result already has a `{name}`: use AS to give "
                                       "this one another name", item.span)
                continue
            schema[name] = item_type
        return schema

    # -------------------------------------------------------------- actions
    def _action(self, action: ast.Action, scope: Scope, names_known: bool = True) -> None:
        """A PUBLISH; without `names_known` (what the rule reads is unknown, which is
        reported), the names of its topic and payload are not checked."""
        check_template(action.topic, self.diagnostics, publish=True)
        for name, offset in template_names(action.topic):
            if name and name not in scope.attrs and names_known:
                self.diagnostics.error(
                    f"topic placeholder `{{{name}}}` is not a name of "
                    f"{scope.attrs_owner}{suggestion(name, scope.attrs)}",
                    text_span(action.topic, offset, len(name) + 2))
        if action.qos is not None and action.qos not in (0, 1, 2):
            self.diagnostics.error(f"QoS must be 0, 1 or 2, not {action.qos}", action.span)
        if action.payload is not None and names_known:
            self._json(action.payload, ExpressionChecker(scope, self.diagnostics))

    def _json(self, value: ast.JsonValue, checker: ExpressionChecker) -> None:
        if isinstance(value, ast.JsonObject):
            keys: set[str] = set()
            for key, member in value.members:
                if key in keys:
                    self.diagnostics.error(f"the payload has the key \"{key}\" twice",
                                           getattr(member, "span", value.span))
                keys.add(key)
                self._json(member, checker)
        elif isinstance(value, ast.JsonArray):
            for item in value.items:
                self._json(item, checker)
        else:
            checker.infer(value)


def register_rule_output(info: RuleInfo, catalog: Catalog, diagnostics: Diagnostics,
                         rules: RuleSet | None = None) -> None:
    """Turn an INSERT INTO rule's schema into (or check it against) its event type."""
    rule = info.rule
    assert isinstance(rule, ast.SelectRule) and rule.insert_into is not None
    target = catalog.events[rule.insert_into.name]
    if target.declaration is not None:
        for name, value_type in info.schema.items():
            declared = target.attrs.get(name)
            if declared is None:
                diagnostics.error(f"INSERT INTO {target.name}: {target.name} has no attribute "
                                  f"`{name}`{suggestion(name, target.attrs)}",
                                  rule.insert_into.span)
            elif not comparable(declared, value_type) or value_type in (EVENT, EVENTS):
                diagnostics.error(f"INSERT INTO {target.name}: `{name}` is {describe(value_type)}"
                                  f" but {target.name} declares it {declared}",
                                  rule.insert_into.span)
        return
    if not target.producers_checked:
        target.attrs = dict(info.schema)
        target.producers_checked = True
        target.span = rule.insert_into.span
        target.first_producer = info.name
        if rules is not None:
            rules.derived(target)
        return
    if not _same_schema(target.attrs, info.schema):
        diagnostics.error(
            f"INSERT INTO {target.name}: this result ({_schema_text(info.schema)}) differs from "
            f"the one rule '{target.first_producer}' inserts ({_schema_text(target.attrs)}); "
            f"every rule inserting into {target.name} must select the same names and types",
            rule.insert_into.span)


def _same_schema(a: dict[str, str], b: dict[str, str]) -> bool:
    if set(a) != set(b):
        return False
    return all(a[k] == b[k] or {a[k], b[k]} & {ANY, NULL} for k in a)


def _schema_text(schema: dict[str, str]) -> str:
    return ", ".join(f"{name} {t}" for name, t in schema.items()) or "nothing"


def check_rule(info: RuleInfo, catalog: Catalog, diagnostics: Diagnostics,
               rules: RuleSet | None = None) -> None:
    """Check one rule; `rules` (one for the whole run) saves building it for each rule."""
    checker = RuleChecker(info, catalog, diagnostics, rules)
    checker.check()
    if isinstance(info.rule, ast.SelectRule) and info.rule.insert_into is not None \
            and not checker.source_unknown:
        # (a rule whose stream is unknown has no known result: its type keeps an unknown
        # schema, so that its readers are not told about attributes it "lacks")
        register_rule_output(info, catalog, diagnostics, rules)
