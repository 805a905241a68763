"""Hostile rule files and settings: none may crash, stall or blind cep.

Each case is an input an adversary (or an accident) can give `cep`, and what it must
produce: an ordinary error at the right file:line:col with the source line and a caret,
and the exit status of docs/cli.md; never a traceback, an "internal error", a hang or a
file read or written where it should not be. Tables first, then one test per table.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cep.cli import main
from cep.language import parser
from cep.language.parser import (
    MAX_NESTING,
    lark_parser,
    nesting,
    parse_tree,
    parser_cache_file,
    split_statements,
)

PRE = "CREATE EVENT A (x INT, s STRING) FROM TOPIC 'a';\n"
TRACE = '{"ts": 1700000000, "topic": "a", "payload": {"x": 5, "s": "k"}}\n'


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def no_crash(text: str) -> None:
    for sign in ("Traceback", "RecursionError", "internal error"):
        assert sign not in text


# ---------------------------------------------------------------- nesting

# Each form of deep nesting: (id, statement with n, n at which it nests exactly
# MAX_NESTING levels, the column where the error points once it nests one level more:
# the node that goes one level too deep, here the innermost).
NESTING = [
    ("parens-in-pattern",
     lambda n: "SELECT * FROM PATTERN [ every " + "(" * n + "A" + ")" * n + " ]",
     MAX_NESTING - 2, len("SELECT * FROM PATTERN [ every ") + MAX_NESTING),
    ("parens-in-expression",
     lambda n: "SELECT * FROM A(" + "(" * n + "x > 1" + ")" * n + ")",
     MAX_NESTING - 1, len("SELECT * FROM A(") + MAX_NESTING + 1),
    ("chained-and",
     lambda n: "SELECT * FROM A(" + " and ".join(["x > 1"] * n) + ")",
     MAX_NESTING, len("SELECT * FROM A(") + 1),
    ("chained-or",
     lambda n: "SELECT * FROM A(" + " or ".join(["x > 1"] * n) + ")",
     MAX_NESTING, len("SELECT * FROM A(") + 1),
    ("chained-plus",
     lambda n: "SELECT * FROM A(" + " + ".join(["x"] * n) + " > 1)",
     MAX_NESTING, len("SELECT * FROM A(") + 1),
    # the form that costs the printer the most stack per level
    ("every-every",
     lambda n: "SELECT * FROM PATTERN [ " + "every " * n + "A ]",
     MAX_NESTING - 1, len("SELECT * FROM PATTERN [ ") + 6 * MAX_NESTING + 1),
    ("nested-json",
     lambda n: "SELECT x FROM A PUBLISH 'o' PAYLOAD " + "[" * n + "x" + "]" * n,
     MAX_NESTING, len("SELECT x FROM A PUBLISH 'o' PAYLOAD ") + MAX_NESTING + 1),
]
NESTING_IDS = [case[0] for case in NESTING]


def levels(statement: str) -> int:
    (chunk,), _ = split_statements(statement)
    return nesting(parse_tree(chunk))


@pytest.mark.parametrize("name, form, n, col", NESTING, ids=NESTING_IDS)
def test_the_nesting_limit_counts_as_documented(name, form, n, col):
    assert levels(form(n)) == MAX_NESTING
    assert levels(form(n + 1)) > MAX_NESTING


@pytest.mark.parametrize("name, form, n, col", NESTING, ids=NESTING_IDS)
def test_a_statement_at_the_nesting_limit_goes_through_every_command(name, form, n, col,
                                                                     tmp_path, capsys):
    rules = tmp_path / f"{name}.epl"
    rules.write_text(PRE + form(n) + ";\n")
    trace = tmp_path / "t.jsonl"
    trace.write_text(TRACE)
    for argv in (["check", rules], ["check", "--print", "ast", rules],
                 ["check", "--print", "rules", rules], ["check", "--print", "tree", rules],
                 ["graph", rules], ["replay", rules, "--trace", trace]):
        status, out, err = run(capsys, *map(str, argv))
        no_crash(out + err)
        assert status == 0, (argv, err)
        if argv[0] == "replay":
            assert '"kind": "' in out  # the rule fired: the deep expression was evaluated


@pytest.mark.parametrize("name, form, n, col", NESTING, ids=NESTING_IDS)
def test_one_level_more_is_an_error_at_its_place(name, form, n, col, tmp_path, capsys):
    rules = tmp_path / f"{name}.epl"
    rules.write_text(PRE + form(n + 1) + ";\n")
    status, out, err = run(capsys, "check", str(rules))
    no_crash(out + err)
    assert status == 1
    what = "pattern" if "PATTERN" in form(1) else "payload" if "PAYLOAD" in form(1) \
        else "expression"
    head, quoted, caret = out.splitlines()[:3]
    assert head.startswith(f"{rules}:2:{col}: error: this {what} nests more than "
                           f"{MAX_NESTING} levels deep")
    line = form(n + 1)
    assert quoted[caret.index("^")] == line[col - 1]  # the caret is under the column
    assert "1 error," in err
    trace = tmp_path / "t.jsonl"
    trace.write_text(TRACE)
    for argv in (["check", "--print", "ast", rules], ["graph", rules],
                 ["replay", rules, "--trace", trace]):
        status, out, err = run(capsys, *map(str, argv))
        no_crash(out + err)
        assert status == 1


def test_far_too_deep_is_still_one_error(tmp_path, capsys):
    rules = tmp_path / "deep.epl"
    rules.write_text(PRE + "SELECT * FROM A(" + "(" * 50_000 + "x > 1" + ")" * 50_000 + ");\n"
                     + "SELECT y FROM A;\n")
    status, out, err = run(capsys, "check", "--format", "json", str(rules))
    no_crash(out + err)
    found = [json.loads(line) for line in out.splitlines()]
    assert status == 1
    assert [(d["line"], d["message"].split(":")[0][:30]) for d in found] == [
        (2, "this expression nests more tha"), (3, "unknown name `y`")]


def test_a_deep_statement_in_a_subprocess_exits_1_without_a_traceback(tmp_path):
    rules = tmp_path / "deep.epl"
    rules.write_text(PRE + "SELECT * FROM PATTERN [ every " + "(" * 500 + "A" + ")" * 500 + "];\n")
    done = subprocess.run([sys.executable, "-m", "cep", "check", str(rules)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    no_crash(done.stdout + done.stderr)
    assert f"{rules}:2:{31 + MAX_NESTING - 1}: error: this pattern nests" in done.stdout


# Nesting that is not in one statement: compositions of contexts, chains of INSERT INTO.
def _composites(count: int, reverse: bool) -> str:
    made = [f"CREATE CONTEXT C{i + 1} AS C{i} AND K;" for i in range(count)]
    return ("CREATE CONTEXT C0 START 00:00 END 23:59;\nCREATE CONTEXT K PARTITION BY x;\n"
            + PRE + "\n".join(made[::-1] if reverse else made)
            + f"\nCONTEXT C{count} SELECT x FROM A;\n")


def _insert_chain(count: int) -> str:
    made = [f"INSERT INTO T{i + 1} SELECT x FROM T{i};" for i in range(count)]
    return ("CREATE EVENT T0 (x INT) FROM TOPIC 'a';\n" + "\n".join(made[::-1])
            + f"\nSELECT x FROM T{count};\n")


def test_composite_contexts_at_the_limit_run(tmp_path, capsys):
    rules = tmp_path / "contexts.epl"
    rules.write_text(_composites(MAX_NESTING, reverse=True))
    trace = tmp_path / "t.jsonl"
    trace.write_text(TRACE)
    for argv in (["check", rules], ["graph", rules], ["replay", rules, "--trace", trace]):
        status, out, err = run(capsys, *map(str, argv))
        no_crash(out + err)
        assert status == 0


def test_composite_contexts_past_the_limit_are_an_error(tmp_path, capsys):
    rules = tmp_path / "contexts.epl"
    rules.write_text(_composites(3 * MAX_NESTING, reverse=True))
    status, out, err = run(capsys, "check", str(rules))
    no_crash(out + err)
    assert status == 1
    (message,) = [line for line in out.splitlines() if ": error: " in line]
    assert f"error: context C{MAX_NESTING + 1} is made of contexts nested more than" in message


def test_a_long_insert_into_chain_checks_and_runs(tmp_path, capsys):
    rules = tmp_path / "chain.epl"
    rules.write_text(_insert_chain(3_000))  # declared last producer first: a deep walk
    trace = tmp_path / "t.jsonl"
    trace.write_text(TRACE)
    status, out, err = run(capsys, "replay", str(rules), "--trace", str(trace))
    no_crash(out + err)
    assert status == 0 and out.count("\n") == 3_001


def test_cycles_through_many_paths_are_found_at_once(tmp_path, capsys):
    # two rules per step: 2^60 paths around the cycle, one group of types
    made = []
    for i in range(60):
        made += [f"INSERT INTO T{i + 1} SELECT x FROM T{i}(x > 1);",
                 f"INSERT INTO T{i + 1} SELECT x FROM T{i}(x > 2);"]
    rules = tmp_path / "cycle.epl"
    rules.write_text("CREATE EVENT T0 (x INT) FROM TOPIC 'a';\n" + "\n".join(made)
                     + "\nINSERT INTO T1 SELECT x FROM T60;\n")
    started = time.perf_counter()
    status, out, _ = run(capsys, "check", str(rules))
    assert time.perf_counter() - started < 10
    assert status == 1
    (message,) = [line for line in out.splitlines() if ": error: " in line]
    assert ":122:13: error: INSERT INTO cycle: T1 → rule 'rule3' → T2" in message
    assert "(50 more steps)" in message and "59 other INSERT INTO rules" in message


# ---------------------------------------------------------------- time zones

ZONES = [
    # (id, zone, message)
    ("absolute-path", "/etc/passwd", "never a file name or a path"),
    ("relative-path", "../../..", "never a file name or a path"),
    ("dotted-name", "zone.tab", "never a file name or a path"),
    ("posix-tz-string", "EST5EDT,M3.2.0,M11.1.0", "never a file name or a path"),
    ("inside-the-database", "Europe/../../../etc/passwd", "never a file name or a path"),
    ("a-folder", "America", "unknown time zone 'America': use an IANA name"),
    ("misspelt", "Europe/Berln", "(did you mean `Europe/Berlin`?)"),
    ("empty", "", "never a file name or a path"),
]


@pytest.mark.parametrize("name, zone, message", ZONES, ids=[z[0] for z in ZONES])
def test_set_timezone_takes_only_iana_names(name, zone, message, tmp_path, capsys):
    rules = tmp_path / "tz.epl"
    rules.write_text(f"SET TIMEZONE '{zone}';\n")
    status, out, err = run(capsys, "check", str(rules))
    no_crash(out + err)
    assert status == 1
    assert out.startswith(f"{rules}:1:14: error: unknown time zone '{zone}'")
    assert message in out


@pytest.mark.parametrize("zone", ["/etc/passwd", "../../../etc/passwd", "Mars/Olympus"])
@pytest.mark.parametrize("command", ["replay", "import", "test"])
def test_a_zone_option_takes_only_iana_names(command, zone, tmp_path, capsys):
    rules = tmp_path / "r.epl"
    rules.write_text(PRE + "SELECT x FROM A;\n")
    trace = tmp_path / "t.jsonl"
    trace.write_text(TRACE)
    if command == "replay":
        argv = ["replay", str(rules), "--trace", str(trace), "--tz", zone]
    elif command == "import":
        data = tmp_path / "casas.txt"
        data.write_text("2016-07-12 00:00:01 M001 ON\n")
        argv = ["import", "casas", str(data), "--tz", zone]
    else:
        scenario = tmp_path / "s.toml"
        scenario.write_text(f'rules = "r.epl"\ntrace = "t.jsonl"\ntz = "{zone}"\n'
                            'expected_output = ""\n')
        argv = ["test", str(scenario)]
    status, out, err = run(capsys, *argv)
    no_crash(out + err)
    assert status == 2
    assert f"unknown time zone '{zone}'" in err and "IANA name" in err


def test_real_zones_still_work():
    from cep.language.timezones import get_zone

    for zone in ("UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT-14",
                 "Asia/Taipei"):
        assert get_zone(zone) is not None, zone


# ---------------------------------------------------------------- numbers

NUMBERS = [
    # (id, statement, col of the error, message)
    ("int-4301-digits", "SELECT " + "9" * 4301 + " AS n FROM A", 8, "number too large"),
    ("int-past-64-bits", "SELECT 9223372036854775808 AS n FROM A", 8, "number too large"),
    ("float-past-range", "SELECT 1e400 AS n FROM A", 8, "number too large: 1e400 is beyond"),
    ("long-exponent", "SELECT 1e" + "9" * 5000 + " AS n FROM A", 8, "number too large"),
    ("repeat-count", "SELECT * FROM PATTERN [every [" + "9" * 5000 + "] A]", 31,
     "number too large"),
    ("tag-index", "SELECT a[" + "9" * 5000 + "].x AS v FROM PATTERN [every [2] a=A]", 10,
     "number too large"),
    ("qos", "SELECT x FROM A PUBLISH 'p' QOS " + "9" * 5000, 33, "QoS must be 0, 1 or 2"),
    ("qos-float", "SELECT x FROM A PUBLISH 'p' QOS 1e999", 33, "QoS must be 0, 1 or 2"),
    ("duration", "SELECT * FROM PATTERN [every A -> timer:interval(" + "9" * 5000 + " min)]",
     50, "number too large"),
    ("coordinate", "CREATE LOCATION L CIRCLE (1e999, 2) RADIUS 1 m", 27,
     "number too large: 1e999 is beyond the largest FLOAT"),
]


@pytest.mark.parametrize("name, statement, col, message", NUMBERS, ids=[n[0] for n in NUMBERS])
def test_numbers_too_large_are_errors(name, statement, col, message, tmp_path, capsys):
    rules = tmp_path / "n.epl"
    rules.write_text(PRE + statement + ";\n")
    status, out, err = run(capsys, "check", str(rules))
    no_crash(out + err)
    assert status == 1
    errors = [line for line in out.splitlines() if ": error: " in line]
    assert errors[0].startswith(f"{rules}:2:{col}: error: {message}")
    assert len(errors[0]) < 300  # the number is not quoted whole


def test_the_largest_whole_number_is_fine(tmp_path, capsys):
    rules = tmp_path / "n.epl"
    rules.write_text(PRE + "SELECT 9223372036854775807 AS n, 1.7e308 AS f, "
                     "0000000000000000000000000000001 AS one FROM A;\n")
    assert run(capsys, "check", str(rules))[0] == 0


# ---------------------------------------------------------------- encodings and lines

ENCODINGS = [
    # (id, file bytes, exit status, what the first diagnostic starts with, quoted line)
    ("latin-1-in-a-comment", PRE.encode() + b"-- caf\xe9\nSELECT x FROM A;\n", 1,
     "2:7: error: this file is not UTF-8 text: byte 0xe9", "-- caf\ufffd"),
    ("bad-byte-in-code", PRE.encode() + b"SELECT x FROM A WHERE s = '\xff';\n", 1,
     "2:28: error: this file is not UTF-8 text: byte 0xff", "SELECT x FROM A WHERE s = '\ufffd';"),
    ("utf-16", "SELECT x FROM A;\n".encode("utf-16"), 1,
     "1:1: error: this file is not UTF-8 text (it looks like UTF-16)", None),
    ("truncated-character", PRE.encode() + b"SELECT x FROM A; -- \xe2\x82", 1,
     "2:21: error: this file is not UTF-8 text", None),
    ("byte-order-mark", b"\xef\xbb\xbf" + PRE.encode() + b"SELECT y FROM A;\n", 1,
     "2:8: error: unknown name `y`", "SELECT y FROM A;"),
    ("byte-order-mark-first-line", b"\xef\xbb\xbfSELECT y FROM A;\n" + PRE.encode(), 1,
     "1:8: error: unknown name `y`", "SELECT y FROM A;"),
]


@pytest.mark.parametrize("name, data, status, first, quoted", ENCODINGS,
                         ids=[e[0] for e in ENCODINGS])
def test_encodings(name, data, status, first, quoted, tmp_path, capsys):
    rules = tmp_path / "e.epl"
    rules.write_bytes(data)
    got, out, err = run(capsys, "check", str(rules))
    no_crash(out + err)
    assert got == status
    lines = out.splitlines()
    assert lines[0].startswith(f"{rules}:{first}")
    if quoted is not None:
        assert lines[1] == quoted
        col = int(first.split(":")[1])
        assert lines[2].index("^") == col - 1


def test_a_byte_order_mark_alone_is_accepted(tmp_path, capsys):
    rules = tmp_path / "bom.epl"
    rules.write_bytes(b"\xef\xbb\xbf" + PRE.encode() + b"SELECT x FROM A;\n")
    assert run(capsys, "check", str(rules))[0] == 0
    assert run(capsys, "check", "--print", "tree", str(rules))[0] == 0


def test_a_file_that_is_not_utf8_is_refused_but_the_others_are_checked(tmp_path, capsys):
    bad = tmp_path / "a.epl"
    bad.write_bytes(b"-- \xff\n")
    good = tmp_path / "b.epl"
    good.write_text(PRE + "SELECT y FROM A;\n")
    status, out, err = run(capsys, "check", str(bad), str(good))
    assert status == 1
    heads = [line for line in out.splitlines() if ": error: " in line]
    assert [h.split(": error: ")[0] for h in heads] == [f"{bad}:1:4", f"{good}:2:8"]
    assert "2 files" in err


# Characters Python's str.splitlines takes for line breaks, and the lexer does not.
NOT_LINE_BREAKS = ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", NOT_LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in NOT_LINE_BREAKS])
@pytest.mark.parametrize("place", ["comment", "string", "block-comment"])
def test_only_lf_cr_and_crlf_end_a_line(char, place, tmp_path, capsys):
    inside = {"comment": f"-- a{char}b\n", "string": f"SELECT x FROM A WHERE s = 'a{char}b';\n",
              "block-comment": f"/* a{char}b */\n"}[place]
    rules = tmp_path / "l.epl"
    rules.write_text(PRE + inside + "SELECT x FROM A WHERE y = 1;\n", encoding="utf-8")
    status, out, _ = run(capsys, "check", "--format", "json", str(rules))
    (found,) = [json.loads(line) for line in out.splitlines()]
    assert status == 1 and (found["line"], found["col"]) == (3, 23)
    status, out, _ = run(capsys, "check", str(rules))
    assert status == 1
    head, quoted, caret = out.splitlines()[:3]
    assert head.startswith(f"{rules}:3:23: error: unknown name `y`")
    assert quoted == "SELECT x FROM A WHERE y = 1;"
    assert caret == " " * 22 + "^"


@pytest.mark.parametrize("char", NOT_LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in NOT_LINE_BREAKS])
def test_a_quoted_line_holding_such_a_character_keeps_the_caret_under_its_column(
        char, tmp_path, capsys):
    rules = tmp_path / "l.epl"
    rules.write_text(PRE + f"SELECT x FROM A WHERE s = 'a{char}b' AND y = 1;\n",
                     encoding="utf-8")
    status, out, _ = run(capsys, "check", str(rules))
    assert status == 1
    head, quoted, caret = out.splitlines()[:3]
    assert head.startswith(f"{rules}:2:37: error: unknown name `y`")
    assert len(quoted) == len("SELECT x FROM A WHERE s = 'a b' AND y = 1;")
    assert quoted[caret.index("^")] == "y"


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["CRLF", "CR"])
def test_cr_and_crlf_are_line_breaks_everywhere(newline, tmp_path, capsys):
    rules = tmp_path / "l.epl"
    rules.write_bytes((PRE + "-- a comment\nSELECT x FROM A\nWHERE y = 1;\n")
                      .replace("\n", newline).encode())
    status, out, _ = run(capsys, "check", str(rules))
    assert status == 1
    head, quoted, caret = out.splitlines()[:3]
    assert head.startswith(f"{rules}:4:7: error: unknown name `y`")
    assert quoted == "WHERE y = 1;" and caret == "      ^"


def test_a_long_line_is_quoted_around_the_column(tmp_path, capsys):
    rules = tmp_path / "long.epl"
    rules.write_text(PRE.strip() + " " + "SELECT x FROM A; " * 5_000 + "SELECT y FROM A;\n")
    status, out, _ = run(capsys, "check", str(rules))
    assert status == 1
    head, quoted, caret = out.splitlines()[:3]
    col = int(head.split(":")[2])
    assert head.startswith(f"{rules}:1:{col}: error: unknown name `y`")
    assert quoted.startswith("...") and len(quoted) < 200
    assert quoted[caret.index("^")] == "y"


# ---------------------------------------------------------------- large rule sets


def _generated(count: int, separator: str) -> str:
    return separator.join(f"CREATE EVENT E{i} (room STRING, value FLOAT) FROM TOPIC 'e{i}'; "
                          f"@name('r{i}') SELECT room FROM E{i}(value > {i}) "
                          f"PUBLISH 'out/{{room}}';" for i in range(count)) + "\n"


def _check_seconds(path: Path) -> float:
    lark_parser()
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        assert main(["check", str(path)]) == 0
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.slow
@pytest.mark.parametrize("separator", ["\n", " "], ids=["lines", "one-line"])
def test_checking_is_linear_in_the_size_of_the_rule_set(separator, tmp_path, capsys):
    small, large = tmp_path / "small.epl", tmp_path / "large.epl"
    small.write_text(_generated(1_000, separator))
    large.write_text(_generated(4_000, separator))
    ratio = _check_seconds(large) / _check_seconds(small)
    capsys.readouterr()
    assert ratio < 8, f"4x the rules took {ratio:.1f}x the time (linear: 4, quadratic: 16)"


LARGE = [
    # (id, rule text, exit status): each must check in well under a minute
    ("many-misspelt-types",
     "".join(f"CREATE EVENT E{i} (x INT) FROM TOPIC 'e{i}';\n" for i in range(3_000))
     + "".join(f"SELECT x FROM Q{i};\n" for i in range(3_000)), 1),
    ("thousands-of-tagged-filters",
     PRE + "SELECT * FROM PATTERN [every (" + " and ".join(
         f"a{i}=A(x > 1)" for i in range(3_000)) + ")];\n", 0),
    ("many-partitioned-rules",
     PRE + "CREATE CONTEXT P PARTITION BY s;\n"
     + "".join(f"CREATE EVENT E{i} (s STRING) FROM TOPIC 'e{i}';\n" for i in range(2_000))
     + "".join(f"CONTEXT P SELECT context.key AS k FROM E{i};\n" for i in range(2_000)), 0),
    ("a-topic-of-braces", "CREATE EVENT A (x INT) FROM TOPIC '" + "{" * 100_000 + "';\n", 1),
    ("comment-marks-in-strings",
     PRE + "SELECT '" + "/*" * 200_000 + "' AS s FROM A WHERE ;\n", 1),
    ("a-2-mb-string", PRE + "SELECT '" + "ab\\\\c" * 400_000 + "' AS s FROM A;\n", 0),
    ("a-2-mb-comment", PRE + "SELECT x /* " + "ab\ncd" * 400_000 + " */ FROM A;\n", 0),
]


@pytest.mark.parametrize("name, text, status", LARGE, ids=[c[0] for c in LARGE])
def test_large_inputs_check_quickly(name, text, status, tmp_path, capsys):
    rules = tmp_path / "large.epl"
    rules.write_text(text)
    started = time.perf_counter()
    got, out, err = run(capsys, "check", str(rules))
    assert time.perf_counter() - started < 30
    no_crash(out + err)
    assert got == status
    assert len(out.splitlines()) < 30_000


# ---------------------------------------------------------------- the parser cache

needs_posix = pytest.mark.skipif(not hasattr(os, "getuid"), reason="no owners on this system")
needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="changing a file's owner needs root")
OTHER_USER = 65534  # nobody


class _Planted:
    """A pickle that, when loaded, creates a file: proof that a planted cache ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def cache(monkeypatch, tmp_path):
    folder = tmp_path / "cache"
    monkeypatch.setenv("CEP_CACHE_DIR", str(folder))
    lark_parser.cache_clear()
    yield folder
    lark_parser.cache_clear()


