"""Comparing expected with produced output lines, and showing the difference to people.

Lines are compared as JSON values with their types (`12` and `12.0` differ; key order
does not matter). The difference lists, in time order, lines that are *missing* (expected,
not produced), *unexpected* (produced, not expected), *different* (the same kind of
line from the same rule, changed: each changed field with both values) and *moved* (an
expected line produced exactly, but elsewhere in the order).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

MISSING, UNEXPECTED, DIFFERENT, MOVED = "missing", "unexpected", "different", "moved"


@dataclass(frozen=True)
class Difference:
    kind: str                          # missing | unexpected | different | moved
    expected: dict[str, Any] | None
    produced: dict[str, Any] | None
    where: str = ""                    # FILE:LINE of the expected line, if any
    position: int = 0                  # index in the produced output (for ordering)

    @property
    def line(self) -> dict[str, Any]:
        """The line this difference is about: the expected one, else the produced one."""
        line = self.expected if self.expected is not None else self.produced
        assert line is not None, "a difference has an expected or a produced line"
        return line


def canonical(value: Any) -> str:
    """A line's JSON text with sorted keys: equal texts mean equal values and types."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def identity(line: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two lines 'the same line, changed' rather than two different lines."""
    kind = line.get("kind")
    if kind in ("context-start", "context-end"):
        return (kind, line.get("context"))
    if kind == "publish":
        return (kind, line.get("rule"), line.get("topic"))
    return (kind, line.get("rule"))


def compare(expected: list[dict[str, Any]], produced: list[dict[str, Any]],
            where: list[str]) -> list[Difference]:
    """Every difference between the two sequences (empty when they are equal)."""
    a = [canonical(line) for line in expected]
    b = [canonical(line) for line in produced]
    found: list[Difference] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        found.extend(_pair_block(expected, produced, where, range(i1, i2), range(j1, j2)))
    return _moved(found)


def _moved(found: list[Difference]) -> list[Difference]:
    """A missing line that was produced exactly elsewhere is one moved line, not two."""
    unexpected: dict[str, list[int]] = {}
    for index, d in enumerate(found):
        if d.kind == UNEXPECTED:
            unexpected.setdefault(canonical(d.produced), []).append(index)
    if not unexpected:
        return found
    replaced: dict[int, Difference] = {}
    dropped: set[int] = set()
    for index, d in enumerate(found):
        if d.kind != MISSING:
            continue
        twins = unexpected.get(canonical(d.expected))
        if twins:
            twin = twins.pop(0)
            dropped.add(twin)
            replaced[index] = Difference(MOVED, d.expected, found[twin].produced, d.where,
                                         found[twin].position)
    return [replaced.get(i, d) for i, d in enumerate(found) if i not in dropped]


def _pair_block(expected: list[dict[str, Any]], produced: list[dict[str, Any]],
                where: list[str], exp_range: range, prod_range: range) -> list[Difference]:
    """Within one changed block, pair lines of the same identity in order as 'different'."""
    unpaired = list(prod_range)
    out: list[Difference] = []
    for i in exp_range:
        key = identity(expected[i])
        j = next((j for j in unpaired if identity(produced[j]) == key), None)
        if j is None:
            position = unpaired[0] if unpaired else prod_range.stop
            out.append(Difference(MISSING, expected[i], None, where[i], position))
        else:
            unpaired.remove(j)
            out.append(Difference(DIFFERENT, expected[i], produced[j], where[i], j))
    out.extend(Difference(UNEXPECTED, None, produced[j], "", j) for j in unpaired)
    out.sort(key=lambda d: (d.position, d.kind != MISSING))
    return out


def changed_fields(expected: Any, produced: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, expected value, produced value) for every field that differs."""
    if isinstance(expected, dict) and isinstance(produced, dict):
        out = []
        for key in list(expected) + [k for k in produced if k not in expected]:
            sub = f"{path}.{key}" if path else key
            out.extend(changed_fields(expected.get(key, _ABSENT), produced.get(key, _ABSENT),
                                      sub))
        return out
    if isinstance(expected, list) and isinstance(produced, list) and \
            len(expected) == len(produced):
        out = []
        for index, (x, y) in enumerate(zip(expected, produced)):
            out.extend(changed_fields(x, y, f"{path}[{index}]"))
        return out
    if canonical(expected) != canonical(produced) or \
            (expected is _ABSENT) != (produced is _ABSENT):
        return [(path, expected, produced)]
    return []


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT: Any = _Absent()


def show_value(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value, ensure_ascii=False)


def summarize(line: dict[str, Any]) -> str:
    """A short, readable form of an output line (its time first)."""
    kind = line.get("kind")
    ts = line.get("ts", "?")
    if kind == "event":
        text = (f"event {line.get('rule')} -> {line.get('type')} "
                f"{show_value(line.get('attrs'))}")
    elif kind == "publish":
        text = f"publish {line.get('topic')} {show_value(line.get('payload'))}"
        extras = [f"qos {line['qos']}"] if line.get("qos") else []
        if line.get("retain"):
            extras.append("retain")
        text += "".join(f", {e}" for e in extras) + f" (rule {line.get('rule')})"
    elif kind in ("context-start", "context-end"):
        text = f"{kind} {line.get('context')}"
    else:
        rest = {k: v for k, v in line.items() if k not in ("ts", "kind")}
        text = f"{kind} {show_value(rest)}"
    key = line.get("key")
    if key is not None and kind != "publish":
        text += f" key={show_value(key)}"
    return f"{ts}  {text}"


def render(differences: list[Difference]) -> list[str]:
    """The differences as indented report lines."""
    out = []
    for d in differences:
        label = f"{d.kind:<10}"
        if d.kind == DIFFERENT:
            out.append(f"  {label}  {summarize(d.expected or {})}   [{d.where}]")
            for path, want, got in changed_fields(d.expected, d.produced):
                out.append(f"{'':16}{path}: expected {show_value(want)}, "
                           f"got {show_value(got)}")
        elif d.kind == MISSING:
            out.append(f"  {label}  {summarize(d.line)}   [{d.where}]")
        elif d.kind == MOVED:
            out.append(f"  {label}  {summarize(d.line)}   [{d.where}] produced as output "
                       f"line {d.position + 1}")
        else:
            out.append(f"  {label}  {summarize(d.line)}")
    return out
