"""The live display driver: draws a Dashboard with rich.live.Live when a frame is due.

See `cep/tools/view/__init__.py` for the driver API.  Refresh decisions use a
monotonic wall clock here only; the engine never reads the wall clock.  A frame
is due `interval` seconds after the previous one, or later when drawing is slow:
the view spends at most about `max_share` of the wall time drawing.

While the view draws on stderr, lines written to stderr (reports, warnings) are
printed above the frame as plain text with their control characters escaped
(`PlainStderr`; rich's own redirect would decode ANSI colours and links in them),
and the last LOG_LINES of them stay in the frame's log panel: the frame fills the
terminal, so lines printed above it scroll away at once.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import tzinfo
from typing import IO, TYPE_CHECKING, Any, cast

from rich.console import Console
from rich.live import Live
from rich.text import Text

from cep.adapters.badmessages import printable
from cep.runtime.output import Sink
from cep.tools.view.panels import Dashboard
from cep.tools.view.snapshot import (
    FadeTracker,
    InputStatus,
    Snapshot,
    TeeSink,
    take_snapshot,
)

if TYPE_CHECKING:
    from cep.adapters.replay import ReplayStats
    from cep.runtime.engine import Engine

RATE_WINDOW = 5.0    # seconds of wall time the message rate is averaged over
LOG_LINES = 5        # stderr lines the log panel keeps
BOUNDS_BYTES = 64 * 1024  # bytes read at each end of a trace for its first and last times
StatusArg = InputStatus | Callable[[], InputStatus]


def terminal_console() -> Console | None:
    """A console on stderr when it is a terminal, else on /dev/tty; None without a terminal."""
    if sys.stderr.isatty():
        return Console(file=sys.stderr)
    try:
        handle = open("/dev/tty", "w", encoding="utf-8")
    except OSError:
        return None
    if not handle.isatty():
        handle.close()
        return None
    return Console(file=handle)


class PlainStderr(io.TextIOBase):
    """Stands in for sys.stderr while the view is on: each complete line goes above the
    frame (rich's render hook) as plain text, control characters escaped."""

    def __init__(self, console: Console, original: IO[str],
                 log: deque[str] | None = None) -> None:
        super().__init__()
        self.console = console
        self.original = original
        self.log = log                # the last lines, for the log panel (if given)
        self._partial: list[str] = []

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        lines: list[str] = []
        rest = text
        while rest:
            line, newline, rest = rest.partition("\n")
            if not newline:
                self._partial.append(line)
                break
            lines.append("".join(self._partial) + line)
            self._partial.clear()
        if lines:
            self._print(lines)
        return len(text)

    def _print(self, lines: list[str]) -> None:
        if self.log is not None:
            self.log.extend(printable(line) for line in lines if line.strip())
        with self.console:
            self.console.print(Text("\n".join(printable(line) for line in lines)),
                               markup=False, emoji=False, highlight=False, soft_wrap=True)

    def flush(self) -> None:
        if self._partial:
            line = "".join(self._partial)
            self._partial.clear()
            self._print([line])

    def fileno(self) -> int:
        return self.original.fileno()

    def isatty(self) -> bool:
        return self.original.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


class TerminalView:
    """Watch an engine in a terminal: `start()`, `tick(engine, status)` often, `stop(summary)`."""

    def __init__(self, mode: str = "replay", source: str = "", console: Console | None = None,
                 interval: float = 0.25, max_share: float = 0.05, fade_seconds: float = 3.0,
                 clock: Callable[[], float] = time.monotonic, title: str = "") -> None:
        self.mode = mode
        self.source = source
        self.console = console if console is not None else terminal_console()
        self.interval = interval
        self.max_share = max_share
        self.clock = clock
        self.title = title
        self.recorder = TeeSink()
        self.fades = FadeTracker(fade_seconds)
        self.live: Live | None = None
        self.started_at: float | None = None
        self.due = 0.0
        self.frames = 0
        self.drawing = 0.0           # wall seconds spent building and drawing frames
        self.last: Snapshot | None = None
        self._stderr: PlainStderr | None = None
        self._marks: deque[tuple[float, int]] = deque()
        self._rate = 0.0
        self.log: deque[str] = deque(maxlen=LOG_LINES)   # the last stderr lines

    @property
    def available(self) -> bool:
        return self.console is not None

    # ------------------------------------------------------------------ sinks
    def tee(self, sink: Sink | None) -> TeeSink:
        """The sink to give the engine: remembers recent outputs, passes them on to `sink`."""
        self.recorder.sink = sink
        return self.recorder

    # ------------------------------------------------------------------ driving
    def start(self) -> None:
        if self.live is not None or self.console is None:
            return
        self.started_at = self.clock()
        self.due = self.started_at
        redirect = self.console.file is sys.stderr
        self.live = Live(Text("cep: starting…"), console=self.console, auto_refresh=False,
                         transient=False, redirect_stdout=False, redirect_stderr=False,
                         vertical_overflow="crop")
        self.live.start(refresh=True)
        if redirect:
            self._stderr = PlainStderr(self.console, sys.stderr, self.log)
            sys.stderr = self._stderr

    def tick(self, engine: Engine, status: StatusArg, force: bool = False) -> bool:
        """Draw a frame if one is due (or `force`); cheap otherwise. True when it drew."""
        now = self.clock()
        if not force and now < self.due:
            return False
        if self.live is None:
            return False
        resolved = status() if callable(status) else status
        snapshot = self.snapshot(engine, resolved, now)
        self.live.update(Dashboard(snapshot), refresh=True)
        done = self.clock()
        cost = done - now
        self.drawing += cost
        self.frames += 1
        self.due = now + max(self.interval, cost / self.max_share if self.max_share else 0.0)
        return True

    def snapshot(self, engine: Engine, status: InputStatus,
                 now: float | None = None) -> Snapshot:
        """A snapshot of `engine` with the view's own parts: fading instances, rate, elapsed."""
        from dataclasses import replace

        now = self.clock() if now is None else now
        started = self.started_at if self.started_at is not None else now
        snapshot = take_snapshot(engine, status, self.recorder, self.title)
        messages = status.lines if status.mode == "replay" else status.messages
        if status.finished and now > started:
            rate = messages / (now - started)
        else:
            rate = self._rate_over_window(now, messages)
        snapshot = replace(snapshot, closed=self.fades.update(snapshot, now), rate=rate,
                           elapsed=now - started, log=tuple(self.log))
        self.last = snapshot
        return snapshot

    def _rate_over_window(self, now: float, messages: int) -> float:
        """Messages per second over the last RATE_WINDOW seconds of wall time."""
        marks = self._marks
        marks.append((now, messages))
        while len(marks) > 2 and now - marks[1][0] >= RATE_WINDOW:
            marks.popleft()
        span = now - marks[0][0]
        if span < 0.2:
            return self._rate
        self._rate = (messages - marks[0][1]) / span
        return self._rate

    def stop(self, summary: str | None = None) -> None:
        """Leave the last frame on screen, then print `summary` under it (if given)."""
        live, self.live = self.live, None
        proxy, self._stderr = self._stderr, None
        if proxy is not None:
            proxy.flush()
            if sys.stderr is proxy:
                sys.stderr = proxy.original
        if live is not None:
            live.stop()
        if summary and self.console is not None:
            self.console.print(Text(printable(summary)), markup=False, emoji=False,
                               highlight=False, soft_wrap=True)
        if self.console is not None and self.console.file not in (sys.stderr, sys.stdout):
            try:
                self.console.file.flush()
            except (OSError, ValueError):
                pass


def trace_bounds(path: str, tz: tzinfo | None = None,
                 chunk: int = BOUNDS_BYTES) -> tuple[float | None, float | None]:
    """The first and last times of a trace file, read from its first and last `chunk`
    bytes (cheap whatever its size): the `ts` of the first and last lines that have one.
    None for a side that has none there, or whose time has no offset while `tz` is None
    (it could not be read as the replay reads it)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(chunk)
            size = handle.seek(0, os.SEEK_END)
            if size > chunk:
                handle.seek(max(0, size - chunk))
                tail = handle.read(chunk)
            else:
                tail = head
    except OSError:
        return None, None
    first = _first_ts(head.split(b"\n")[:-1] if len(head) == chunk else head.split(b"\n"),
                      tz)
    lines = tail.split(b"\n")
    if size > chunk:
        lines = lines[1:]                 # the first one may be cut
    return first, _first_ts(reversed(lines), tz)


def _first_ts(lines: Any, tz: tzinfo | None) -> float | None:
    from datetime import UTC, timedelta, timezone

    from cep.adapters.trace import BadLine, parse_trace_ts

    for raw in lines:
        raw = raw.strip()
        if not raw.startswith(b"{"):
            continue
        try:
            value = json.loads(raw).get("ts")
        except (ValueError, AttributeError):
            continue
        if value is None:
            continue
        try:
            if tz is not None:
                return parse_trace_ts(value, tz)
            seconds = parse_trace_ts(value, UTC)
            if seconds != parse_trace_ts(value, timezone(timedelta(hours=1))):
                return None               # no offset: the replay reads it in its zone
            return seconds
        except BadLine:
            continue
    return None


class ReplayView(TerminalView):
    """A TerminalView fed by `cep.adapters.replay.replay(..., tick=view.replay_tick)`."""

    def __init__(self, trace_name: str, trace_path: str | None, speed: float | None,
                 console: Console | None = None, until: float | None = None,
                 tz: tzinfo | None = None, **options: Any) -> None:
        """`until`: the replay's --until (it ends there); `tz`: the zone the replay reads
        offset-less trace times in. With both unknown, progress still goes by trace time
        when the trace's times have offsets, else by bytes read."""
        super().__init__("replay", trace_name, console, **options)
        self.speed = speed
        self.total: int | None = None
        self.start_clock: float | None = None
        self.end_clock: float | None = until
        if trace_path is not None:
            try:
                if os.path.isfile(trace_path):
                    self.total = os.path.getsize(trace_path)
            except OSError:
                self.total = None
        if self.total:
            first, last = trace_bounds(cast(str, trace_path), tz)
            self.start_clock = first
            if until is None:
                self.end_clock = last
            elif first is not None and until <= first:
                self.end_clock = None       # it ends before it starts: by bytes read

    def replay_tick(self, engine: Engine, stats: ReplayStats, final: bool = False) -> None:
        self.tick(engine, lambda: self.status(stats, final), force=final)

    def status(self, stats: ReplayStats, final: bool = False) -> InputStatus:
        """InputStatus from a replay's stats (read at tick time)."""
        return InputStatus(
            mode="replay", source=self.source, clock=stats.clock,
            position=stats.position, total=self.total, speed=self.speed,
            lines=stats.lines, messages=stats.lines, events=stats.events,
            events_by_type=tuple(stats.events_by_type.items()),
            bad_lines=stats.bad_lines, bad_messages=stats.bad_messages,
            unmatched=stats.unmatched, unmatched_topics=tuple(stats.unmatched_topics.items()),
            missing_paths=tuple(str(count) for count in stats.missing_paths), finished=final,
            start_clock=self.start_clock, end_clock=self.end_clock)
