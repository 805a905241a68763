"""Checks of named windows (CREATE WINDOW) and of views (`#time`, `#length`, `#lastevent`,
`#unique`) wherever they are written.

A window is registered with the declarations (`register_window`), its name and type are
checked once the derived types are known (`check_window_names`), and its `#unique`
attributes and filter once every rule is checked (`check_windows`): a window of a derived
type knows its attributes only when a rule inserting into that type has been checked.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping

from cep.checks.declarations import check_duration
from cep.checks.expressions import ExpressionChecker, describe
from cep.checks.scope import Scope, TagInfo, suggestion
from cep.language import ast
from cep.language.catalog import EVENT, EVENTS, LIST, VALUES, Catalog, WindowInfo
from cep.language.diagnostics import EVENT_TYPE, Diagnostics
from cep.language.walk import named_reads

VIEWS = ("time", "length", "lastevent", "unique")
IN_FILTER = ("prior() cannot be in an event filter: use it in the SELECT, WHERE, HAVING or "
             "PUBLISH of a rule reading `FROM Type` or `ON Type`")
_NO_KEY = (EVENT, EVENTS, LIST, VALUES)  # attribute types a `#unique` view cannot key by


# ------------------------------------------------------------------ views


def check_view_shape(view: ast.View, diagnostics: Diagnostics) -> bool:
    """The view's name and the kind and number of its arguments (no event type needed);
    False when something is wrong (reported)."""
    name, args = view.name, view.args
    if name not in VIEWS:
        diagnostics.error(f"unknown view #{name}: use #time, #length, #lastevent or #unique"
                          f"{suggestion('#' + name, ['#' + v for v in VIEWS])}", view.span)
        return False
    if name == "time":
        if len(args) != 1 or not isinstance(args[0], ast.Duration):
            at = args[1] if len(args) > 1 and isinstance(args[0], ast.Duration) else (
                args[0] if args else view)
            diagnostics.error("#time takes one duration, such as `#time(10 min)`", at.span)
            return False
        check_duration(args[0], diagnostics)
    elif name == "length":
        first = args[0] if args else None
        if len(args) != 1 or not isinstance(first, ast.Literal) or type(first.value) is not int \
                or first.value < 1:
            at = args[1] if len(args) > 1 else (first or view)
            diagnostics.error("#length takes one whole number of events, at least 1, such as "
                              "`#length(5)`", at.span)
            return False
    elif name == "lastevent":
        if args:
            diagnostics.error("#lastevent takes no arguments: write `#lastevent`", args[0].span)
            return False
    else:
        return _unique_shape(view, diagnostics)
    return True


def _unique_shape(view: ast.View, diagnostics: Diagnostics) -> bool:
    if not view.args:
        diagnostics.error("#unique takes the attributes that key it, such as `#unique(room)`",
                          view.span)
        return False
    right = True
    seen: set[str] = set()
    for arg in view.args:
        if not isinstance(arg, ast.Ident):
            diagnostics.error("#unique takes attribute names, such as `#unique(room)`", arg.span)
            right = False
        elif arg.name in seen:
            diagnostics.error(f"`{arg.name}` appears twice in #unique", arg.span)
            right = False
        else:
            seen.add(arg.name)
    return right


def check_view_attrs(view: ast.View, type_name: str, attrs: Mapping[str, str],
                     diagnostics: Diagnostics) -> None:
    """The attributes a `#unique` view is keyed by belong to the event type."""
    if view.name != "unique":
        return
    for arg in view.args:
        if not isinstance(arg, ast.Ident):
            continue
        if arg.name not in attrs:
            diagnostics.error(f"#unique: `{arg.name}` is not an attribute of {type_name}"
                              f"{suggestion(arg.name, attrs)}", arg.span)
        elif attrs[arg.name] in _NO_KEY:
            diagnostics.error(f"#unique: `{arg.name}` holds {describe(attrs[arg.name])}, which "
                              "cannot be a key", arg.span)


def check_view(view: ast.View, type_name: str, attrs: Mapping[str, str] | None,
               diagnostics: Diagnostics) -> None:
    """A view of a SELECT rule's stream (`attrs` None: its type's attributes are unknown)."""
    if check_view_shape(view, diagnostics) and attrs is not None:
        check_view_attrs(view, type_name, attrs, diagnostics)


def misplaced_view(view: ast.View, where: str, diagnostics: Diagnostics) -> None:
    diagnostics.error(f"a view (#{view.name}) belongs on a SELECT rule's FROM or in a CREATE "
                      f"WINDOW, not on {where}", view.span)


def unique_keys(view: ast.View) -> tuple[str, ...]:
    """The attributes of a well-formed `#unique(...)`; () for any other view."""
    if view.name != "unique" or not view.args:
        return ()
    names = [arg.name for arg in view.args if isinstance(arg, ast.Ident)]
    if len(names) != len(view.args) or len(set(names)) != len(names):
        return ()
    return tuple(names)


# ------------------------------------------------------------------ names


def unknown_type(name: str, known: Collection[str], windows: Mapping[str, WindowInfo]) -> str:
    """The message for an event type nobody declares or produces."""
    message = (f"unknown event type {name}: declare it with CREATE EVENT or produce it with "
               "INSERT INTO")
    if name in windows:
        return (message + f"; {name} is a named window, read as `{name}.attr` or "
                f"`(SELECT ... FROM {name})`")
    return message + suggestion(name, known)


def tag_names_taken(catalog: Catalog) -> frozenset[str]:
    """The window names a tag or alias must not have (a window named like an event type or
    a context is reported at the window, not again at each tag)."""
    return frozenset(name for name in catalog.windows
                     if name not in catalog.events and name not in catalog.contexts)


def tag_clash_message(tag: str) -> str:
    return f"tag `{tag}` has the name of a named window: rename the tag"


def alias_clash(source: ast.StreamSource, taken: Collection[str],
                diagnostics: Diagnostics) -> None:
    if source.alias is not None and source.alias in taken:
        diagnostics.error(tag_clash_message(source.alias), source.span)


# ------------------------------------------------------------------ CREATE WINDOW


def register_window(stmt: ast.CreateWindow, catalog: Catalog, diagnostics: Diagnostics) -> None:
    """A window's name must be new; its view is checked as far as it can be without the type."""
    first = catalog.windows.get(stmt.name)
    if first is not None:
        span = first.declaration.name_span
        diagnostics.error(f"window {stmt.name} is already declared at {span.file}:{span.line}",
                          stmt.name_span)
        return
    keys = unique_keys(stmt.view) if check_view_shape(stmt.view, diagnostics) else ()
    catalog.windows[stmt.name] = WindowInfo(stmt.name, stmt, stmt.source.type, keys)


