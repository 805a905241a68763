"""Found in review of the second edition's runtime: each test showed a bug (fixed since).

Each test says what the correct behaviour is and why (the semantics of docs/language.md,
sections 6.8 to 6.11 and 10). Written with the `run` helper of test_windows_semantics.
"""

import pytest
from helpers import load
from test_windows_semantics import PRELUDE, run

from cep.checks.rules import PRIOR_IN_SNAPSHOT


def _reading(at: float, value: int, room: str = "a") -> tuple:
    return (at, "Reading", {"room": room, "value": value})


# ------------------------------------------------------------------ prior() and OUTPUT


@pytest.mark.parametrize("place", ["SELECT prior(1, value) AS p",
                                   "SELECT value HAVING prior(1, value) > 0"])
def test_prior_is_refused_in_a_snapshot_result(place):
    # A SNAPSHOT result is made at a period's end: there is no arriving event to count
    # back from (an earlier version read the instance's history with an offset, which was
    # wrong both at the history's depth and per group). WHERE, before the window, keeps it.
    select, _, having = place.partition(" HAVING ")
    rule = (f"{select} FROM Reading#length(5) {'HAVING ' + having if having else ''} "
            "OUTPUT SNAPSHOT EVERY 1 min;")
    loaded = load(PRELUDE + rule)
    assert [d.message for d in loaded.diagnostics.errors] == [PRIOR_IN_SNAPSHOT]
    assert load(PRELUDE + "SELECT count(*) AS n FROM Reading#length(5) "
                "WHERE prior(1, value) < value OUTPUT SNAPSHOT EVERY 1 min;").ok


def test_prior_in_the_payload_of_a_select_rules_output_last_result():
    # Correct: the held result is the one of the Reading with value 2, whose previous event
    # had value 1, so its PUBLISH has p = 1 (as without OUTPUT). The payload is built at the
    # period's end, when no history is set, so prior() is null.
    rules = ("SELECT value FROM Reading OUTPUT LAST EVERY 1 min "
             "PUBLISH 't' PAYLOAD {\"v\": value, \"p\": prior(1, value)};")
    assert run(rules, [_reading(10, 1), _reading(20, 2)], until=70, kinds=("publish",)) == \
        [(60, "t", {"v": 2, "p": 1})]


def test_prior_in_the_payload_of_an_on_rules_output_last_result():
    # Correct: as above for an ON rule: the last match of the period is the Reading with
    # value 2, and prior(1, value) of it is 1; it comes out null.
    rules = ("ON Reading OUTPUT LAST EVERY 1 min "
             "PUBLISH 't' PAYLOAD {\"v\": value, \"p\": prior(1, value)};")
    assert run(rules, [_reading(10, 1), _reading(20, 2)], until=70, kinds=("publish",)) == \
        [(60, "t", {"v": 2, "p": 1})]


# ------------------------------------------------------------------ equal timestamps


def test_a_last_result_made_by_a_timer_at_a_period_end_belongs_to_the_next_period():
    # Correct: periods are half-open ([0, 60) then [60, 120)); a's result (made at 50 s) is
    # the last of the first period and goes out at 60 s; b's (made by its timer at exactly
    # 60 s) belongs to the next period and goes out at 120 s. Because b's pattern timer was
    # set (at 10 s) before the LAST timer (at 50 s), it fires first at 60 s and overwrites a's
    # held result: a's is lost and b's goes out a period early.
    rules = ("SELECT b.room AS room FROM PATTERN [every b=Bell -> timer:interval(50 sec)] "
             "OUTPUT LAST EVERY 1 min;")
    events = [(0, "Bell", {"room": "a"}), (10, "Bell", {"room": "b"})]
    assert run(rules, events, until=200) == [(60, {"room": "a"}), (120, {"room": "b"})]


def test_a_snapshot_does_not_count_what_a_timer_makes_at_its_period_end():
    # Correct: "A period's end comes before an event at the same instant ... SNAPSHOT counts
    # A and B, not C" (section 6.10): the Late event made at exactly 60 s is not in the 60 s
    # snapshot (n = 1), only in the next one (n = 2 at 120 s).
    rules = ("INSERT INTO Late SELECT b.room AS room "
             "FROM PATTERN [every b=Bell -> timer:interval(50 sec)];\n"
             "SELECT count(*) AS n FROM Late#length(10) OUTPUT SNAPSHOT EVERY 1 min;")
    events = [(0, "Bell", {"room": "a"}), (10, "Bell", {"room": "b"})]
    # (the period's end comes first, so its snapshot line comes before b's Late line)
    assert run(rules, events, until=130) == [
        (50, {"room": "a"}), (60, {"n": 1}), (60, {"room": "b"}), (120, {"n": 2})]


