"""Named windows (CREATE WINDOW): the current state of the home, for the whole engine.

Every event of a window's type that passes its filter enters it before anything else
sees the event (rules, context initiators and terminators, partitions); a derived
event when it is delivered. Expressions read the windows (`Name.attr`, `Name[k].attr`,
subqueries) through `ExprEnv.windows`; reading never triggers a rule.
"""

from __future__ import annotations

from collections.abc import Callable

from cep.language.catalog import Catalog, WindowInfo
from cep.runtime.events import Event
from cep.runtime.expressions import ExprEnv, ExpressionCompiler, Fn, window_attrs
from cep.runtime.positions import PositionOf
from cep.runtime.snapshot import Json, StateReader, StateWriter, need
from cep.runtime.windows import EventWindow, Schedule, ViewSpec

# what the engine does when a window's filter raises: report(window name, exception)
Report = Callable[[str, BaseException], None]


class NamedWindow:
    def __init__(self, info: WindowInfo, window: EventWindow, filter: Fn | None,
                 env: ExprEnv) -> None:
        self.name = info.name
        self.type = info.type
        self.window = window
        self.filter = filter
        self.env = env

    def passes(self, event: Event) -> bool:
        return self.filter is None or bool(self.filter(event.attrs, {self.type: event}, None))

    def take(self, event: Event) -> None:
        now = self.env.now()
        self.window.insert(now, event)
        self.window.arm(now)


class NamedWindows:
    """Every named window of a rule set, found by the type that fills it."""

    def __init__(self, catalog: Catalog, schedule: Schedule, env: ExprEnv,
                 position_of: PositionOf, report: Report) -> None:
        self.report = report
        # every window's content first: a filter may read any window
        contents = {name: EventWindow(ViewSpec.of(info.view), schedule, env.now)
                    for name, info in catalog.windows.items()}
        env.windows = contents
        env.window_attrs = window_attrs(catalog)
        self.contents = contents
        self.by_name: dict[str, NamedWindow] = {}
        self.by_type: dict[str, list[NamedWindow]] = {}
        for name, info in catalog.windows.items():
            source = info.declaration.source
            compiled: Fn | None = None
            if source.filter is not None:
                event = catalog.events.get(info.type)
                attrs = frozenset(event.attrs) if event is not None else frozenset()
                compiler = ExpressionCompiler(frozenset({info.type}), attrs, position_of, env,
                                              info.type)
                compiled = compiler.compile(source.filter)
            window = NamedWindow(info, contents[name], compiled, env)
            self.by_name[name] = window
            self.by_type.setdefault(info.type, []).append(window)

    def update(self, event: Event) -> None:
        """`event` enters the windows of its type that it passes; a filter that raises
        keeps it out of that window (reported) and the others go on. Every filter is
        evaluated before the event enters any window: a filter that reads another window
        sees it as it was before the event, whatever the order of the declarations."""
        windows = self.by_type.get(event.type)
        if not windows:
            return
        if len(windows) == 1:
            (window,) = windows
            taking = [window] if self._passes(window, event) else []
        else:
            taking = [window for window in windows if self._passes(window, event)]
        for window in taking:
            window.take(event)

    def snapshot(self, w: StateWriter) -> Json:
        """`{name: window, ...}`: every named window's content (cep.runtime.windows)."""
        return {name: window.snapshot(w) for name, window in self.contents.items()}

    def restore(self, data: Json, r: StateReader) -> None:
        need(type(data) is dict, "the named windows' section is not an object")
        for name in data:
            need(name in self.contents, f"no window '{name}' in the rules")
        for name, window in self.contents.items():
            need(name in data, f"window '{name}' is missing")
            window.restore(data[name], r)

    def _passes(self, window: NamedWindow, event: Event) -> bool:
        try:
            return window.passes(event)
        except Exception as exc:
            self.report(window.name, exc)
            return False
