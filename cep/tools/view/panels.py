"""The view's panels: each a small rich renderable built from a Snapshot (plain values).

`InputPanel`, `LogPanel` (the last stderr lines; only when there are some),
`ContextsPanel`, `RulesPanel`, `WindowsPanel` (named windows and windowed rules; only
when the rule set has some) and `EventsPanel` render one part of the screen;
`Dashboard` arranges them to fill the terminal exactly (one column up to 159 columns,
two from 160 on, sized by what they hold).  A panel given `rows` shows at most that
many data rows (the last one saying how many more there are; `WindowsPanel` says it on
its bottom border instead, so that each row shows a line) and is exactly `rows + 3`
lines tall (borders and header); without `rows` it shows everything.  Table columns
are as wide as their content and only the widest text columns are cut, when the
width runs out (`fit_widths`); every time is `MM-DD HH:MM:SS` (`fmt_clock`).

Every string that comes from events, payloads, topics, rule names or output, or
the broker is drawn through `plain()`: a `rich.text.Text`, so no markup (`[/]`,
`[link=...]`), no emoji codes and no links are ever interpreted, with control
characters escaped (`\x1b`, `\n`) so nothing reaches the terminal as a control
sequence; tables and lines cut what is too long with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from typing import Any, ClassVar, TypeVar

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cep.adapters.badmessages import printable
from cep.tools.view.snapshot import (
    ContextRow,
    GroupRow,
    OutputRow,
    RuleRow,
    Snapshot,
    WindowedRuleRow,
    WindowInstanceRow,
    WindowRow,
    value_text,
)

WIDE = 160            # from this width on, two columns
INPUT_LINES = 3       # content lines of the input panel
PANEL_CHROME = 3      # top border, header row, bottom border
DASH = "—"
PLAIN_LIMIT = 1000    # characters of one string drawn at most (no terminal is wider)

T = TypeVar("T")


# ---------------------------------------------------------------------- formatting

def plain(value: object, style: str = "") -> Text:
    """A string from the outside as it is: a Text (no markup, emoji codes or links) with its
    control characters escaped, at most PLAIN_LIMIT characters."""
    text = value if isinstance(value, str) else str(value)
    return Text(printable(text[: PLAIN_LIMIT + 1], PLAIN_LIMIT), style=style)


def _local(ts: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(ts, tz)


def fmt_clock(ts: float | None, tz: tzinfo, ref: float | None = None) -> str:
    """`11-20 23:40:05` (month-day hours:minutes:seconds): every time in the view's panels,
    whatever day it is on (`ref` is not used; kept for callers)."""
    if ts is None:
        return DASH
    return _local(ts, tz).strftime("%m-%d %H:%M:%S")


def fmt_datetime(ts: float | None, tz: tzinfo) -> str:
    if ts is None:
        return DASH
    when = _local(ts, tz)
    offset = when.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}" if len(offset) == 5 else offset
    return when.strftime("%a %Y-%m-%d %H:%M:%S") + (f" {offset}" if offset else "")


def fmt_duration(seconds: float) -> str:
    """`45s`, `4m05s`, `1h20m`, `2d03h` (rounded down)."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def fmt_count(n: float) -> str:
    return f"{n:,.0f}"


def fmt_key(key: Any) -> str:
    if key is None:
        return DASH
    if isinstance(key, (tuple, list)):
        return ",".join(str(k) for k in key)
    return str(key)


def _group_key(key: Any) -> str:
    """A GROUP BY value: `kitchen`, `kitchen, 20` for several attributes, `—` for null."""
    if isinstance(key, tuple):
        return ", ".join(DASH if k is None else value_text(k) for k in key)
    return DASH if key is None else value_text(key)


def fmt_speed(speed: float | None) -> str:
    if speed is None:
        return "max speed"
    return f"×{speed:g}"


def _fade_style(fade: float) -> str:
    return "dim" if fade < 0.5 else "dim strike"