def _cache_file() -> Path:
    path = parser_cache_file(parser.grammar_text())
    assert path is not None
    return path


def _plant(path: Path, marker: Path, mode: int = 0o600) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_Planted(marker)))
    path.chmod(mode)


def _parses() -> bool:
    (chunk,), _ = split_statements("SELECT x FROM A;")
    return parse_tree(chunk).data == "start"


@needs_posix
def test_the_cache_folder_is_made_private_and_the_file_0600(cache):
    assert _parses()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(_cache_file().stat().st_mode) == 0o600
    assert _cache_file().stat().st_uid == os.getuid()


@needs_posix
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o720], ids=oct)
def test_a_folder_others_can_write_to_is_not_used(mode, cache, tmp_path):
    marker = tmp_path / "ran"
    _plant(_cache_file(), marker)
    cache.chmod(mode)
    planted = _cache_file().read_bytes()
    assert _parses()
    assert not marker.exists()
    assert _cache_file().read_bytes() == planted  # not loaded, and nothing written there


@needs_root
def test_a_folder_of_another_user_is_not_used(cache, tmp_path):
    marker = tmp_path / "ran"
    _plant(_cache_file(), marker)
    os.chown(_cache_file(), OTHER_USER, OTHER_USER)
    os.chown(cache, OTHER_USER, OTHER_USER)
    assert _parses()
    assert not marker.exists()
    assert _cache_file().stat().st_uid == OTHER_USER


