"""Checks of one rule: its context, source, filters, WHERE, SELECT schema and actions.

`check_rule` fills in the rule's result schema (names and types of its
SELECT list), which INSERT INTO turns into a derived event type.
"""

from __future__ import annotations

from cep.checks.declarations import check_template, template_names, text_span
from cep.checks.expressions import ExpressionChecker, comparable, describe
from cep.checks.patterns import PatternChecker
from cep.checks.scope import Scope, TagInfo, suggestion
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
from cep.language.context_info import FirstTypes, lifecycle_attrs, partition_attrs
from cep.language.diagnostics import Diagnostics
from cep.language.walk import event_types, has_every, select_name

KNOWN_ANNOTATIONS = ("name", "description")


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
        self._keys: dict[str, list[str]] = {}

    def keys(self, context: str) -> list[str]:
        """The partition key attributes of a context (contexts do not change)."""
        keys = self._keys.get(context)
        if keys is None:
            keys = self._keys[context] = partition_attrs(context, self.catalog)
        return keys

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
        self.rules = rules if rules is not None else RuleSet(catalog)
        self.attrs_of = self.rules.attrs_of
        self.located = self.rules.located

    def scope(self) -> Scope:
        keys = self.rules.keys(self.context) if self.context else []
        key_type = (self.rules.first_types(keys[0]) or ANY) if len(keys) == 1 else LIST
        return Scope(context=self.context, has_key=bool(keys), key_type=key_type,
                     event_attrs=self.attrs_of, located=self.located)

    # -------------------------------------------------------------- the rule
    def check(self) -> None:
        rule = self.rule
        self._context()
        source_scope = self._source()
        if rule.where is not None and source_scope is not None:
            ExpressionChecker(source_scope, self.diagnostics).condition(rule.where, "WHERE")
        if isinstance(rule, ast.SelectRule):
            schema = self._select(source_scope)
            self.info.schema = schema
            action_scope = self.scope()
            action_scope.attrs = dict(schema)
            action_scope.attrs_owner = "the rule's result (its SELECT names)"
        else:
            action_scope = source_scope or self.scope()
        for action in rule.actions:
            self._action(action, action_scope)

    def _context(self) -> None:
        ident = self.rule.context
        if ident is None:
            return
        if ident.name not in self.catalog.contexts:
            self.diagnostics.error(f"unknown context {ident.name}"
                                   f"{suggestion(ident.name, self.catalog.contexts)}",
                                   ident.span)
            return
        self.context = ident.name

    # -------------------------------------------------------------- sources
    def _source(self) -> Scope | None:
        rule = self.rule
        source = rule.source if isinstance(rule, ast.SelectRule) else rule.trigger
        if isinstance(source, ast.LifecycleTrigger):
            return self._lifecycle(source)
        if isinstance(source, ast.StreamSource):
            return self.stream_scope(source)
        return self._pattern(source)

    def stream_scope(self, source: ast.StreamSource) -> Scope | None:
        self.info.inputs = [source.type]
        if source.type not in self.attrs_of:
            self.diagnostics.error(f"unknown event type {source.type}: declare it with CREATE "
                                   f"EVENT or produce it with INSERT INTO"
                                   f"{suggestion(source.type, self.attrs_of)}", source.span)
            return None
        scope = self.scope()
        attrs = self.attrs_of[source.type]
        if attrs is None:  # derived type whose schema is unknown (in a cycle)
            return None
        scope.attrs = dict(attrs)
        scope.attrs_owner = f"event type {source.type}"
        scope.tags = {source.alias or source.type: TagInfo(source.type)}
        if source.filter is not None:
            ExpressionChecker(scope, self.diagnostics).condition(source.filter, "a filter")
        return scope

    def _pattern(self, source: ast.PatternSource) -> Scope:
        self.info.inputs = event_types(source.pattern)
        tags = PatternChecker(self.attrs_of, self.scope, self.diagnostics).check(source.pattern)
        if not has_every(source.pattern):
            self.diagnostics.warning(
                "this pattern has no `every`: it fires at most once per context instance",
                source.span)
        scope = self.scope()
        scope.tags = tags
        scope.attrs_owner = "a pattern rule (read attributes through tags, such as `a.value`)"
        return scope

    def _lifecycle(self, trigger: ast.LifecycleTrigger) -> Scope | None:
        if self.rule.context is None:
            self.diagnostics.error(f"ON {trigger.kind.upper()} needs a CONTEXT: it runs when an "
                                   "instance of that context opens or closes", trigger.span)
            return None
        if self.context is None:
            return None
        scope = self.scope()
        scope.attrs = lifecycle_attrs(self.context, self.catalog, self.rules.first_types)
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
        checker = ExpressionChecker(scope, self.diagnostics)
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
    def _action(self, action: ast.Action, scope: Scope) -> None:
        check_template(action.topic, self.diagnostics, publish=True)
        for name, offset in template_names(action.topic):
            if name and name not in scope.attrs:
                self.diagnostics.error(
                    f"topic placeholder `{{{name}}}` is not a name of "
                    f"{scope.attrs_owner}{suggestion(name, scope.attrs)}",
                    text_span(action.topic, offset, len(name) + 2))
        if action.qos is not None and action.qos not in (0, 1, 2):
            self.diagnostics.error(f"QoS must be 0, 1 or 2, not {action.qos}", action.span)
        if action.payload is not None:
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
    RuleChecker(info, catalog, diagnostics, rules).check()
    if isinstance(info.rule, ast.SelectRule) and info.rule.insert_into is not None:
        register_rule_output(info, catalog, diagnostics, rules)