CLOCK_WIDTH = 14      # `11-20 23:40:05`
SHRINK_MIN = 8        # a text column is cut to no fewer characters than this (or its header)


def _width(cell: Any) -> int:
    if isinstance(cell, Text):
        return cell.cell_len
    return cell_len(str(cell))


def fit_widths(natural: list[int], minimum: list[int], shrink: list[bool],
               available: int) -> list[int]:
    """Column widths: each column's `natural` width (its widest cell) when they all fit in
    `available`; else the widest shrinkable columns are cut first, down to one level (never
    below their `minimum`), so short columns stay whole and only long text is cut."""
    widths = list(natural)
    excess = sum(widths) - available
    if excess <= 0:
        return widths
    cut = [i for i, can in enumerate(shrink) if can and widths[i] > minimum[i]]
    if not cut:
        return widths
    fixed = sum(widths) - sum(widths[i] for i in cut)
    room = available - fixed

    def used(level: int) -> int:
        return sum(min(natural[i], max(level, minimum[i])) for i in cut)

    low, high = 0, max(natural[i] for i in cut)
    while low < high:                   # the highest level whose widths fit in `room`
        middle = (low + high + 1) // 2
        if used(middle) <= room:
            low = middle
        else:
            high = middle - 1
    for i in cut:
        widths[i] = min(natural[i], max(low, minimum[i]))
    spare = room - sum(widths[i] for i in cut)
    for i in cut:                       # what is left to the first ones still cut
        if spare <= 0:
            break
        if widths[i] < natural[i]:
            widths[i] += 1
            spare -= 1
    return widths


def _natural(columns: list[tuple[str, dict[str, Any]]], rows: list[list[Any]]) -> list[int]:
    """Each column's width with nothing cut: its widest cell, header included."""
    return [max([cell_len(header)] + [_width(row[i]) for row in rows if i < len(row)])
            for i, (header, _options) in enumerate(columns)]


def _natural_width(columns: list[tuple[str, dict[str, Any]]], rows: list[list[Any]],
                   title: str) -> int:
    """A panel's width with nothing cut: its table (and gaps) or its title, and its frame."""
    table = sum(_natural(columns, rows)) + len(columns) - 1
    return max(table, cell_len(title) + 4) + 4


def _table(columns: list[tuple[str, dict[str, Any]]], rows: list[list[Any]],
           width: int) -> Table:
    """A table of `rows`, each column as wide as its widest cell (header included) while the
    columns fit in `width`; else the widest text columns (option `shrink`) are cut first,
    with an ellipsis. Nothing is stretched: what is left of the width stays empty."""
    natural = _natural(columns, rows)
    minimum = [min(natural[i], max(SHRINK_MIN, cell_len(header)))
               for i, (header, _options) in enumerate(columns)]
    shrink = [bool(options.get("shrink")) for _header, options in columns]
    widths = fit_widths(natural, minimum, shrink, max(1, width - (len(columns) - 1)))
    table = Table(box=None, expand=False, pad_edge=False, show_edge=False,
                  padding=(0, 1, 0, 0), header_style="bold")
    for (header, options), column_width in zip(columns, widths):
        table.add_column(header, no_wrap=True, overflow="ellipsis", width=column_width,
                         justify=options.get("justify", "left"))
    for row in rows:
        table.add_row(*row)
    return table


def _panel(body: Any, title: str, rows: int | None, style: str = "") -> Panel:
    height = rows + PANEL_CHROME if rows is not None else None
    return Panel(body, title=plain(title), title_align="left", box=box.ROUNDED,
                 padding=(0, 1), height=height, border_style=style)


def _body(table: Table, empty: bool, note: str, more: int = 0) -> Any:
    """The table, then `… N more` when rows were left out, or a note when it has no rows
    (across the whole width: neither is cut to the first column)."""
    if empty:
        return Group(table, Text(note, style="dim", no_wrap=True, overflow="ellipsis"))
    if more:
        return Group(table, Text(f"… {more} more", style="italic", no_wrap=True,
                                 overflow="ellipsis"))
    return table


