"""JSON with orjson when it is installed, else the standard library, behaving alike.

Both refuse NaN/Infinity (orjson always does; `json` is told to), so a value read
through either is finite and a trace reads the same on every installation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["HAVE_ORJSON", "dumps_compact", "loads"]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _std_loads(data: bytes | bytearray | memoryview | str) -> Any:
    # Decode as UTF-8 ourselves: json.loads would also guess UTF-16/32, which orjson refuses.
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    return json.loads(text, parse_constant=_refuse_constant)


_std_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _std_dumps_compact(value: Any) -> bytes:
    return _std_encoder.encode(value).encode("utf-8")


loads: Callable[[Any], Any]
"""Parse JSON from bytes or str; raises ValueError on anything invalid."""

dumps_compact: Callable[[Any], bytes]
"""Compact UTF-8 JSON text (no spaces, non-ASCII kept) as bytes."""

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by the fallback test
    HAVE_ORJSON = False
    loads, dumps_compact = _std_loads, _std_dumps_compact
else:
    HAVE_ORJSON = True
    loads, dumps_compact = orjson.loads, orjson.dumps