@needs_root
def test_a_file_of_another_user_is_not_loaded_but_replaced(cache, tmp_path):
    marker = tmp_path / "ran"
    _plant(_cache_file(), marker)
    os.chown(_cache_file(), OTHER_USER, OTHER_USER)
    assert _parses()
    assert not marker.exists()
    assert _cache_file().stat().st_uid == os.getuid()
    lark_parser.cache_clear()
    assert _parses()  # and the replacement is a good cache


@needs_posix
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606], ids=oct)
def test_a_file_others_may_read_or_write_is_not_loaded(mode, cache, tmp_path):
    marker = tmp_path / "ran"
    _plant(_cache_file(), marker, mode)
    assert _parses()
    assert not marker.exists()
    assert stat.S_IMODE(_cache_file().stat().st_mode) == 0o600


@needs_posix
def test_a_symbolic_link_in_the_cache_is_not_followed(cache, tmp_path):
    marker = tmp_path / "ran"
    elsewhere = tmp_path / "elsewhere.lark"
    _plant(elsewhere, marker)
    cache.mkdir(mode=0o700)
    _cache_file().symlink_to(elsewhere)
    assert _parses()
    assert not marker.exists()


# ---------------------------------------------------------------- cep test --update

SCENARIO_RULES = PRE + "@name('r') SELECT x FROM A;\n"


