"""Pattern semantics, table-driven: pattern, events, exact matches with their times.

Events are written `A1 B1 ...` (type = first letter, one second apart from 0),
or `A1@2.5` for an explicit time and `B2:v=7` for the attribute v.  A match is
(time, {tag: event id, or a list of ids for a repeated tag}).
"""

import pytest
from helpers import run_pattern

CONTRACT = "A1 B1 C1 B2 A2 D1 A3 B3 E1 A4 F1 B4"

# The conformance table of the contract (section 3), exactly.
EVERY_TABLE = [
    ("every (a=A -> b=B)", CONTRACT,
     [(1, {"a": "A1", "b": "B1"}), (7, {"a": "A2", "b": "B3"}), (11, {"a": "A4", "b": "B4"})]),
    ("every a=A -> b=B", CONTRACT,
     [(1, {"a": "A1", "b": "B1"}), (7, {"a": "A2", "b": "B3"}), (7, {"a": "A3", "b": "B3"}),
      (11, {"a": "A4", "b": "B4"})]),
    ("a=A -> every b=B", CONTRACT,
     [(1, {"a": "A1", "b": "B1"}), (3, {"a": "A1", "b": "B2"}), (7, {"a": "A1", "b": "B3"}),
      (11, {"a": "A1", "b": "B4"})]),
    ("every a=A -> every b=B", CONTRACT,
     [(1, {"a": "A1", "b": "B1"}), (3, {"a": "A1", "b": "B2"}),
      (7, {"a": "A1", "b": "B3"}), (7, {"a": "A2", "b": "B3"}), (7, {"a": "A3", "b": "B3"}),
      (11, {"a": "A1", "b": "B4"}), (11, {"a": "A2", "b": "B4"}), (11, {"a": "A3", "b": "B4"}),
      (11, {"a": "A4", "b": "B4"})]),
]

