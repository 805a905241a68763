"""Found in review of the time features: each test showed a bug (fixed since).

The comment of each test says what the correct behaviour is and why.
"""

from __future__ import annotations

from helpers import run_rules
from test_recurring_sun import BERLIN, context_lines

# ---------------------------------------------------------------- sun contexts with offsets


def test_sun_offsets_pushing_start_past_end_give_no_occurrence_not_a_day_long_one():
    """`START SUNSET + 4 hours END SUNRISE - 4 hours` in Berlin in July: the night is
    shorter than 8 hours, so START (sunset + 4 h, after midnight) is after both the END of
    its day and the next day's END (sunrise - 4 h, just before START).

    Semantics: "an END before START on the day is the next day's"; when that one is before
    START too, the day has no occurrence. Recurrence.occurrence goes on to the END of the
    day after that (the third day), so the context is open some 23 hours a day (noon
    included) from May to August, and on 24 July two instances are open at once (the
    23-hour one from 23 July 01:13:56 and the day's own, both ending 01:13:45): rules
    in the context run twice. Expected: only the days whose START comes before their own
    or the next day's END, one instance at a time.
    """
    lines = context_lines("CREATE CONTEXT N START SUNSET + 4 hours END SUNRISE - 4 hours;",
                          "Europe/Berlin", BERLIN, "2026-07-21T12:00", "2026-07-26T12:00")
    assert lines == ["07-24 01:12:33+0200 start", "07-24 01:13:45+0200 end",
                     "07-25 01:11:08+0200 start", "07-25 01:15:13+0200 end",
                     "07-26 01:09:41+0200 start", "07-26 01:16:42+0200 end"]


# ---------------------------------------------------------------- equal instants

DOOR = """
SET TIMEZONE 'UTC';
CREATE EVENT Door (door STRING, contact BOOL) FROM TOPIC 'door/{door}';
"""


def test_an_instance_ended_by_its_terminating_timer_does_not_meet_a_context_starting_then():
    """Away is [12:00, 22:00) (its terminating pattern `timer:at(22:00)` closes it at
    22:00), Night is [22:00, 06:00): they never overlap, so AwayAtNight must not open.

    (The bug: a terminating pattern's timer was a pattern timer, so Night's START came
    before Away's END; the combination opened, ran ON START (published 'armed') and
    closed at once.) (With `DURATION` instead of the terminating pattern
    both are context timers and the order is that in which they were scheduled: Away
    opened at 21:00 with DURATION 1 hour arms the alarm the same way, as Night's 22:00
    START was scheduled when the engine started.) At one instant the ENDs must come
    before the STARTs.
    """
    rules = DOOR + """
    CREATE CONTEXT Away INITIATED BY Door(contact = true) TERMINATED BY PATTERN [ timer:at(22:00) ];
    CREATE CONTEXT Night START 22:00 END 06:00;
    CREATE CONTEXT AwayAtNight AS Night AND Away;
    CONTEXT AwayAtNight ON START PUBLISH 'alarm' PAYLOAD 'armed';
    """
    lines = run_rules(rules, [("2026-01-01T12:00:00", "door/front", {"contact": True})],
                      until="2026-01-02T00:00:00")
    assert '01-01 22:00:00 publish alarm "armed"' not in lines
    assert "01-01 22:00:00 context-start AwayAtNight key=null" not in lines


def test_a_rule_timer_due_when_the_terminating_pattern_closes_the_instance_does_not_fire():
    """`TERMINATED BY PATTERN [ timer:interval(2 hours) ]` and `DURATION 2 hours` both make
    the instance [20:00, 22:00); a rule timer of the instance due at 22:00 is outside it.
    With DURATION it is dropped (the context deadline fires first); with the terminating
    pattern the rule's timer, set earlier (the rules start before the terminating
    pattern), fires first and the rule emits at 22:00 in an instance that ends then. The
    completion of the terminating pattern is not in the instance (as its completing event
    is not): both forms must give the same lines.
    """
    rules = DOOR + """
    CREATE CONTEXT Away INITIATED BY Door(contact = true) %s;
    @name('late') CONTEXT Away SELECT 'x' AS x FROM PATTERN [ timer:interval(2 hours) ];
    """
    trace = [("2026-01-01T20:00:00", "door/front", {"contact": True})]
    by_duration = run_rules(rules % "DURATION 2 hours", trace, until="2026-01-02T00:00:00")
    by_pattern = run_rules(rules % "TERMINATED BY PATTERN [ timer:interval(2 hours) ]", trace,
                           until="2026-01-02T00:00:00")
    assert by_duration == ["01-01 20:00:00 context-start Away key=null",
                           "01-01 22:00:00 context-end Away key=null"]
    assert by_pattern == by_duration
