"""The printer (cep/printer.py) against the parser: every statement form of the
language is parsed, printed, and parsed again.

A round trip holds when the re-parsed AST equals the original (spans aside, and
compared through `dump_ast(..., spans=False)` too, so that 1, 1.0 and True are
told apart), neither parse reports a diagnostic, and printing the re-parsed AST
gives the same text again (the canonical form is a fixed point).  Every `.epl`
file under rules/ and tests/golden/ is round-tripped as well.

Further down, exact canonical texts pin the printer's choices (upper-case
keywords, the fewest parentheses, duration units, quoting).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cep.language import ast
from cep.language.diagnostics import Diagnostics
from cep.language.parser import parse_text
from cep.language.printer import (
    dump_ast,
    format_expr,
    format_file,
    format_pattern,
    format_statement,
    quote,
)

ROOT = Path(__file__).resolve().parent.parent


def parse_ok(text: str, path: str = "case.epl") -> ast.RuleFile:
    diagnostics = Diagnostics()
    rule_file = parse_text(text, path, diagnostics)
    problems = [d.headline() for d in diagnostics]
    assert not problems, f"diagnostics for:\n{text}\n" + "\n".join(problems)
    return rule_file


def assert_round_trip(text: str) -> str:
    original = parse_ok(text)
    assert original.statements, f"nothing parsed in {text!r}"
    printed = format_file(original)
    again = parse_ok(printed, "printed.epl")
    assert again.statements == original.statements, f"printed as:\n{printed}"
    assert ([dump_ast(s, spans=False) for s in again.statements]
            == [dump_ast(s, spans=False) for s in original.statements]), f"printed as:\n{printed}"
    assert format_file(again) == printed, "printing is not idempotent"
    return printed


# ------------------------------------------------------------------ statement forms

CASES = [
    # SET
    ("set_timezone", "SET TIMEZONE 'Asia/Taipei';"),
    ("set_timezone_double_quotes_lower_case", 'set timezone "Europe/Berlin";'),

    # CREATE EVENT
    ("event_one_attr", "CREATE EVENT A (x INT);"),
    ("event_all_types", "CREATE EVENT A (i INT, f float, s String, b BOOL, t TIMESTAMP);"),
    ("event_topic", "CREATE EVENT T (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temp';"),
    ("event_topic_wildcards", "CREATE EVENT T (v INT) FROM TOPIC 'z2m/{room}_motion/+/#';"),
    ("event_payload_as", "CREATE EVENT D (status STRING) FROM TOPIC 'door' PAYLOAD AS status;"),
    ("event_payload_paths",
     "CREATE EVENT R (t FLOAT, h FLOAT) FROM TOPIC 'r' PAYLOAD (t = 'a.temp', h = \"a.hum\");"),
    ("event_timestamp_from", "CREATE EVENT R (t FLOAT) FROM TOPIC 'r' TIMESTAMP FROM 'meta.ts';"),
    ("event_timestamp_without_topic", "CREATE EVENT R (t FLOAT) TIMESTAMP FROM 'ts';"),
    ("event_located_at", "CREATE EVENT P (x FLOAT, y FLOAT) LOCATED AT (x, y);"),
    ("event_located_at_geo", "CREATE EVENT P (la FLOAT, lo FLOAT) LOCATED AT GEO (la, lo);"),
    ("event_located_in", "CREATE EVENT P (room STRING) LOCATED IN room;"),
    ("event_entity", "CREATE EVENT P (x FLOAT, y FLOAT, who STRING) LOCATED AT (x, y) ENTITY who;"),
    ("event_every_clause",
     "CREATE EVENT P (x FLOAT, y FLOAT, who STRING) FROM TOPIC 'p/{who}' PAYLOAD (x = 'pos.x', "
     "y = 'pos.y') TIMESTAMP FROM 'ts' LOCATED AT (x, y) ENTITY who;"),
    ("event_clauses_out_of_order",
     "create event P (x float, who string) entity who located in x timestamp from 'ts' "
     "from topic 'p' payload as x;"),

    # CREATE LOCATION
    ("location_area", "CREATE LOCATION bedroom AREA ((0,0), (4,0), (4,3), (0,3));"),
    ("location_area_negative_and_fractions",
     "CREATE LOCATION hall AREA ((-1.5, 0), (0, -2.25), (3.125, 1e1));"),
    ("location_area_geo", "CREATE LOCATION garden AREA GEO ((25.03,121.56), (25.031,121.5612), "
                          "(25.0305, 121.5601));"),
    ("location_circle", "CREATE LOCATION desk CIRCLE (2.5, 1.0) RADIUS 0.8 m;"),
    ("location_circle_geo", "CREATE LOCATION home CIRCLE GEO (25.0330, 121.5654) RADIUS 150 m;"),
    ("location_circle_km", "create location town circle geo (-33.86, -151.2) radius 2.5 KM;"),

    # CREATE CONTEXT: recurring
    ("context_recurring", "CREATE CONTEXT Night START 22:00 END 07:00;"),
    ("context_recurring_one_digit_hour", "CREATE CONTEXT Morning START 6:05 END 9:30;"),
    ("context_recurring_day_range", "CREATE CONTEXT Office START 09:00 END 17:00 ON MON-FRI;"),
    ("context_recurring_day_list", "CREATE CONTEXT Weekend START 00:00 END 23:59 ON sat, Sun;"),
    ("context_recurring_mixed_days", "CREATE CONTEXT M START 06:30 END 08:00 ON MON, WED-FRI;"),
    # CREATE CONTEXT: event interval
    ("context_interval_duration",
     "CREATE CONTEXT Hot INITIATED BY Temperature(value > 28) DURATION 1 hour;"),
    ("context_interval_terminated", "CREATE CONTEXT Visit INITIATED BY Open TERMINATED BY Closed;"),
    ("context_interval_terminated_duration",
     "CREATE CONTEXT Cook INITIATED BY Stove(p >= 100) AS s TERMINATED BY Stove(p < 10) AS t "
     "DURATION 2 hours 30 min;"),
    ("context_interval_policy_add", "CREATE CONTEXT C INITIATED BY A DURATION 1 min POLICY ADD;"),
    ("context_interval_policy_ignore",
     "CREATE CONTEXT C INITIATED BY A DURATION 1 min POLICY ignore;"),
    ("context_interval_policy_refresh",
     "CREATE CONTEXT C INITIATED BY A TERMINATED BY B POLICY Refresh;"),
    ("context_interval_policy_extend",
     "CREATE CONTEXT C INITIATED BY A TERMINATED BY B DURATION 5 sec POLICY EXTEND;"),
    ("context_interval_pattern",
     "CREATE CONTEXT C INITIATED BY PATTERN [a=A -> b=B(x > a.x) where timer:within(1 min)] "
     "DURATION 1 day 2 h 3 min 4 s 5 msec;"),
    ("context_interval_empty_filter", "CREATE CONTEXT C INITIATED BY A() DURATION 1.5 hours;"),
    # CREATE CONTEXT: segmentation, spatial, composition
    ("context_partition", "CREATE CONTEXT PerRoom PARTITION BY room;"),
    ("context_partition_several", "CREATE CONTEXT P PARTITION BY floor, room, kind;"),
    ("context_fixed_location", "CREATE CONTEXT InBed LOCATION bedroom;"),
    ("context_entity_distance", "CREATE CONTEXT NearAlice WITHIN 3 m OF ENTITY 'alice';"),
    ("context_entity_distance_km", "create context NearBob within 0.5 km of entity \"bob\";"),
    ("context_event_distance", "CREATE CONTEXT NearLeak WITHIN 5 m OF WaterLeak DURATION 30 min;"),
    ("context_event_distance_filter_alias_policy",
     "CREATE CONTEXT NearSmoke WITHIN 12.5 m OF Smoke(level > 3) AS s DURATION 10 minutes "
     "POLICY REFRESH;"),
    ("context_composite", "CREATE CONTEXT NightPerRoom AS Night AND PerRoom;"),
    ("context_composite_three", "CREATE CONTEXT Three AS Night and PerRoom and NearAlice;"),

    # SELECT rules
    ("select_star_stream", "SELECT * FROM A;"),
    ("select_items_with_and_without_alias",
     "SELECT room, t.value, t.value * 1.8 + 32 AS f, upper(room) AS r FROM T AS t;"),
    ("select_stream_filter", "SELECT x FROM A(x > 1 AND s = 'on');"),
    ("select_stream_filter_alias", "SELECT a.x AS x FROM A(x > 1) AS a;"),
    ("select_full_rule",
     "@name('hot') @description(\"hot rooms\")\nCONTEXT PerRoom\nINSERT INTO Hot\n"
     "SELECT room, value AS v\nFROM Temperature(value > 28)\nWHERE room != 'attic'\n"
     "PUBLISH 'home/{room}/alert' PAYLOAD {\"room\": room, \"v\": v} QOS 1 RETAIN\n"
     "PUBLISH 'home/log/{room}' PAYLOAD v\nPUBLISH 'home/ping';"),
    ("select_pattern_star", "SELECT * FROM PATTERN [a=A -> b=B];"),
    ("select_pattern_items",
     "INSERT INTO LeftBed SELECT b.value AS pressure FROM PATTERN [every a=P(value > 100) -> "
     "b=P(value < 100)] PUBLISH 'light/set' PAYLOAD {\"state\": \"ON\"};"),
    ("select_json_nested",
     "SELECT x FROM A PUBLISH 't' PAYLOAD {\"a\": [1, 2.5, 'three', true, false, null], "
     "\"b\": {\"c\": {\"d\": x + 1}, \"e\": []}, \"f\": {}, 'g': -x, \"h\": lower(s)};"),
    ("select_json_array_top", "SELECT x FROM A PUBLISH 't' PAYLOAD [x, {\"k\": [x]}, []];"),
    ("select_payload_expr", "SELECT x FROM A PUBLISH 't' PAYLOAD x * 2 + 1 QOS 0;"),
    ("select_payload_string", "SELECT x FROM A PUBLISH 't' PAYLOAD 'ON' RETAIN;"),
    ("select_qos_retain_no_payload", "SELECT x FROM A PUBLISH 'a/{x}' QOS 2 RETAIN;"),
    ("select_annotation_any_name", "@Name('n') @weird('w') SELECT * FROM A;"),
    ("select_insert_without_context", "insert into B select * from A where x is null;"),

    # ON rules
    ("on_start", "CONTEXT Hot ON START PUBLISH 'home/{room}/ac/set' PAYLOAD {\"state\": \"ON\"};"),
    ("on_end", "CONTEXT Hot ON END PUBLISH 'home/{room}/ac/set' PAYLOAD {\"state\": \"OFF\"};"),
    ("on_start_annotated_qos_retain",
     "@name('ac') context Hot on start publish 'ac' payload 1 qos 1 retain publish 'log';"),
    ("on_event", "ON Motion PUBLISH 'light/set' PAYLOAD 'ON';"),
    ("on_event_filter_alias_where",
     "@name('low') ON Reading(batt < 10) AS r WHERE r.batt IS NOT NULL "
     "PUBLISH 'notify' PAYLOAD {\"level\": r.batt} PUBLISH 'log' PAYLOAD r.batt;"),
    ("on_pattern",
     "CONTEXT Night ON PATTERN [every a=A -> b=B(x = a.x)] WHERE b.y > 1 "
     "PUBLISH 'p/{x}' PAYLOAD [a.x, b.y];"),
]

# Patterns, each inside `SELECT * FROM PATTERN [...]`.
PATTERNS = [
    ("atom", "A"),
    ("tagged_atom", "a=A"),
    ("filtered_atom", "a=A(x > 1)"),
    ("filter_with_earlier_tag", "a=T -> b=T(value > a.value + 2)"),
    ("indexed_tag_in_filter", "[2] r=R -> s=R(value > r[0].value AND value < r[1].value)"),
    ("followed_by", "a=A -> b=B -> c=C"),
    ("or", "A or B or C"),
    ("and", "A and B and C"),
    ("every", "every A"),
    ("every_group", "every (a=A -> b=B)"),
    ("every_then_every", "every a=A -> every b=B"),
    ("not", "A and not B"),
    ("not_not", "not not A"),
    ("repeat", "[3] t=T"),
    ("every_repeat", "every [2] b=B"),
    ("every_repeat_parenthesized", "every ([2] b=B)"),
    ("repeat_repeat", "[2] ([3] A)"),
    ("repeat_group", "[2] (A or B)"),
    ("until", "A until B"),
    ("until_count", "[5] a=A until b=B"),
    ("until_timer", "a=A until timer:interval(1 hour 30 min)"),
    ("repeat_of_until", "[2] (A until B)"),
    ("until_of_until", "(A until B) until C"),
    ("until_stop_until", "A until (B until C)"),
    ("every_until_count", "every ([2] a=A until B)"),
    ("not_until", "not A until B"),
    ("within", "a=A where timer:within(10 sec)"),
    ("every_within", "every a=A where timer:within(10 sec)"),
    ("within_every", "(every a=A) where timer:within(5 min)"),
    ("within_within", "A where timer:within(1 min) where timer:within(2 min)"),
    ("within_group", "(A -> B) where timer:within(1 min)"),
    ("within_repeat", "([2] A) where timer:within(1 min)"),
    ("repeat_within", "[2] A where timer:within(1 min)"),
    ("within_until", "(A until B) where timer:within(1 day)"),
    ("timer_interval", "timer:interval(500 ms) -> A"),
    ("timer_interval_and_not", "B -> (timer:interval(20 min) and not P(value > 100))"),
    ("every_timer", "EVERY Timer:Interval(2 Minutes)"),
    ("precedence_mix", "a=A -> b=B or c=C and d=D -> e=E"),
    ("precedence_unary", "A and not B or C until D"),
    ("group_followed_left", "(a=A -> b=B) -> c=C"),
    ("group_followed_right", "a=A -> (b=B -> c=C)"),
    ("group_or_in_and", "(A or B) and C"),
    ("group_and_in_or", "A or (B and C)"),
    ("group_or_in_followed", "A -> (B or C)"),
    ("group_followed_in_or", "(A -> B) or C"),
    ("not_group", "not (A and B)"),
    ("nested_or_left", "(A or B) or C"),
    ("nested_or_right", "A or (B or C)"),
    ("nested_and_left", "(A and B) and C"),
    ("nested_and_right", "A and (B and C)"),
    ("durations", "timer:interval(1 day 2 hours 3 minutes 4 seconds 5 milliseconds)"),
    ("fractional_duration", "timer:interval(1.5 h 0.25 s)"),
]

# Expressions, each as `SELECT <expr> AS e FROM A`.
EXPRESSIONS = [
    ("int", "42"),
    ("leading_zeros", "007"),
    ("float", "3.25"),
    ("float_integral", "20.0"),
    ("float_exponent", "1.5e-7"),
    ("float_big", "1e30"),
    ("string_single", "'single'"),
    ("string_double", '"double"'),
    ("string_escapes", r"'it\'s \"q\" tab\t nl\n cr\r bs\\ slash\/ other\d'"),
    ("string_double_escapes", r'"say \"hi\" it\'s"'),
    ("string_semicolon_and_comment_marks", "'a;b -- c /* d */'"),
    ("string_unicode", "'25 °C ✓'"),
    ("true_false_null", "coalesce(true, FALSE, Null)"),
    ("name", "value"),
    ("tag_attr", "a.value"),
    ("indexed_tag_attr", "a[2].value"),
    ("context_key", "context.key"),
    ("context_name", "CONTEXT.name"),
    ("comparisons", "a = 1 AND b != 2 AND c <> 3 AND d < 4 AND e <= 5 AND f > 6 AND g >= 7"),
    ("in", "x IN (1, 2, 'three')"),
    ("not_in", "x NOT IN (a + 1, b or c)"),
    ("between", "x BETWEEN 1 AND 10"),
    ("not_between", "x NOT BETWEEN -1 AND y + 1"),
    ("like", "s LIKE 'kitchen%'"),
    ("not_like", "s NOT LIKE \"%_tmp\""),
    ("is_null", "x IS NULL"),
    ("is_not_null", "x is not null"),
    ("functions", "abs(x) + round(y, 2) + min(a, b, c) - Max(a, b)"),
    ("string_functions", "lower(s) = upper(t)"),
    ("coalesce_distance", "coalesce(distance(a, b), 0)"),
    ("call_no_args", "f()"),
    ("or_and", "a or b and c"),
    ("group_or_in_and", "(a or b) and c"),
    ("group_and_in_or", "a or (b and c)"),
    ("group_or_right", "a or (b or c)"),
    ("not_comparison", "not a = 1"),
    ("not_group", "not (a and b)"),
    ("not_not", "not not a"),
    ("not_in_comparison", "(not a) = b"),
    ("comparison_of_comparison", "(a = 1) = false"),
    ("comparison_right_group", "a = (b < c)"),
    ("in_of_comparison", "(a = b) IN (true)"),
    ("between_grouped_bounds", "(a or b) BETWEEN (c and d) AND (e = f)"),
    ("like_grouped", "(a = b) LIKE (c = d)"),
    ("is_null_grouped", "(a and b) IS NULL"),
    ("sum_product", "a + b * c"),
    ("group_sum_in_product", "(a + b) * c"),
    ("minus_left", "a - b - c"),
    ("minus_right_group", "a - (b - c)"),
    ("plus_right_group", "a + (b + c)"),
    ("product_chain", "a / b % c * d"),
    ("product_right_group", "a / (b % c)"),
    ("negate", "-x + 1"),
    ("negate_group", "-(x + 1)"),
    ("negate_negate", "- -x"),
    ("negate_negate_group", "-(-x)"),
    ("negate_in_product", "2 * -3"),
    ("minus_negative", "a - -b"),
    ("negate_call", "-abs(x)"),
    ("negate_attr", "-a[0].v"),
    ("negate_product", "-(a * b)"),
    ("arith_in_comparison", "a + 1 > b * 2"),
    ("comparison_in_and", "a > 1 AND b < 2 OR c = 3"),
]


def _ids(cases: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in cases]


@pytest.mark.parametrize("text", [text for _, text in CASES], ids=_ids(CASES))
def test_statement_round_trip(text: str) -> None:
    assert_round_trip(text)


@pytest.mark.parametrize("pattern", [p for _, p in PATTERNS], ids=_ids(PATTERNS))
def test_pattern_round_trip(pattern: str) -> None:
    assert_round_trip(f"SELECT * FROM PATTERN [{pattern}];")


@pytest.mark.parametrize("expr", [e for _, e in EXPRESSIONS], ids=_ids(EXPRESSIONS))
def test_expression_round_trip(expr: str) -> None:
    assert_round_trip(f"SELECT {expr} AS e FROM A;")
    assert_round_trip(f"SELECT * FROM A(x > 0) WHERE {expr};")
    assert_round_trip(f"SELECT * FROM A PUBLISH 't' PAYLOAD {{\"k\": [{expr}]}};")


def test_whole_file_round_trip() -> None:
    text = "\n".join(text for _, text in CASES)
    printed = assert_round_trip(text)
    assert len(parse_ok(printed).statements) == len(CASES)


# ------------------------------------------------------------------ files

EPL_FILES = sorted(p for folder in (ROOT / "rules", ROOT / "tests" / "golden")
                   if folder.is_dir() for p in folder.rglob("*.epl"))


@pytest.mark.parametrize("path", EPL_FILES, ids=[str(p.relative_to(ROOT)) for p in EPL_FILES])
def test_file_round_trip(path: Path) -> None:
    assert_round_trip(path.read_text(encoding="utf-8"))


def test_there_are_files_to_round_trip() -> None:
    assert any(p.parent.name == "parser" for p in EPL_FILES)


# ------------------------------------------------------------------ canonical texts


def _rule(text: str) -> ast.Statement:
    (statement,) = parse_ok(text).statements
    return statement


def _expr(text: str) -> ast.Expr:
    return _rule(f"SELECT * FROM A WHERE {text};").where


def _pattern(text: str) -> ast.Pattern:
    return _rule(f"SELECT * FROM PATTERN [{text}];").source.pattern


CANONICAL_EXPRESSIONS = [
    ("(a or b) and c", "(a OR b) AND c"),
    ("a or (b and c)", "a OR b AND c"),
    ("(a or b) or c", "a OR b OR c"),
    ("a or (b or c)", "a OR (b OR c)"),
    ("not (a = 1)", "NOT a = 1"),
    ("not (a and b)", "NOT (a AND b)"),
    ("(not a) = b", "(NOT a) = b"),
    ("-(x + 1)", "-(x + 1)"),
    ("-(x)", "-x"),
    ("- (-x)", "- -x"),
    ("a - (b - c)", "a - (b - c)"),
    ("(a - b) - c", "a - b - c"),
    ("(a * b) + (c / d)", "a * b + c / d"),
    ("a * (b + c)", "a * (b + c)"),
    ("a % (b * c)", "a % (b * c)"),
    ("(a + 1) > (b * 2)", "a + 1 > b * 2"),
    ("a <> b", "a != b"),
    ("x not in ((1), (a or b))", "x NOT IN (1, a OR b)"),
    ("x not between (1) and (2 + 3)", "x NOT BETWEEN 1 AND 2 + 3"),
    ("(a = b) between c and d", "(a = b) BETWEEN c AND d"),
    ("s not like 'x%'", "s NOT LIKE 'x%'"),
    ("x is not null and y is null", "x IS NOT NULL AND y IS NULL"),
    ("ABS(x) > Round(y, 2)", "abs(x) > round(y, 2)"),
    ("CONTEXT.key = a[1].b", "context.key = a[1].b"),
    ("TRUE or False or NULL", "true OR false OR null"),
    ("1.50 + 1e3 + 007", "1.5 + 1000.0 + 7"),
    ('"it\'s" = \'say "hi"\'', "'it\\'s' = 'say \"hi\"'"),
]


@pytest.mark.parametrize("text,expected", CANONICAL_EXPRESSIONS,
                         ids=[t for t, _ in CANONICAL_EXPRESSIONS])
def test_canonical_expression(text: str, expected: str) -> None:
    assert format_expr(_expr(text)) == expected


CANONICAL_PATTERNS = [
    ("every (a=A -> b=B)", "every (a=A -> b=B)"),
    ("(every a=A) -> b=B", "every a=A -> b=B"),
    ("EVERY [2] b=B", "every [2] b=B"),
    ("every ([2] b=B)", "every [2] b=B"),
    ("([2] b=B) where timer:within(1 s)", "([2] b=B) where timer:within(1 sec)"),
    ("[2] (b=B where timer:within(1 s))", "[2] b=B where timer:within(1 sec)"),
    ("every (a where timer:within(1 min))", "every a where timer:within(1 min)"),
    ("(every a) where timer:within(1 min)", "(every a) where timer:within(1 min)"),
    ("(a -> b) -> c", "(a -> b) -> c"),
    ("a -> (b or c)", "a -> b or c"),
    ("(a or b) and c", "(a or b) and c"),
    ("(a and b) or c", "a and b or c"),
    ("(a or b) or c", "(a or b) or c"),
    ("(a and b) and (c and d)", "(a and b) and (c and d)"),
    ("not (a and b)", "not (a and b)"),
    ("(not a) and b", "not a and b"),
    ("(a until b) until c", "(a until b) until c"),
    ("[2] (a until b)", "[2] (a until b)"),
    ("[2] a UNTIL b", "[2] a until b"),
    ("every ([2] a until b)", "every ([2] a until b)"),
    ("B -> (timer:interval(20 minutes) and not C)", "B -> timer:interval(20 min) and not C"),
    ("timer:interval(90 seconds 500 msec)", "timer:interval(90 sec 500 ms)"),
    ("timer:interval(2 hours 1 day 1.5 h)", "timer:interval(2 hour 1 day 1.5 hour)"),
    ("a=A() -> b=B(x > a.x)", "a=A -> b=B(x > a.x)"),
]


@pytest.mark.parametrize("text,expected", CANONICAL_PATTERNS,
                         ids=[t for t, _ in CANONICAL_PATTERNS])
def test_canonical_pattern(text: str, expected: str) -> None:
    assert format_pattern(_pattern(text)) == expected


def test_canonical_rule_layout() -> None:
    text = ("@name('r') context C insert into X select a as b, c from pattern [ every a=A ] "
            "where c > 1 publish 'x/{b}' payload {'k': 'v', \"n\": [1]} qos 1 retain "
            "publish 'y' payload c;")
    assert format_statement(_rule(text)) == (
        "@name('r')\n"
        "CONTEXT C\n"
        "INSERT INTO X\n"
        "SELECT a AS b, c\n"
        "FROM PATTERN [every a=A]\n"
        "WHERE c > 1\n"
        "PUBLISH 'x/{b}' PAYLOAD {\"k\": \"v\", \"n\": [1]} QOS 1 RETAIN\n"
        "PUBLISH 'y' PAYLOAD c;")


def test_canonical_on_rule_layout() -> None:
    assert format_statement(_rule("context Hot on end publish 'ac' payload 'OFF';")) == (
        "CONTEXT Hot\nON END\nPUBLISH 'ac' PAYLOAD 'OFF';")


def test_canonical_one_line_statements() -> None:
    text = ("create event P (x float, who string) entity who located at geo (x, x) "
            "from topic \"p\" payload (x = 'a.b');\n"
            "create location l circle (1, -2.50) radius 3 KM;\n"
            "create context C initiated by A terminated by B duration 1 h policy extend;\n"
            "create context D start 7:00 end 9:05 on mon-fri, sun;")
    assert format_file(parse_ok(text)) == (
        "CREATE EVENT P (x FLOAT, who STRING) FROM TOPIC 'p' PAYLOAD (x = 'a.b') "
        "LOCATED AT GEO (x, x) ENTITY who;\n"
        "CREATE LOCATION l CIRCLE (1, -2.5) RADIUS 3 km;\n"
        "CREATE CONTEXT C INITIATED BY A TERMINATED BY B DURATION 1 hour POLICY EXTEND;\n"
        "CREATE CONTEXT D START 07:00 END 09:05 ON MON-FRI, SUN;\n")


def test_file_layout_sets_rules_apart() -> None:
    text = "SET TIMEZONE 'UTC'; CREATE EVENT A (x INT); SELECT * FROM A; SELECT x FROM A;"
    assert format_file(parse_ok(text)) == (
        "SET TIMEZONE 'UTC';\nCREATE EVENT A (x INT);\n\nSELECT *\nFROM A;\n\n"
        "SELECT x\nFROM A;\n")
    assert format_file(ast.RuleFile("empty.epl", ())) == ""


@pytest.mark.parametrize("value", ["", "plain", "it's", 'say "hi"', "a\\b", "\\'", "tab\t",
                                   "new\nline", "cr\r", "\\n literally", "°C ✓", "';--"])
@pytest.mark.parametrize("mark", ["'", '"'])
def test_quote_reads_back(value: str, mark: str) -> None:
    printed = quote(value, mark)
    assert printed[0] == printed[-1] == mark
    assert "\n" not in printed
    assert _rule(f"SET TIMEZONE {printed};").zone.value == value


# ------------------------------------------------------------------ the checks can fail


@pytest.mark.parametrize("left,right", [
    ("a - (b - c)", "a - b - c"),
    ("(a or b) and c", "a or b and c"),
    ("-(x + 1)", "-x + 1"),
    ("1", "1.0"),
    ("1", "true"),
    ("'1'", "1"),
    ("x NOT IN (1)", "x IN (1)"),
])
def test_equality_tells_expressions_apart(left: str, right: str) -> None:
    """Guards the round-trip assertions: different meanings must not compare equal."""
    assert dump_ast(_expr(left), spans=False) != dump_ast(_expr(right), spans=False)


@pytest.mark.parametrize("left,right", [
    ("every (a=A -> b=B)", "every a=A -> b=B"),
    ("(a -> b) -> c", "a -> b -> c"),
    ("every [2] b=B", "[2] every b=B"),
    ("[2] (a until b)", "[2] a until b"),
    ("(every a) where timer:within(1 s)", "every a where timer:within(1 s)"),
])
def test_equality_tells_patterns_apart(left: str, right: str) -> None:
    assert _pattern(left) != _pattern(right)


def test_until_over_a_repeat_keeps_its_parentheses() -> None:
    """Until(count=None) over a Repeat is `([n] p) until q`, not the bounded `[n] p until q`."""
    a, b = ast.EventAtom("a", "A", None), ast.EventAtom(None, "B", None)
    assert format_pattern(ast.Until(ast.Repeat(2, a), b, None)) == "([2] a=A) until B"
    assert format_pattern(ast.Until(a, b, 2)) == "[2] a=A until B"
    assert format_pattern(ast.Until(ast.Repeat(3, a), b, 2)) == "[2] ([3] a=A) until B"


def test_printer_rejects_what_is_not_a_node() -> None:
    with pytest.raises(TypeError):
        format_expr(ast.EventAtom(None, "A", None))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        format_expr(ast.Literal(float("nan")))


# ------------------------------------------------------------------ parser fixes that must hold


def test_parenthesized_repeat_before_until_is_not_a_bounded_until() -> None:
    assert _pattern("([2] a=A) until B") != _pattern("[2] a=A until B")