def check_window_names(catalog: Catalog, diagnostics: Diagnostics) -> None:
    """Once the derived types are registered: a window's name is its own, its type exists."""
    for name, window in catalog.windows.items():
        stmt = window.declaration
        if name in catalog.events:
            diagnostics.error(f"window {name} has the name of an event type: rename the window, "
                              f"such as `{name}Window`", stmt.name_span)
        elif name in catalog.contexts:
            diagnostics.error(f"window {name} has the name of a context: rename the window, "
                              f"such as `{name}Window`", stmt.name_span)
        if window.type not in catalog.events \
                and not diagnostics.failed_to_declare(EVENT_TYPE, window.type):
            diagnostics.error(unknown_type(window.type, catalog.events, catalog.windows),
                              stmt.source.span)


def check_windows(catalog: Catalog, diagnostics: Diagnostics,
                  attrs_of: dict[str, dict[str, str] | None]) -> None:
    """Once every rule is checked (every derived type that can have a schema has one): each
    window's `#unique` attributes and filter. A type without a schema (unknown, or in an
    INSERT INTO cycle) is reported elsewhere."""
    for window in catalog.windows.values():
        attrs = attrs_of.get(window.type)
        if attrs is None:
            continue
        if window.view.name == "unique":
            check_view_attrs(window.view, window.type, attrs, diagnostics)
        source = window.declaration.source
        if source.filter is not None:
            scope = Scope(attrs=dict(attrs), attrs_owner=f"event type {window.type}",
                          tags={window.type: TagInfo(window.type)}, event_attrs=attrs_of,
                          windows=catalog.windows, in_filter=True, no_prior=IN_FILTER)
            ExpressionChecker(scope, diagnostics).condition(source.filter, "a filter")


# ------------------------------------------------------------------ who reads a window


def windows_read(exprs: Iterable[ast.Expr], windows: Mapping[str, WindowInfo]) -> Iterator[str]:
    """The named windows these expressions read (a name may come more than once)."""
    if not windows:
        return
    for expr in exprs:
        for name in named_reads(expr):
            if name in windows:
                yield name