def _styled(cell: Any, style: str) -> Any:
    """A cell with `style` over its own (for a fading row)."""
    if not style:
        return cell
    text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
    text.stylize(style)
    return text


def _limit(items: list[T], rows: int | None) -> tuple[list[T], int]:
    """At most `rows` items; when some are left out, the last row says how many."""
    if rows is None or len(items) <= rows:
        return items, 0
    keep = max(0, rows - 1)
    return items[:keep], len(items) - keep


# ---------------------------------------------------------------------- panels

class InputPanel:
    """Where input comes from: trace progress or broker state, rates, counts, problems."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        snap = self.snapshot
        status = snap.input
        inner = max(10, options.max_width - 4)
        lines = [self._first_line(inner), self._rates_line(), self._problems_line()]
        for line in lines:
            line.no_wrap = True
            line.overflow = "ellipsis"
        yield Panel(Group(*lines), title=plain(self._title(inner - 2)), title_align="left",
                    box=box.ROUNDED, padding=(0, 1), height=INPUT_LINES + 2,
                    border_style="green" if status.finished else "blue")

    def _title(self, width: int) -> str:
        """Command, source and state; a long source is cut from the left so the state stays."""
        snap = self.snapshot
        status = snap.input
        head = "cep run" if status.mode == "live" else "cep replay"
        tail = "".join(f" · {part}" for part in (snap.title, "finished" if status.finished else "")
                       if part)
        if not status.source:
            return head + tail
        room = width - len(head) - len(tail) - len(" · ")
        source = printable(status.source)
        if len(source) > room:
            source = "…" + source[len(source) - max(room - 1, 8):]
        return f"{head} · {source}{tail}"

    def _first_line(self, width: int) -> Text:
        snap = self.snapshot
        status = snap.input
        clock = fmt_datetime(snap.now, snap.tz) if snap.started else "not started"
        line = Text()
        if status.mode == "live":
            state = status.connection or "?"
            style = "green" if state == "connected" else "yellow"
            line.append_text(plain(state, style))
            line.append(f" · reconnects {status.reconnects} · ")
            line.append(clock, style="bold")
            if status.problem and state != "connected":
                line.append(" · ")
                line.append_text(plain(status.problem, "yellow"))
            if status.state:
                line.append(" · ")
                line.append_text(plain(status.state, "cyan"))
            return line
        tail = f"  {clock}  {fmt_speed(status.speed)}"
        progress = status.progress
        if progress is None:
            line.append("reading", style="cyan")
            line.append(tail)
            return line
        percent = f" {progress * 100:3.0f}%"
        bar_width = max(8, min(40, width - len(tail) - len(percent)))
        done = round(progress * bar_width)
        line.append("█" * done, style="green" if status.finished else "cyan")
        line.append("░" * (bar_width - done), style="bright_black")
        line.append(percent)
        line.append("  ")
        line.append(clock, style="bold")
        line.append(f"  {fmt_speed(status.speed)}")
        return line

    def _rates_line(self) -> Text:
        snap = self.snapshot
        status = snap.input
        line = Text()
        rate = f"{snap.rate:.1f}" if 0 < snap.rate < 10 else fmt_count(snap.rate)
        line.append(f"{rate} msg/s", style="bold")
        if status.backlog_limit:
            full = status.backlog / status.backlog_limit
            line.append(" · ")
            line.append(f"backlog {fmt_count(status.backlog)}",
                        style="red" if full >= 1 else "yellow" if full >= 0.5 else "")
            line.append(f" (peak {fmt_count(status.backlog_peak)} of "
                        f"{fmt_count(status.backlog_limit)})")
        noun = "lines" if status.mode == "replay" else "messages"
        count = status.lines if status.mode == "replay" else status.messages
        line.append(f" · {fmt_count(count)} {noun} · {fmt_count(status.events)} events")
        if status.events_by_type:
            ordered = sorted(status.events_by_type, key=lambda item: (-item[1], item[0]))
            line.append_text(plain(": " + ", ".join(f"{name} {fmt_count(n)}"
                                                    for name, n in ordered[:50])))
        return line

    def _problems_line(self) -> Text:
        status = self.snapshot.input
        line = Text()
        bad_style = "red" if status.bad_lines or status.bad_messages else ""
        if status.mode == "replay":
            line.append(f"bad lines {fmt_count(status.bad_lines)} · ", style=bad_style)
        line.append(f"bad messages {fmt_count(status.bad_messages)}", style=bad_style)
        line.append(" · ")
        line.append(f"unmatched {fmt_count(status.unmatched)}",
                    style="yellow" if status.unmatched else "")
        if status.unmatched_topics:
            ordered = sorted(status.unmatched_topics, key=lambda item: (-item[1], item[0]))
            line.append_text(plain(" (" + ", ".join(f"{topic[:PLAIN_LIMIT]} {fmt_count(n)}"
                                                    for topic, n in ordered[:20]) + ")"))
        if status.missing_paths:
            line.append(" · ")
            line.append("missing paths", style="yellow")
            line.append_text(plain(": " + "; ".join(p[:PLAIN_LIMIT]
                                                     for p in status.missing_paths[:10])))
        line.append(f" · outputs {fmt_count(self.snapshot.outputs_total)}")
        return line


class ContextsPanel:
    """Open context instances (newest first), then the ones that just closed, fading."""

    def __init__(self, snapshot: Snapshot, rows: int | None = None) -> None:
        self.snapshot = snapshot
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        snap = self.snapshot
        wide = options.max_width >= 100
        shown, more = self._shown()
        cells = []
        for row in shown:
            faded = _fade_style(row.fade) if row.closed_at is not None else ""
            cells.append([_styled(cell, faded) for cell in self._cells(row, wide)])
        table = _table(self._columns(wide), cells, options.max_width - 4)
        yield _panel(_body(table, not snap.contexts and not snap.closed,
                           "no open context instances", more), self._title(), self.rows,
                     "magenta")

    def natural_width(self) -> int:
        """How wide it would be with nothing cut (without the `kind` column)."""
        cells = [self._cells(row, False) for row in self._shown()[0]]
        return _natural_width(self._columns(False), cells, self._title())

    def _title(self) -> str:
        return f"Contexts · {self.snapshot.contexts_open} open"

    @staticmethod
    def _columns(wide: bool) -> list[tuple[str, dict[str, Any]]]:
        columns: list[tuple[str, dict[str, Any]]] = [
            ("context", {"shrink": True}), ("key", {"shrink": True}), ("opened", {}),
            ("closes", {}), ("in", {}), ("policy", {"shrink": True})]
        if wide:
            columns.append(("kind", {}))
        columns.append(("partial", {"justify": "right"}))
        return columns

    def _shown(self) -> tuple[list[ContextRow], int]:
        snap = self.snapshot
        items: list[ContextRow] = list(snap.contexts) + list(snap.closed)
        hidden_open = snap.contexts_open - len(snap.contexts)
        shown, more = _limit(items, self.rows)
        if self.rows is not None and not more and hidden_open > 0 and len(shown) >= self.rows:
            shown, more = shown[:-1], 1
        return shown, more + max(0, hidden_open)

    def _cells(self, row: ContextRow, wide: bool) -> list[Any]:
        snap = self.snapshot
        now, tz = snap.now, snap.tz
        if row.closed_at is not None:
            closes = fmt_clock(row.closed_at, tz, now)
            left = "closed"
        else:
            closes = fmt_clock(row.closes_at, tz, now)
            left = fmt_duration(row.closes_at - now) if row.closes_at is not None else DASH
        cells: list[Any] = [plain(row.context), plain(fmt_key(row.key)),
                            fmt_clock(row.opened_at, tz, now), closes, left,
                            plain(row.policy or DASH)]
        if wide:
            cells.append(plain(row.kind))
        cells.append(str(row.partial_matches) if row.closed_at is None else DASH)
        return cells


class RulesPanel:
    """Each rule: its context, live partial matches, matches so far, when it last fired."""

    def __init__(self, snapshot: Snapshot, rows: int | None = None) -> None:
        self.snapshot = snapshot
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        snap = self.snapshot
        shown, more = _limit(list(snap.rules), self.rows)
        table = _table(self.COLUMNS, [self._cells(rule) for rule in shown],
                       options.max_width - 4)
        yield _panel(_body(table, not snap.rules, "no rules", more),
                     f"Rules · {len(snap.rules)}", self.rows, "cyan")

    COLUMNS: ClassVar[list[tuple[str, dict[str, Any]]]] = [
        ("rule", {"shrink": True}), ("context", {"shrink": True}),
        ("partial", {"justify": "right"}), ("matches", {"justify": "right"}), ("last fired", {})]

    def natural_width(self) -> int:
        """How wide it would be with nothing cut."""
        shown, _more = _limit(list(self.snapshot.rules), self.rows)
        return _natural_width(self.COLUMNS, [self._cells(rule) for rule in shown],
                              f"Rules · {len(self.snapshot.rules)}")

    def _cells(self, rule: RuleRow) -> list[Any]:
        snap = self.snapshot
        name = plain(rule.name, style="bold" if rule.matches else "")
        if rule.kind.startswith("on "):
            name.append_text(plain(f" ({rule.kind})", style="dim"))
        if rule.last_fired is None:
            last = Text(DASH, style="dim")
        else:
            ago = snap.now - rule.last_fired
            last = Text(fmt_clock(rule.last_fired, snap.tz, snap.now))
            last.append(f" {fmt_duration(ago)} ago" if ago >= 1 else " now",
                        style="dim" if ago >= 1 else "green")
        return [name, plain(rule.context or DASH), str(rule.partial_matches),
                fmt_count(rule.matches), last]


class WindowsPanel:
    """Named windows (view, events held, the newest event), then windowed rules: per context
    instance (when the rule has a context) the largest groups and their aggregates."""

    def __init__(self, snapshot: Snapshot, rows: int | None = None) -> None:
        self.snapshot = snapshot
        self.rows = rows

    @staticmethod
    def shown(snapshot: Snapshot) -> bool:
        """Whether the dashboard shows this panel: the rule set has windows."""
        return bool(snapshot.windows or snapshot.windowed)

    @staticmethod
    def need(snapshot: Snapshot) -> int:
        """The data rows it would show without a limit."""
        return len(WindowsPanel._lines(snapshot, wide=False))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        snap = self.snapshot
        lines = self._lines(snap, wide=options.max_width >= 100)
        shown, more = lines, 0
        if self.rows is not None and len(lines) > self.rows:
            # its lines are nested (a rule, its instances, their groups): every row shows one
            # and the bottom border says how many more there are
            shown, more = lines[: max(0, self.rows)], len(lines) - max(0, self.rows)
        table = _table(self.COLUMNS, shown, options.max_width - 4)
        panel = _panel(_body(table, not lines, "no named windows or windowed rules"),
                       self._title(snap), self.rows, "green")
        if more:
            panel.subtitle = Text(f"… {more} more", style="italic")
            panel.subtitle_align = "left"
        yield panel

    COLUMNS: ClassVar[list[tuple[str, dict[str, Any]]]] = [
        ("window / rule", {"shrink": True}), ("view / group", {"shrink": True}),
        ("events", {"justify": "right"}), ("newest event / aggregates", {"shrink": True})]

    def natural_width(self) -> int:
        """How wide it would be with nothing cut (without what fills a named window)."""
        lines = self._lines(self.snapshot, wide=False)
        if self.rows is not None:
            lines = lines[: max(0, self.rows)]
        return _natural_width(self.COLUMNS, lines, self._title(self.snapshot))

    @staticmethod
    def _title(snap: Snapshot) -> str:
        parts = []
        if snap.windows:
            parts.append(f"{len(snap.windows)} named")
        if snap.windowed:
            count = len(snap.windowed)
            parts.append(f"{count} windowed rule{'s' if count != 1 else ''}")
        return " · ".join(["Windows", *parts])

    # every line is its cells: window or rule, view or group, events, detail
    @staticmethod
    def _lines(snap: Snapshot, wide: bool) -> list[list[Any]]:
        lines: list[list[Any]] = [WindowsPanel._window(snap, row, wide) for row in snap.windows]
        for rule in snap.windowed:
            lines.extend(WindowsPanel._rule(rule))
        return lines

    @staticmethod
    def _window(snap: Snapshot, row: WindowRow, wide: bool) -> list[Any]:
        if row.newest_ts is None:
            detail = Text("empty", style="dim")
        else:
            detail = Text(fmt_clock(row.newest_ts, snap.tz, snap.now), style="dim")
            detail.append(" ")
            detail.append_text(plain(row.newest))
        view = plain(row.view)
        if wide and row.source:   # what fills it, as declared: `FROM Presence(state = 'home')`
            view.append_text(plain(f" FROM {row.source}", style="dim"))
        return [plain(row.name, style="bold"), view, fmt_count(row.size), detail]

    @staticmethod
    def _rule(rule: WindowedRuleRow) -> list[list[Any]]:
        lines: list[list[Any]] = []
        grouped = bool(rule.group_by)
        by = f" by {', '.join(rule.group_by)}" if grouped else ""
        if rule.size == 0:
            detail = Text("no events held", style="dim")
        elif rule.context is not None:
            count = rule.instances_total
            detail = plain(f"in {count} instance{'s' if count != 1 else ''} of {rule.context}",
                           style="dim")
        elif grouped:
            groups = rule.instances[0].groups_total if rule.instances else 0
            detail = plain(f"{groups} group{'s' if groups != 1 else ''}{by}", style="dim")
        else:
            detail = WindowsPanel._values(rule, rule.instances[0].groups[0]) \
                if rule.instances and rule.instances[0].groups else Text()
        lines.append([plain(rule.name, style="bold"), plain(rule.source),
                      fmt_count(rule.size), detail])
        if rule.size == 0:
            return lines
        for instance in rule.instances:
            indent = ""
            if rule.context is not None:
                indent = "  "
                lines.append(WindowsPanel._instance(rule, instance, by))
            if not grouped:
                continue              # the one group's values are on the rule's or instance's line
            for group in instance.groups:
                lines.append(["", plain(f"{indent}  {_group_key(group.key)}"),
                              fmt_count(group.size), WindowsPanel._values(rule, group)])
            hidden = instance.groups_total - len(instance.groups)
            if hidden > 0:
                lines.append(WindowsPanel._more(f"{indent}  ", hidden, "group"))
        hidden = rule.instances_total - len(rule.instances)
        if hidden > 0:
            lines.append(WindowsPanel._more("  ", hidden, "instance"))
        return lines

    @staticmethod
    def _more(indent: str, count: int, what: str) -> list[Any]:
        """`…` where the hidden ones would be, `7 more groups` where there is room."""
        return ["", Text(f"{indent}…", style="italic"), "",
                Text(f"{count} more {what}{'s' if count != 1 else ''}", style="italic")]

    @staticmethod
    def _instance(rule: WindowedRuleRow, instance: WindowInstanceRow, by: str) -> list[Any]:
        name = instance.context or DASH
        where = name if instance.key is None else f"{name} {_group_key(instance.key)}"
        if rule.group_by:
            count = instance.groups_total
            detail = plain(f"{count} group{'s' if count != 1 else ''}{by}", style="dim")
        else:
            detail = WindowsPanel._values(rule, instance.groups[0]) \
                if instance.groups else Text()
        return ["", plain(f"  {where}"), fmt_count(instance.size), detail]

    @staticmethod
    def _values(rule: WindowedRuleRow, group: GroupRow) -> Text:
        """`avg(value)=23, count(*)=2`; without aggregates, the group's size says it all."""
        return plain(", ".join(f"{label}={value}"
                               for label, value in zip(rule.labels, group.values)))


