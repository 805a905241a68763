"""The terminal view (`--view`): active contexts, rules, windows, fired events and input, live.

Layers, each testable alone:
- `cep.tools.view.snapshot`: frozen dataclasses of plain values (`InputStatus`, `Snapshot`, rows)
  and `take_snapshot(engine, status, recorder)`, which copies what the view shows out
  of the engine (public attributes only) when a frame is due, named windows and windowed
  rules' groups included; `TeeSink`, the sink wrapper that remembers the last fired events
  and actions.
- `cep.tools.view.panels`: one rich renderable per panel (`InputPanel`, `LogPanel`,
  `ContextsPanel`, `RulesPanel`, `WindowsPanel`, `EventsPanel`) and `Dashboard`, which lays
  them out to fill the terminal exactly.
- `cep.tools.view.app`: `TerminalView`, the driver (rich.live.Live, a monotonic wall clock for
  refresh decisions only; it keeps the last stderr lines for the log panel), and
  `ReplayView` for `cep replay --view` (`ReplayView(name, path, speed, until=, tz=)`: it
  reads the trace's first and last times from the two ends of the file, so progress goes
  by trace time, up to --until when given).

Driver API (for `cep run --view`; everything is called from the engine's thread):

    from cep.tools.view import InputStatus, TerminalView

    view = TerminalView(mode="live", source="mqtt://broker:1883")
    if not view.available:           # no terminal (stderr is not a tty and no /dev/tty)
        ...                          # refuse --view, or run without it
    sink = view.tee(writer_or_None)  # give `sink` to Engine(...): it remembers recent outputs
    view.start()                     # takes over the terminal (stderr, or /dev/tty)
    ...
    view.tick(engine, status)        # after each message / batch, and at least about once a
                                     # second while idle (countdowns); cheap unless a frame
                                     # is due (every 0.25 s, later if drawing is slow)
    ...
    view.stop("summary line")        # leaves the last frame on screen, prints the line

`status` is an `InputStatus` or a zero-argument callable returning one (called only
when a frame is due), e.g. for a live run::

    InputStatus(mode="live", source=url, connection="connected", reconnects=0,
                messages=n, events=m, events_by_type=(("Temp", 10),), bad_messages=0,
                unmatched=0, unmatched_topics=())

Pass `view.tick(engine, status, force=True)` once at the end (with `finished=True` in
the status) so the last frame shows the final counts.  While the view is on, output lines
must not go to stdout (the view owns the terminal): write them to --out only.
"""

from cep.tools.view.app import ReplayView, TerminalView, terminal_console
from cep.tools.view.panels import (
    ContextsPanel,
    Dashboard,
    EventsPanel,
    InputPanel,
    LogPanel,
    RulesPanel,
    WindowsPanel,
)
from cep.tools.view.snapshot import (
    ContextRow,
    GroupRow,
    InputStatus,
    OutputRow,
    RuleRow,
    Snapshot,
    TeeSink,
    WindowedRuleRow,
    WindowInstanceRow,
    WindowRow,
    take_snapshot,
)

__all__ = [
    "ContextRow",
    "ContextsPanel",
    "Dashboard",
    "EventsPanel",
    "GroupRow",
    "InputPanel",
    "InputStatus",
    "LogPanel",
    "OutputRow",
    "ReplayView",
    "RuleRow",
    "RulesPanel",
    "Snapshot",
    "TeeSink",
    "TerminalView",
    "WindowInstanceRow",
    "WindowRow",
    "WindowedRuleRow",
    "WindowsPanel",
    "take_snapshot",
    "terminal_console",
]