CASES = [
    # -> and every
    ("followed-by-once", "a=A -> b=B", "A1 A2 B1 B2", [(2, {"a": "A1", "b": "B1"})]),
    ("atom-once", "a=A", "A1 A2", [(0, {"a": "A1"})]),
    ("every-atom", "every a=A", "A1 B1 A2", [(0, {"a": "A1"}), (2, {"a": "A2"})]),
    ("three-steps", "every a=A -> b=B -> c=C", "A1 B1 A2 C1 B2 C2",
     [(3, {"a": "A1", "b": "B1", "c": "C1"}), (5, {"a": "A2", "b": "B2", "c": "C2"})]),
    ("restart-sees-only-later-events", "every (a=A -> b=A)", "A1 A2 A3 A4",
     [(1, {"a": "A1", "b": "A2"}), (3, {"a": "A3", "b": "A4"})]),
    ("next-step-sees-only-later", "every a=A -> b=A", "A1 A2 A3",
     [(1, {"a": "A1", "b": "A2"}), (2, {"a": "A2", "b": "A3"})]),
    ("filter-uses-earlier-tag", "every a=A -> b=B(v > a.v)", "A1:v=5@0 B1:v=3@1 B2:v=7@2",
     [(2, {"a": "A1", "b": "B2"})]),
    ("filter-on-atom", "every a=A(v >= 2)", "A1:v=1 A2:v=2 A3:v=3",
     [(1, {"a": "A2"}), (2, {"a": "A3"})]),
    # where timer:within: half-open window
    ("within-inside", "every a=A -> b=B where timer:within(10 sec)", "A1@0 B1@9.999",
     [(9.999, {"a": "A1", "b": "B1"})]),
    ("within-exactly-d-is-late", "every a=A -> b=B where timer:within(10 sec)", "A1@0 B1@10",
     []),
    ("within-binds-tighter-than-every", "every a=A where timer:within(5 sec)",
     "A1@3 A2@10 A3@30", [(3, {"a": "A1"}), (10, {"a": "A2"}), (30, {"a": "A3"})]),
    ("within-without-every-expires", "a=A where timer:within(5 sec)", "A1@6", []),
    ("within-whole-sequence", "every (a=A -> b=B) where timer:within(5 sec)",
     "A1@1 B1@7 A2@8 B2@9", [(9, {"a": "A2", "b": "B2"})]),
    # not
    ("not-interval-fires", "every a=A -> (timer:interval(10 sec) and not b=B)", "A1@0",
     [(10, {"a": "A1"})]),
    ("not-interval-killed", "every a=A -> (timer:interval(10 sec) and not b=B)",
     "A1@0 B1@5", []),
    ("not-wins-same-event", "every a=A -> (b=B and not c=B(v > 5))", "A1@0 B1:v=7@1 B2:v=1@2",
     []),
    ("not-other-event-ok", "every a=A -> (b=B and not c=B(v > 5))", "A1@0 B1:v=1@1",
     [(1, {"a": "A1", "b": "B1"})]),
    ("not-true-from-start", "every a=A -> not b=B", "A1 B1 A2", [(0, {"a": "A1"}),
                                                                 (2, {"a": "A2"})]),
    ("timer-before-event-same-instant", "every a=A -> (timer:interval(10 sec) and not b=B)",
     "A1@0 B1@10", [(10, {"a": "A1"})]),
    ("not-under-and-finishes-with-the-match", "every (a=A -> (timer:interval(10 sec) and not b=B))",
     "A1@0 A2@20 B1@40 A3@60", [(10, {"a": "A1"}), (30, {"a": "A2"}), (70, {"a": "A3"})]),
    ("every-and-not-restarts-once", "every (timer:interval(1 sec) and not b=B)", "B1@5.5",
     [(t, {}) for t in (1, 2, 3, 4, 5)] + [(t + 0.5, {}) for t in range(6, 100)]),
    ("followed-by-not-finishes", "every (a=A -> not b=B)", "A1 A2 B1 A3",
     [(0, {"a": "A1"}), (1, {"a": "A2"}), (3, {"a": "A3"})]),
    ("and-not-without-every-is-done", "a=A and not b=B", "A1 B1 A2", [(0, {"a": "A1"})]),
    # and / or
    ("and-any-order", "every (a=A and b=B)", "B1 A1 A2 B2 A3",
     [(1, {"a": "A1", "b": "B1"}), (3, {"a": "A2", "b": "B2"})]),
    ("and-pairs-with-kept-results", "every a=A and every b=B", "A1 B1 A2 B2",
     [(1, {"a": "A1", "b": "B1"}), (2, {"a": "A2", "b": "B1"}), (3, {"a": "A1", "b": "B2"}),
      (3, {"a": "A2", "b": "B2"})]),
    ("or-either", "every (a=A or b=B)", "A1 C1 B1", [(0, {"a": "A1"}), (2, {"b": "B1"})]),
    ("or-once", "a=A or b=B", "B1 A1", [(0, {"b": "B1"})]),
    ("or-unbound-tag-is-null", "every a=A -> (b=B or c=C)", "A1 C1",
     [(1, {"a": "A1", "c": "C1"})]),
    # repeat and until
    ("repeat-2", "every [2] a=A", "A1 A2 A3 A4",
     [(1, {"a": ["A1", "A2"]}), (3, {"a": ["A3", "A4"]})]),
    ("repeat-then", "[2] a=A -> b=B", "A1 B0 A2 B1", [(3, {"a": ["A1", "A2"], "b": "B1"})]),
    ("until", "a=A until b=B", "A1 A2 B1 A3", [(2, {"a": ["A1", "A2"], "b": "B1"})]),
    ("until-no-repeats", "a=A until b=B", "B1", [(0, {"a": [], "b": "B1"})]),
    ("bounded-until-reaches-n", "[2] a=A until b=B", "A1 A2 B1", [(1, {"a": ["A1", "A2"]})]),
    ("bounded-until-stopped", "[2] a=A until b=B", "A1 B1 A2", []),
    # timer:interval
    ("interval-once", "timer:interval(10 sec)", "A1@3", [(10, {})]),
    ("every-interval", "every timer:interval(10 sec)", "A1@35",
     [(t, {}) for t in range(10, 101, 10)]),  # the run advances to 100
    ("interval-after-event", "every a=A -> timer:interval(5 sec)", "A1@0 A2@1",
     [(5, {"a": "A1"}), (6, {"a": "A2"})]),
    ("duration-sum", "every a=A -> timer:interval(1 min 30 sec)", "A1@0",
     [(90, {"a": "A1"})]),
]


def _ids(cases):
    return [c[0] for c in cases]


@pytest.mark.parametrize("pattern,events,expected", EVERY_TABLE, ids=_ids(EVERY_TABLE))
def test_contract_every_table(pattern, events, expected):
    matches, _ = run_pattern(pattern, events)
    assert matches == expected


@pytest.mark.parametrize("case_id,pattern,events,expected", CASES, ids=_ids(CASES))
def test_pattern_case(case_id, pattern, events, expected):
    matches, _ = run_pattern(pattern, events, until=100)
    assert matches == expected


MEMORY = [
    # pattern, events, live states left (atoms + timers) after the run
    ("every a=A -> b=B where timer:within(10 sec)", "A1@0 A2@1 A3@2", 1),
    ("every a=A -> (timer:interval(10 sec) and not b=B)", "A1@0 A2@1 B1@2", 1),
    ("every a=A -> b=B", "A1 A2 A3", 4),
    ("a=A -> b=B", "A1 B1", 0),
    ("a=A and not b=B", "A1 B1 A2", 0),
    ("every a=A -> b=B -> (timer:interval(20 min) and not c=C)",
     # 30 windows, 29 fired and released; left: the waiting A, the last window's timer and C
     " ".join(f"A{i}@{i * 3000} B{i}@{i * 3000 + 1}" for i in range(30)), 3),
]


@pytest.mark.parametrize("pattern,events,live", MEMORY, ids=[m[0] for m in MEMORY])
def test_state_that_cannot_complete_is_released(pattern, events, live):
    _, engine = run_pattern(pattern, events, until=100)
    assert engine.partial_matches() == {"p": live}
    assert engine.timers.pending() == 0 or live > 0