class EventsPanel:
    """The most recent fired complex events and actions, newest first."""

    def __init__(self, snapshot: Snapshot, rows: int | None = None) -> None:
        self.snapshot = snapshot
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        snap = self.snapshot
        rows = list(snap.outputs)
        limit = self.rows
        if limit is not None and len(rows) > limit:
            rows = rows[:limit]   # older ones are simply not shown: no "more" row
        table = _table(self.COLUMNS, [self._cells(output) for output in rows],
                       options.max_width - 4)
        yield _panel(_body(table, not snap.outputs, "nothing fired yet"), self.title(snap),
                     self.rows, "yellow")

    COLUMNS: ClassVar[list[tuple[str, dict[str, Any]]]] = [
        ("time", {}), ("rule", {"shrink": True}), ("event / action", {"shrink": True}),
        ("attributes / payload", {"shrink": True})]

    def natural_width(self) -> int:
        """How wide it would be with nothing cut."""
        rows = list(self.snapshot.outputs)
        if self.rows is not None:
            rows = rows[: self.rows]
        return _natural_width(self.COLUMNS, [self._cells(output) for output in rows],
                              self.title(self.snapshot))

    @staticmethod
    def title(snap: Snapshot) -> str:
        """`Fired events and actions · 13`: what it lists (the context lines of --contexts
        are output lines too, but not listed here: they are counted apart)."""
        title = f"Fired events and actions · {fmt_count(snap.fired)}"
        context_lines = snap.outputs_total - snap.fired
        if context_lines > 0:
            noun = "line" if context_lines == 1 else "lines"
            title += f" (+{fmt_count(context_lines)} context {noun} not shown)"
        return title

    def _cells(self, output: OutputRow) -> list[Any]:
        snap = self.snapshot
        time = fmt_clock(output.ts, snap.tz, snap.now)
        if output.kind == "publish":
            return [time, plain(output.rule), plain(f"→ {output.what}", style="cyan"),
                    plain(output.detail, style="cyan")]
        return [time, plain(output.rule), plain(output.what, style="bold yellow"),
                plain(output.detail)]


