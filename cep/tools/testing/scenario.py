"""The scenario file format (TOML; see docs/scenarios.md) and finding scenario files.

A scenario names a rule set, a trace, the replay options and the expected output
lines. Paths inside it are relative to the scenario file.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


class ScenarioError(Exception):
    """A scenario file that cannot be used (unreadable, invalid TOML, wrong keys)."""


@dataclass(frozen=True)
class ExpectedLine:
    """One expected output line: its JSON value and where it was written."""

    value: dict[str, Any]
    where: str  # FILE:LINE


@dataclass
class Scenario:
    path: Path
    description: str
    rules: list[Path]
    trace: Path
    expected: list[ExpectedLine]
    expected_file: Path | None = None   # None when the lines are inline
    tz: str | None = None
    until: str | float | None = None
    contexts: bool = False
    bad_lines: int = 0
    bad_messages: int = 0

    @property
    def name(self) -> str:
        return str(self.path)


KEYS: dict[str, type | tuple[type, ...]] = {
    "description": str, "rules": (list, str), "trace": str, "expected": str,
    "expected_output": str, "tz": str, "until": (str, int, float, datetime), "contexts": bool,
    "bad_lines": int, "bad_messages": int}


def _until(value: Any) -> str | float | None:
    """`until` as the command line takes it: ISO text, Unix seconds (a number, or digits in
    a string), or a TOML date-time with its offset."""
    if isinstance(value, datetime):
        return value.isoformat()  # without an offset it is read in the scenario's zone
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def find_scenarios(paths: list[str]) -> list[Path]:
    """Files as given; folders become every `*.toml` inside (recursively), in name order."""
    found: list[Path] = []
    for path in paths:
        if os.path.isdir(path):
            inside: list[Path] = []
            for root, _dirs, names in os.walk(path):
                inside.extend(Path(root) / n for n in names if n.endswith(".toml"))
            found.extend(sorted(inside))
        else:
            found.append(Path(path))
    return found


def load_scenario(path: Path, missing_expected_ok: bool = False) -> Scenario:
    """Read and validate a scenario file; raises ScenarioError with FILE: reason.

    With `missing_expected_ok` (for `cep test --update`), an `expected` file that does
    not exist yet reads as no lines.
    """
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    _check_keys(path, data)
    base = path.parent
    rules = data.get("rules")
    if rules is None:
        raise ScenarioError(f"{path}: missing `rules` (a rule file or folder, or a list)")
    rule_list = [rules] if isinstance(rules, str) else rules
    if not rule_list or not all(isinstance(r, str) and r for r in rule_list):
        raise ScenarioError(f"{path}: `rules` must be a path or a non-empty list of paths")
    if "trace" not in data:
        raise ScenarioError(f"{path}: missing `trace` (the trace file to replay)")
    has_file, has_inline = "expected" in data, "expected_output" in data
    if has_file == has_inline:
        raise ScenarioError(f"{path}: give exactly one of `expected` (a file of expected "
                            "output lines) and `expected_output` (the lines inline)")
    for key in ("bad_lines", "bad_messages"):
        if data.get(key, 0) < 0:
            raise ScenarioError(f"{path}: `{key}` cannot be negative")
    expected_file = None
    if has_file:
        expected_file = base / data["expected"]
        try:
            if missing_expected_ok and not expected_file.exists():
                text = ""  # `--update` writes it, once the run has something to write
            else:
                text = expected_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ScenarioError(f"{path}: cannot read expected output {expected_file}: "
                                f"{reason}") from None
        expected = parse_expected(text, str(expected_file), first_line=1)
    else:
        expected = parse_expected(data["expected_output"], str(path),
                                  first_line=_inline_start(path))
    return Scenario(path=path, description=data.get("description", ""),
                    rules=[base / r for r in rule_list], trace=base / data["trace"],
                    expected=expected, expected_file=expected_file, tz=data.get("tz"),
                    until=_until(data.get("until")), contexts=data.get("contexts", False),
                    bad_lines=data.get("bad_lines", 0),
                    bad_messages=data.get("bad_messages", 0))


def _check_keys(path: Path, data: dict[str, Any]) -> None:
    for key, value in data.items():
        kinds = KEYS.get(key)
        if kinds is None:
            known = ", ".join(f"`{k}`" for k in KEYS)
            raise ScenarioError(f"{path}: unknown key `{key}` (known keys: {known})")
        if isinstance(value, bool) and kinds is not bool:
            raise ScenarioError(f"{path}: `{key}` cannot be true or false")
        if not isinstance(value, kinds):
            raise ScenarioError(f"{path}: `{key}` has the wrong kind of value: {value!r}")


def json_lines(text: str) -> list[str]:
    """The lines of a JSON Lines text: cut at `\n` (and `\r\n`) only, as JSON strings may
    hold U+2028 and other characters `str.splitlines` would cut at."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_expected(text: str, name: str, first_line: int) -> list[ExpectedLine]:
    """JSON Lines of output objects; blank lines are skipped."""
    lines: list[ExpectedLine] = []
    for offset, raw in enumerate(json_lines(text)):
        number = first_line + offset
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"{name}:{number}: expected output line is not valid JSON: "
                                f"{exc.msg}") from None
        if not isinstance(value, dict) or "ts" not in value or "kind" not in value:
            raise ScenarioError(f"{name}:{number}: an expected output line must be a JSON "
                                'object with "ts" and "kind"')
        lines.append(ExpectedLine(value, f"{name}:{number}"))
    return lines


def _inline_start(path: Path) -> int:
    """The file line on which the inline `expected_output` text begins (for FILE:LINE)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return 1
    for number, line in enumerate(text.split("\n"), 1):  # TOML's lines end at \n only
        if line.lstrip().startswith("expected_output"):
            # a multi-line string starts on the next line (TOML drops that first newline)
            return number + 1 if line.rstrip().endswith(("'''", '"""')) else number
    return 1
