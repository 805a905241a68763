"""Stage 2, the checks: semantic checks of parsed rule files, a pipeline of small passes.

`check(files)` registers every declaration in a `Catalog` and reports every
problem in a `Diagnostics` collector; the engine compiles from the catalog
only when there is no error. `loader` is the entry point the commands use: it
reads rule files and folders, parses and checks them, and returns the lot.
"""

from __future__ import annotations

from cep.checks.contexts import check_contexts
from cep.checks.declarations import (
    check_create_event,
    check_create_location,
    check_set_location,
    check_timezone,
    register_context,
)
from cep.checks.network import check_cycles, check_order
from cep.checks.rules import KNOWN_ANNOTATIONS, RuleSet, check_rule
from cep.checks.scope import SUGGESTIONS
from cep.checks.sun import check_sun
from cep.checks.unused import warn_unused
from cep.checks.windows import check_window_names, check_windows, register_window
from cep.language import ast
from cep.language.catalog import Catalog, EventTypeInfo, RuleInfo
from cep.language.diagnostics import Diagnostics

__all__ = ["Catalog", "EventTypeInfo", "RuleInfo", "check"]


def check(files: list[ast.RuleFile], diagnostics: Diagnostics) -> Catalog:
    """Every check, each linear or n·log n in the size of the rule set (docs/performance.md,
    "Checking large rule sets")."""
    SUGGESTIONS.reset()
    catalog = Catalog()
    register_declarations(files, catalog, diagnostics)
    register_rules(files, catalog, diagnostics)
    check_window_names(catalog, diagnostics)
    check_cycles(catalog, diagnostics)
    rules = RuleSet(catalog)
    for info in check_order(catalog):
        check_rule(info, catalog, diagnostics, rules)
    check_windows(catalog, diagnostics, rules.attrs_of)
    check_contexts(catalog, diagnostics)
    check_sun(files, catalog, diagnostics)
    if not diagnostics.has_errors():  # with errors, "unused" is mostly noise caused by them
        warn_unused(catalog, diagnostics)
    return catalog


def register_declarations(files: list[ast.RuleFile], catalog: Catalog,
                          diagnostics: Diagnostics) -> None:
    zones: list[ast.SetTimezone] = []
    homes: list[ast.SetLocation] = []
    for file in files:
        for stmt in file.statements:
            if isinstance(stmt, ast.SetTimezone):
                check_timezone(stmt, catalog, diagnostics, zones)
            elif isinstance(stmt, ast.SetLocation):
                check_set_location(stmt, catalog, diagnostics, homes)
            elif isinstance(stmt, ast.CreateEvent):
                check_create_event(stmt, catalog, diagnostics)
            elif isinstance(stmt, ast.CreateLocation):
                check_create_location(stmt, catalog, diagnostics)
            elif isinstance(stmt, ast.CreateContext):
                register_context(stmt, catalog, diagnostics)
            elif isinstance(stmt, ast.CreateWindow):
                register_window(stmt, catalog, diagnostics)


def register_rules(files: list[ast.RuleFile], catalog: Catalog,
                   diagnostics: Diagnostics) -> None:
    """Name every rule (`@name` or `rule<N>`) and register derived event types."""
    number = 0
    names: dict[str, ast.Span] = {}
    for file in files:
        for stmt in file.statements:
            if not isinstance(stmt, (ast.SelectRule, ast.OnRule)):
                continue
            number += 1
            name, description, name_span = f"rule{number}", None, stmt.span
            for annotation in stmt.annotations:
                value = annotation.value
                if annotation.name == "name":
                    if value is None:
                        diagnostics.error("@name needs a name: @name('...')", annotation.span)
                        continue
                    name, name_span = value.value, value.span
                    if not name.strip():
                        diagnostics.error("@name must not be empty", value.span)
                elif annotation.name == "description":
                    if value is None:
                        diagnostics.error("@description needs a text: @description('...')",
                                          annotation.span)
                        continue
                    description = value.value
                elif annotation.name == "once":
                    if value is not None:
                        diagnostics.warning("@once takes no argument: write `@once` (the "
                                            "argument is ignored)", value.span)
                elif annotation.name not in KNOWN_ANNOTATIONS:
                    diagnostics.warning(f"unknown annotation @{annotation.name} (known: @name, "
                                        "@description, @once); it is ignored", annotation.span)
            if name in names:
                first = names[name]
                diagnostics.error(f"rule name '{name}' is already used at "
                                  f"{first.file}:{first.line}", name_span)
            names.setdefault(name, name_span)
            target = stmt.insert_into if isinstance(stmt, ast.SelectRule) else None
            inserts = target is not None
            output = target.name if target is not None else name
            catalog.rules.append(RuleInfo(name, description, stmt, number, output, inserts))
            if inserts:
                event = catalog.events.get(output)
                if event is None:
                    event = catalog.events[output] = EventTypeInfo(output, {},
                                                                   span=stmt.span)
                event.producers.append(name)