class LogPanel:
    """The last lines written to stderr while the view is on (warnings, bad-line reports),
    oldest first: printed above the frame, they would scroll away at once."""

    def __init__(self, snapshot: Snapshot, rows: int | None = None) -> None:
        self.snapshot = snapshot
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        log = list(self.snapshot.log)
        if self.rows is not None:
            log = log[len(log) - self.rows:] if self.rows > 0 else []
        lines = []
        for line in log:
            text = plain(line, "yellow")
            text.no_wrap = True
            text.overflow = "ellipsis"
            lines.append(text)
        height = len(lines) + 2 if self.rows is None else self.rows + 2
        yield Panel(Group(*lines), title=plain("Log · last lines of stderr"),
                    title_align="left", box=box.ROUNDED, padding=(0, 1), height=height,
                    border_style="yellow")


# ---------------------------------------------------------------------- layout

def share_rows(available: int, needs: Iterable[int], minimum: Iterable[int],
               rest: int = -1) -> list[int]:
    """Split `available` rows among panels: each gets its minimum, then rows go one at a
    time to the panel furthest below its need; whatever is left goes to panel `rest`."""
    needs = list(needs)
    rows = list(minimum)
    left = available - sum(rows)
    while left > 0:
        wanting = [i for i, need in enumerate(needs) if rows[i] < need]
        if not wanting:
            rows[rest] += left
            break
        i = min(wanting, key=lambda j: (rows[j], j))
        rows[i] += 1
        left -= 1
    return rows