def _scenario(folder: Path, expected: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "r.epl").write_text(SCENARIO_RULES)
    (folder / "t.jsonl").write_text(TRACE)
    path = folder / "scenario.toml"
    path.write_text(f'rules = "r.epl"\ntrace = "t.jsonl"\nexpected = {json.dumps(expected)}\n')
    return path


OTHER_LINE = '{"ts": "2026-01-01T00:00:00.000+00:00", "kind": "event", "rule": "other"}\n'


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink-out"])
def test_update_writes_nothing_outside_the_scenario_folder(where, tmp_path, capsys):
    outside = tmp_path / "outside.jsonl"
    outside.write_text(OTHER_LINE)
    folder = tmp_path / "s"
    expected = {"parent": "../outside.jsonl", "absolute": str(outside),
                "symlink-out": "link.jsonl"}[where]
    scenario = _scenario(folder, expected)
    if where == "symlink-out":
        (folder / "link.jsonl").symlink_to(outside)
    status, _, err = run(capsys, "test", "--update", str(scenario))
    assert status == 2
    assert f"ERROR {scenario}: --update writes only inside the scenario's folder" in err
    assert outside.read_text() == OTHER_LINE


def test_update_writes_inside_the_folder_and_below(tmp_path, capsys):
    scenario = _scenario(tmp_path / "s", "expected/out.jsonl")
    status, out, _ = run(capsys, "test", "--update", str(scenario))
    assert status == 0 and out.startswith("UPDATED")
    written = (tmp_path / "s" / "expected" / "out.jsonl").read_text()
    assert '"rule": "r"' in written
    assert run(capsys, "test", str(scenario))[0] == 0


def test_reading_an_expected_file_elsewhere_is_still_fine(tmp_path, capsys):
    made = _scenario(tmp_path / "made", "out.jsonl")
    assert run(capsys, "test", "--update", str(made))[0] == 0
    (tmp_path / "shared.jsonl").write_text((tmp_path / "made" / "out.jsonl").read_text())
    assert run(capsys, "test", str(_scenario(tmp_path / "s", "../shared.jsonl")))[0] == 0


def test_expected_lines_holding_line_separators_are_one_line_each(tmp_path, capsys):
    folder = tmp_path / "s"
    scenario = _scenario(folder, "out.jsonl")
    (folder / "r.epl").write_text(PRE + "@name('r') SELECT s + '\u2028\x85\x1c' AS t FROM A;\n",
                                  encoding="utf-8")
    assert run(capsys, "test", "--update", str(scenario))[0] == 0
    assert (folder / "out.jsonl").read_text(encoding="utf-8").count("\n") == 1
    assert run(capsys, "test", str(scenario))[:2] == (0, f"PASS {scenario} (1 line)\n")
