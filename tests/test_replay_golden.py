"""End-to-end golden tests of `cep replay`: rules + trace -> exact output lines.

Each folder under tests/golden/replay/ (and each bundled scenario under
scenarios/) holds its rules (every *.epl in it, or a `rules` file naming rule
files relative to the folder), `trace.jsonl`, `expected.jsonl` (stdout) and
optionally `expected-stderr.txt` (stderr lines, the timing summary left out),
`until` and `tz` (the --until and --tz arguments) and `args` (more arguments,
one per line).
`CEP_UPDATE_GOLDEN=1 pytest tests/test_replay_golden.py` rewrites the expected files.
"""

import os
import re
from pathlib import Path

import pytest

from cep.cli import main

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted([p for p in (ROOT / "tests" / "golden" / "replay").iterdir() if p.is_dir()] +
               [p for p in (ROOT / "scenarios").iterdir()
                if p.is_dir() and (p / "expected.jsonl").exists()])
UPDATE = os.environ.get("CEP_UPDATE_GOLDEN") == "1"
TIMING = re.compile(r" in \d+\.\d+ s \([\d,]+ events/s\)$")


def run_case(case: Path, capsys) -> tuple[int, str, list[str]]:
    rules = [str(case)]
    if (case / "rules").exists():
        rules = [str(case / line) for line in (case / "rules").read_text().split()]
    args = ["replay", *rules, "--trace", str(case / "trace.jsonl")]
    for option in ("until", "tz"):
        if (case / option).exists():
            args += [f"--{option}", (case / option).read_text().strip()]
    if (case / "args").exists():
        args += (case / "args").read_text().split()
    status = main(args)
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
