"""`cep graph`: golden files of the network and state machines for the shipped rule files
and an every-operator file, in both formats; escaping; options and errors.

`CEP_UPDATE_GOLDEN=1 pytest tests/test_graph.py` rewrites the golden files (check them).
"""

import os
from pathlib import Path

import pytest

from cep.cli import main
from cep.tools.graph.render import dot_text, mermaid_text

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "graph"
SOURCES = sorted((ROOT / "rules").glob("*.epl")) + sorted(GOLDEN.glob("*.epl"))
UPDATE = os.environ.get("CEP_UPDATE_GOLDEN") == "1"


def graph(capsys, *args) -> tuple[int, str, str]:
    status = main(["graph", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("fmt,suffix", [("mermaid", "md"), ("dot", "dot")])
@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_graph_matches_golden(source, fmt, suffix, capsys):
    status, out, err = graph(capsys, source, "--format", fmt)
    assert (status, err) == (0, "")
    golden = GOLDEN / f"{source.stem}.{suffix}"
    if UPDATE:
        golden.write_text(out)
    assert out == golden.read_text()


def test_parts_and_one_rule(capsys):
    night = ROOT / "rules" / "night.epl"
    _, everything, _ = graph(capsys, night)
    _, network, _ = graph(capsys, night, "--part", "network")
    _, rules, _ = graph(capsys, night, "--part", "rules")
    assert everything == network + "\n" + rules
    _, one, _ = graph(capsys, night, "--rule", "bathroom_too_long")
    assert one.startswith("## Event processing network")
    assert "## Rule `bathroom_too_long`" in one and "## Rule `night_lights`" not in one


def test_out_writes_a_file(tmp_path, capsys):
    out = tmp_path / "night.dot"
    assert graph(capsys, ROOT / "rules" / "night.epl", "--format", "dot", "--out", out)[:2] \
        == (0, "")
    assert out.read_text() == (GOLDEN / "night.dot").read_text()


def test_unknown_rule_is_bad_usage(capsys):
    status, out, err = graph(capsys, ROOT / "rules" / "night.epl", "--rule", "nope")
    assert (status, out) == (2, "")
    assert err == ("cep: error: no rule named 'nope' (rules: bathroom_too_long, "
                   "night_lights)\n")


def test_rule_errors_are_reported_and_nothing_is_drawn(tmp_path, capsys):
    path = tmp_path / "bad.epl"
    path.write_text("CREATE EVENT A (v INT);\n@name('r') SELECT w FROM A;\n")
    status, out, err = graph(capsys, path)
    assert (status, out) == (1, "")
    assert f"{path}:2:19: error: unknown name `w`" in err


@pytest.mark.parametrize("text,mermaid,dot", [
    ('say "hi"', "say #34;hi#34;", 'say \\"hi\\"'),
    ("a; b # c", "a#59; b #35; c", "a; b # c"),
    ("x < 1 > 2", "x #60; 1 #62; 2", "x < 1 > 2"),
    ("{room} [1] | `x`", "#123;room#125; #91;1#93; #124; #96;x#96;", "{room} [1] | `x`"),
    ("two\nlines", "two<br/>lines", "two\\nlines"),
    ("back\\slash", "back\\slash", "back\\\\slash"),
])
def test_labels_from_rule_files_are_escaped(text, mermaid, dot):
    assert mermaid_text(text) == mermaid
    assert dot_text(text) == dot