def split_width(available: int, left: int, right: int, least: int = 40) -> tuple[int, int]:
    """Two columns' widths in `available`: each its `left`/`right` need when both fit (the
    rest shared equally); else a column that needs less than half gets what it needs and the
    other the rest; else halves. Neither gets less than `least` (when there is room)."""
    half = available // 2
    if left + right <= available:
        left_width = left + (available - left - right) // 2
    elif left <= half:
        left_width = left
    elif right <= available - half:
        left_width = available - right
    else:
        left_width = half
    least = min(least, half)
    left_width = max(least, min(left_width, available - least))
    return left_width, available - left_width


class Dashboard:
    """The whole frame: input on top, then contexts, rules, windows (when the rule set has
    named windows or windowed rules) and fired events.

    It is `height` lines tall (default: the console's height: the frame fills the
    terminal, its first row too). When the snapshot has stderr lines (`log`), a log
    panel under the input panel shows the last of them (up to five, fewer when the
    terminal is short).
    """

    def __init__(self, snapshot: Snapshot, height: int | None = None) -> None:
        self.snapshot = snapshot
        self.height = height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        snap = self.snapshot
        height = self.height or max(12, options.height or console.height)
        width = options.max_width
        body = height - (INPUT_LINES + 2)
        yield InputPanel(snap)
        if snap.log:
            # the other panels keep a row each and two more (up to five lines on 80x30,
            # three on 80x24, none below 80x21)
            panels = 2 if width >= WIDE else 3
            if WindowsPanel.shown(snap):
                panels += 1
            rest = panels * (PANEL_CHROME + 1) + 2
            log_rows = min(len(snap.log), body - rest - 2)
            if log_rows > 0:
                yield LogPanel(snap, log_rows)
                body -= log_rows + 2
        context_need = max(1, len(snap.contexts) + len(snap.closed) +
                           (1 if snap.contexts_open > len(snap.contexts) else 0))
        rules_need = max(1, len(snap.rules))
        events_need = max(1, len(snap.outputs))
        windows = WindowsPanel.shown(snap)
        windows_need = max(1, WindowsPanel.need(snap))
        if width >= WIDE:
            needs, minimum = [context_need, rules_need], [1, 1]
            if windows and body - 3 * PANEL_CHROME >= 3:
                needs.append(windows_need)
                minimum.append(1)
            left = share_rows(body - len(needs) * PANEL_CHROME, needs, minimum, rest=0)
            right = body - PANEL_CHROME
            column: list[Any] = [ContextsPanel(snap, left[0]), RulesPanel(snap, left[1])]
            if len(left) > 2:
                column.append(WindowsPanel(snap, left[2]))
            events = EventsPanel(snap, max(1, right))
            left_width, right_width = split_width(
                width - 1, max(panel.natural_width() for panel in column),
                events.natural_width())
            grid = Table.grid(expand=True, padding=(0, 1))
            grid.add_column(width=left_width)
            grid.add_column(width=right_width)
            grid.add_row(Group(*column), events)
            yield grid
            return
        if windows:
            # the windows and the fired events get two rows each if they can, else one; with
            # less room than that the windows are left out
            available = body - 4 * PANEL_CHROME
            minimum = [1, 1, min(2, windows_need), min(2, events_need)]
            if sum(minimum) > available:
                minimum = [1, 1, 1, 1]
            if sum(minimum) <= available:
                rows = share_rows(available, [context_need, rules_need, windows_need,
                                              events_need], minimum)
                yield ContextsPanel(snap, rows[0])
                yield RulesPanel(snap, rows[1])
                yield WindowsPanel(snap, rows[2])
                yield EventsPanel(snap, rows[3])
                return
        minimum = [1, 1, min(3, events_need)]
        if sum(minimum) > body - 3 * PANEL_CHROME:
            minimum = [1, 1, 1]
        rows = share_rows(body - 3 * PANEL_CHROME, [context_need, rules_need, events_need],
                          minimum)
        yield ContextsPanel(snap, rows[0])
        yield RulesPanel(snap, rows[1])
        yield EventsPanel(snap, rows[2])