def test_a_time_window_edge_with_millisecond_times():
    # Correct: an event at t is in #time(d) on [t, t + d): the Bell at 0.400 s has left at
    # 0.600 s. The edge is decided by float addition (t + d rounds above the later event's
    # time), so it is still counted.
    rules = "SELECT count(*) AS n FROM Bell#time(200 msec);"
    events = [(0.4, "Bell", {"room": "a"}), (0.6, "Bell", {"room": "a"})]
    assert run(rules, events) == [(0.4, {"n": 1}), (0.6, {"n": 1})]


def test_output_first_passes_exactly_d_later_with_millisecond_times():
    # Correct: "one exactly d later passes": 1.6 s is exactly 1.2 s after 0.4 s. The same
    # float addition as above drops it.
    rules = "SELECT room FROM Bell OUTPUT FIRST EVERY 1.2 sec;"
    events = [(0.4, "Bell", {"room": "a"}), (1.6, "Bell", {"room": "a"})]
    assert run(rules, events) == [(0.4, {"room": "a"}), (1.6, {"room": "a"})]


# ------------------------------------------------------------------ named windows


def test_named_window_filters_do_not_depend_on_declaration_order():
    # Correct: the result must not depend on the order of two CREATE WINDOW statements. The
    # only order-free reading is that a window's filter sees the windows as they were before
    # the event (as a filter reading its own window must): Rise takes the 5, which is above
    # the previous reading 1, in both orders. Now, with Last declared first, Last already
    # holds the event when Rise's filter runs, so it compares the 5 with itself.
    tail = "SELECT Rise.value AS r FROM Tick;"
    last = "CREATE WINDOW Last#lastevent FROM Reading;\n"
    rise = "CREATE WINDOW Rise#lastevent FROM Reading(value > Last.value);\n"
    events = [_reading(0, 1), _reading(1, 5), (2, "Tick", {"n": 1})]
    assert run(rise + last + tail, events) == [(2, {"r": 5})]
    assert run(last + rise + tail, events) == [(2, {"r": 5})]


def test_a_keyed_read_with_a_null_key_is_null():
    # Correct: a null key finds nothing, as in the equivalent subquery (a comparison with null
    # is false) and as "a function with a null argument returns null". Now W[room] of a Bell
    # without a room returns the value of whichever Reading arrived without a room.
    rules = ("CREATE WINDOW W#unique(room) FROM Reading;\n"
             "SELECT W[room].value AS v, (SELECT value FROM W WHERE room = Bell.room) AS q "
             "FROM Bell;")
    events = [(0, "Reading", {"value": 3}), (1, "Bell", {})]
    assert run(rules, events) == [(1, {"v": None, "q": None})]


# ------------------------------------------------------------------ aggregates


def test_stddev_of_equal_values_is_zero():
    # Correct: the sample standard deviation of [1, 1] is exactly 0.0 (HAVING stddev(value) = 0
    # is how a stuck sensor is found). Welford's update run backwards leaves a rounding
    # residue in m2 whose square root is 2.1e-08.
    rules = "SELECT stddev(value) AS sd FROM Reading#length(2);"
    events = [_reading(0, -1), _reading(1, 1), _reading(2, 1)]
    assert run(rules, events)[-1] == (2, {"sd": 0.0})


def test_min_max_leave_out_a_value_that_is_not_a_number():
    # Correct: sum, avg and stddev leave out NaN (aggregates.py: "not summed"); max must too,
    # or at least not forget the larger values before it: the max of 10, NaN, 5 is 10. The
    # monotonic deque pops everything before a NaN and then the NaN itself, giving null, then 5.
    nan = "1e308 * 10 - 1e308 * 10"
    rules = (f"SELECT max(CASE WHEN value = 0 THEN {nan} ELSE value END) AS hi "
             "FROM Reading#length(5);")
    events = [_reading(0, 10), _reading(1, 0), _reading(2, 5)]
    assert run(rules, events) == [(0, {"hi": 10}), (1, {"hi": 10}), (2, {"hi": 10})]


# ------------------------------------------------------------------ expressions


def test_joining_text_to_a_float_that_is_not_finite_is_null():
    # Correct: null, as cast(x, STRING) of the same value is (convert._cast_string refuses
    # it) and as a non-finite number is null in output lines; 'inf' is not the text of any
    # FLOAT a payload could carry.
    rules = "SELECT 't=' + value * 1e308 * 10 AS x FROM Reading;"
    assert run(rules, [_reading(0, 1)]) == [(0, {"x": None})]


def test_a_subquery_that_aggregates_reads_no_plain_attribute():
    # `(SELECT max(value) - value FROM W)`: an aggregate is over all the window's events, a
    # plain attribute needs one event: there is none, so the checks refuse it (it was null).
    loaded = load(PRELUDE + "CREATE WINDOW W#length(5) FROM Reading;\n"
                  "SELECT (SELECT max(value) - value FROM W) AS x FROM Tick;")
    (error,) = loaded.diagnostics.errors
    assert error.message.startswith("`value` is not inside an aggregate")
    assert load(PRELUDE + "CREATE WINDOW W#length(5) FROM Reading;\n"
                "SELECT (SELECT max(value) - last(value) FROM W) AS x FROM Tick;").ok
