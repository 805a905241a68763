"""End-to-end golden tests of `cep replay`: rules + trace -> exact output lines.

Each folder under tests/golden/replay/ holds its rules (every *.epl in it, or a `rules`
file naming rule files relative to the folder), `trace.jsonl`, `expected.jsonl` (stdout)
and optionally `expected-stderr.txt` (stderr lines, the timing summary left out), `until`
and `tz` (the --until and --tz arguments) and `args` (more arguments, one per line).
`CEP_UPDATE_GOLDEN=1 pytest tests/test_replay_golden.py` rewrites those expected files.

Each bundled scenario (scenarios/**/*.toml with an `expected` file, see docs/scenarios.md)
is also replayed with `cep replay` and the options the scenario names, and its stdout must
be byte for byte the scenario's expected file: `cep test` and `cep replay` agree.
"""

import os
import re
from pathlib import Path

import pytest
from helpers import golden_args

from cep.cli import main
from cep.language.diagnostics import plural
from cep.tools.testing.scenario import find_scenarios, load_scenario

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted(p for p in (ROOT / "tests" / "golden" / "replay").iterdir() if p.is_dir())
SCENARIOS = find_scenarios([str(ROOT / "scenarios")])
UPDATE = os.environ.get("CEP_UPDATE_GOLDEN") == "1"
TIMING = re.compile(r" in \d+\.\d+ s \([\d,]+ events/s\)$")


def run_case(case: Path, capsys) -> tuple[int, str, list[str]]:
    status = main(golden_args(case))
    captured = capsys.readouterr()
    stderr = [TIMING.sub("", line.replace(str(case) + os.sep, ""))
              for line in captured.err.splitlines()]
    return status, captured.out, stderr


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_replay_matches_golden(case, capsys, monkeypatch):
    monkeypatch.chdir(case)  # paths in stderr are relative to the case
    status, out, stderr = run_case(Path("."), capsys)
    assert status == 0, "\n".join(stderr)
    expected_out, expected_err = case / "expected.jsonl", case / "expected-stderr.txt"
    if UPDATE:
        expected_out.write_text(out)
        expected_err.write_text("\n".join(stderr) + "\n")
    assert out == expected_out.read_text()
    assert stderr == expected_err.read_text().splitlines()


@pytest.mark.parametrize("path", SCENARIOS,
                         ids=[str(p.relative_to(ROOT / "scenarios")) for p in SCENARIOS])
def test_replay_of_scenario_matches_its_expected_file(path, capsys):
    scenario = load_scenario(path)
    if scenario.expected_file is None:
        pytest.skip("expected output is inline")
    args = ["replay", *map(str, scenario.rules), "--trace", str(scenario.trace)]
    if scenario.tz:
        args += ["--tz", scenario.tz]
    if scenario.until is not None:
        args += ["--until", str(scenario.until)]
    if scenario.contexts:
        args.append("--contexts")
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == scenario.expected_file.read_text(encoding="utf-8")
    summary = captured.err.splitlines()[-1]
    assert f", {plural(scenario.bad_lines, 'bad line')}" in summary
    assert f", {plural(scenario.bad_messages, 'bad message')}, " in summary
