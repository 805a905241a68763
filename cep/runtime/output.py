"""Output records and their JSON Lines form (see cli.md, "Output lines").

The engine emits plain dicts with `ts` as Unix seconds; `OutputWriter` turns
them into lines with ISO-8601 timestamps in the rules' time zone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import IO, Any

from cep.language.catalog import TIMESTAMP, Catalog
from cep.runtime.events import Event

Output = dict[str, Any]
Sink = Callable[[Output], None]


def format_ts(ts: float, tz: tzinfo) -> str:
    """ISO-8601 with the zone's offset, to the millisecond."""
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")


class JsonValues:
    """Engine values → JSON values: events become objects, timestamps ISO strings."""

    def __init__(self, catalog: Catalog, tz: tzinfo) -> None:
        self.tz = tz
        self.types = {name: info.attrs for name, info in catalog.events.items()}

    def attrs(self, values: dict[str, Any], types: dict[str, str] | None) -> dict[str, Any]:
        out = {}
        for name, value in values.items():
            kind = type(value)
            if kind is str or kind is bool or value is None:  # the usual values, as they are
                out[name] = value
            elif types is not None and types.get(name) == TIMESTAMP and \
                    isinstance(value, (int, float)) and not isinstance(value, bool):
                out[name] = format_ts(value, self.tz)
            elif kind is int or kind is float:
                out[name] = value
            else:
                out[name] = self.value(value)
        return out

    def value(self, value: Any) -> Any:
        if isinstance(value, Event):
            return self.attrs(value.attrs, self.types.get(value.type))
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value


# json.dumps(value, ensure_ascii=False) builds an encoder per call; one is enough.
_ENCODER = json.JSONEncoder(ensure_ascii=False)


class OutputFailed(Exception):
    """Output lines could not be written (a closed pipe, a full disk).

    The fault is where the output goes, not a rule's: the engine lets it through, the run
    stops, and the command says so (quietly for a reader that closed the pipe, `| head`).
    """

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause.strerror or str(cause))
        self.closed_pipe = isinstance(cause, BrokenPipeError)


def finish_output(out: IO[str] | None) -> None:
    """Close an output file, or flush standard output, raising OutputFailed when the last
    lines cannot be written (buffered lines meet a full disk only here)."""
    if out is None:
        return
    try:
        if out is sys.stdout:
            out.flush()
        else:
            out.close()
    except OSError as exc:
        raise OutputFailed(exc) from exc


class OutputWriter:
    """Writes output records as JSON Lines (flushing after each, so tails see them live)."""

    def __init__(self, out: IO[str], tz: tzinfo, flush: bool = True) -> None:
        self.out = out
        self.tz = tz
        self.flush = flush

    def __call__(self, record: Output) -> None:
        line = dict(record)
        line["ts"] = format_ts(record["ts"], self.tz)
        try:
            self.out.write(_ENCODER.encode(line) + "\n")
            if self.flush:
                self.out.flush()
        except OSError as exc:
            raise OutputFailed(exc) from exc
