"""Running scenarios: replay each one's trace through its rules and compare the output.

Nothing here touches the wall clock except the replay's own timing statistic.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cep.language.files import replace_file
from cep.tools.testing.diff import Difference, compare, render
from cep.tools.testing.scenario import Scenario, ScenarioError, json_lines, load_scenario


@dataclass
class Outcome:
    """What running one scenario gave."""

    scenario: Scenario
    produced: list[dict[str, Any]] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # rule errors, bad-line counts
    not_run: str = ""                                   # why nothing was replayed, if so
    reports: list[str] = field(default_factory=list)   # what the replay said on stderr
    text: str = ""                                      # the produced output, as written

    @property
    def passed(self) -> bool:
        return not self.differences and not self.problems and not self.not_run


def run_scenario(scenario: Scenario) -> Outcome:
    """Replay the scenario; raises ScenarioError when its files cannot be used."""
    from cep.adapters.replay import replay
    from cep.adapters.trace import BadLine, parse_trace_ts
    from cep.checks.loader import expand_paths, load_paths
    from cep.language.timezones import ZONE_HELP, get_zone
    from cep.runtime.engine import EngineError
    from cep.runtime.output import OutputWriter

    outcome = Outcome(scenario)
    paths = expand_paths([str(p) for p in scenario.rules])
    if not paths:
        raise ScenarioError(f"{scenario.path}: `rules` names no rule files")
    try:
        loaded = load_paths(paths)
    except OSError as exc:
        raise ScenarioError(f"{scenario.path}: cannot read rules {exc.filename}: "
                            f"{exc.strerror}") from None
    if not loaded.ok:
        outcome.problems.extend(d.render(loaded.sources) for d in loaded.diagnostics.sorted()
                                if d.is_error)
        outcome.not_run = (f"the rules have {_plural(len(loaded.diagnostics.errors), 'error')}; "
                           "nothing was run")
        return outcome
    zone_name = scenario.tz or loaded.catalog.timezone
    tz = get_zone(zone_name)
    if tz is None:
        raise ScenarioError(f"{scenario.path}: unknown time zone {zone_name[:80]!r}: "
                            f"{ZONE_HELP}")
    until: float | None = None
    if scenario.until is not None:
        try:
            until = parse_trace_ts(scenario.until, tz)
        except BadLine as exc:
            raise ScenarioError(f"{scenario.path}: `until`: {exc}") from None
    if not scenario.trace.is_file():
        raise ScenarioError(f"{scenario.path}: cannot read trace {scenario.trace}: "
                            "no such file")
    buffer = io.StringIO()
    try:
        stats = replay(loaded.catalog, str(scenario.trace), OutputWriter(buffer, tz, False), tz,
                       report=outcome.reports.append, until=until,
                       show_contexts=scenario.contexts)
    except EngineError as exc:
        outcome.problems.append(f"the engine refused the rules: {exc}")
        return outcome
    except OSError as exc:
        raise ScenarioError(f"{scenario.path}: cannot read trace {scenario.trace}: "
                            f"{exc.strerror or exc}") from None
    outcome.text = buffer.getvalue()
    outcome.produced = [json.loads(line) for line in json_lines(outcome.text)]
    outcome.differences = compare([e.value for e in scenario.expected], outcome.produced,
                                  [e.where for e in scenario.expected])
    for what, got, want in (("bad lines", stats.bad_lines, scenario.bad_lines),
                            ("bad messages", stats.bad_messages, scenario.bad_messages)):
        if got != want:
            noun = what if got != 1 else what[:-1]
            outcome.problems.append(f"the trace gave {got} {noun}, the scenario expects {want}")
    return outcome


def report(outcome: Outcome) -> list[str]:
    """The lines printed for one scenario."""
    s = outcome.scenario
    if outcome.passed:
        return [f"PASS {s.name} ({_lines(len(outcome.produced))})"]
    lines = [f"FAIL {s.name}: {_headline(outcome)}"]
    lines.extend(render(outcome.differences))
    for problem in outcome.problems:
        lines.extend("  " + part for part in problem.split("\n"))
    if outcome.problems and outcome.reports:
        lines.append("  the replay said:")
        lines.extend("    " + message for message in outcome.reports)
    return lines


def _headline(outcome: Outcome) -> str:
    """Why a scenario failed, in a few words: why nothing ran, or the counts."""
    if outcome.not_run:
        return outcome.not_run
    count, problems = len(outcome.differences), len(outcome.problems)
    parts = []
    if count or not problems:
        parts.append(f"{count} difference{'s' if count != 1 else ''} "
                     f"({_lines(len(outcome.scenario.expected))} expected, "
                     f"{len(outcome.produced)} produced)")
    if problems:
        parts.append(f"{problems} problem{'s' if problems != 1 else ''}")
    return "; ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _lines(count: int) -> str:
    return _plural(count, "line")


@dataclass
class Totals:
    """What `cep test` did with its scenarios; `summary()` is its last line."""

    passed: int = 0
    failed: int = 0
    unusable: int = 0   # could not be run (a bad scenario file, --update refused)
    updated: int = 0    # with --update: expected files rewritten (not counted as passed)
    update: bool = False

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.unusable + self.updated

    def summary(self) -> str:
        """`2 scenarios: 2 passed, 0 failed`; with --update, `1 scenario: 1 updated, 0
        passed, 0 failed`; then `, 1 could not be run` when one could not."""
        parts = [f"{self.updated} updated"] if self.update else []
        parts += [f"{self.passed} passed", f"{self.failed} failed"]
        if self.unusable:
            parts.append(f"{self.unusable} could not be run")
        return f"{_plural(self.total, 'scenario')}: {', '.join(parts)}"


def run_paths(paths: list[Path], out: Callable[[str], None], err: Callable[[str], None],
              update: bool = False) -> tuple[int, int, int]:
    """Run every scenario; returns (passed, failed, unusable), an updated scenario
    counted as passed (`run_scenarios` tells them apart)."""
    totals = run_scenarios(paths, out, err, update)
    return totals.passed + totals.updated, totals.failed, totals.unusable


def run_scenarios(paths: list[Path], out: Callable[[str], None],
                  err: Callable[[str], None], update: bool = False) -> Totals:
    """Run every scenario, saying what each gave on `out` (PASS, FAIL, UPDATED) or `err`
    (ERROR); with `update`, rewrite the expected file of each that fails on its output."""
    totals = Totals(update=update)
    for path in paths:
        try:
            outcome = run_scenario(load_scenario(path, missing_expected_ok=update))
        except ScenarioError as exc:
            totals.unusable += 1
            err(f"ERROR {exc}")
            continue
        if update and not outcome.passed:
            refused = outside_folder(outcome.scenario)
            if refused is not None:
                totals.unusable += 1
                err(f"ERROR {refused}")
                continue
            if _update(outcome, err):
                out(f"UPDATED {outcome.scenario.name} ({_lines(len(outcome.produced))})")
                totals.updated += 1
                continue
        for line in report(outcome):
            out(line)
        if outcome.passed:
            totals.passed += 1
        else:
            totals.failed += 1
    return totals


def outside_folder(scenario: Scenario) -> str | None:
    """Why `--update` may not write the scenario's expected file, if it may not: only a file
    inside the scenario file's own folder (or a folder below it) is written, never one that
    an absolute path, `..` or a symbolic link puts elsewhere."""
    if scenario.expected_file is None:
        return None
    folder = os.path.realpath(scenario.path.parent)
    target = os.path.realpath(scenario.expected_file)
    if os.path.commonpath([folder, target]) == folder and target != folder:
        return None
    return (f"{scenario.path}: --update writes only inside the scenario's folder {folder}, "
            f"and `expected` names {target}; move the expected file there (or update it "
            "by hand)")


def _update(outcome: Outcome, err: Callable[[str], None]) -> bool:
    """Write the produced output as the scenario's expected file (only output differs)."""
    s = outcome.scenario
    if outcome.problems or outcome.not_run:
        err(f"{s.name}: not updated: only differing output lines are written, and this "
            "scenario has the problems below")
        return False
    if s.expected_file is None:
        err(f"{s.name}: cannot update inline `expected_output`; edit the file by hand")
        return False
    try:
        s.expected_file.parent.mkdir(parents=True, exist_ok=True)
        # to the file itself, so a symbolic link inside the folder stays one
        replace_file(os.path.realpath(s.expected_file), lambda out: print(outcome.text, end="",
                                                                          file=out))
    except OSError as exc:
        err(f"{s.name}: cannot write {s.expected_file}: {exc.strerror or exc}")
        return False
    return True
