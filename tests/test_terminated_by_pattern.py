"""Patterns that open and close event intervals, with exact output lines.

`TERMINATED BY PATTERN [p]`: `p` starts when an instance opens, over the events after the
opening one; its first match closes the instance, and the event completing it does not
belong to it.  With DURATION too, whichever comes first; per instance, and per key in a
keyed context.  `INITIATED BY PATTERN [p]`: the event completing `p` belongs to the
instance it opens, whose ON START / ON END see the tags of `p`'s match.
Lines are compacted by helpers.run_rules as `MM-DD HH:MM:SS kind ...`.
"""

from __future__ import annotations

import pytest
from helpers import run_rules

# ---------------------------------------------------------------- TERMINATED BY PATTERN

TYPES = """
SET TIMEZONE 'UTC';
CREATE EVENT Motion (room STRING, occupancy BOOL) FROM TOPIC 'motion/{room}';
CREATE EVENT Door (door STRING, contact BOOL) FROM TOPIC 'door/{door}';
"""

SECOND_MOTION = TYPES + """
CREATE CONTEXT Away INITIATED BY Door(contact = true) TERMINATED BY PATTERN [ Motion -> Motion ]%s;
CONTEXT Away ON START PUBLISH 'away' PAYLOAD 'start';
CONTEXT Away ON END PUBLISH 'away' PAYLOAD 'end';
@name('seen') CONTEXT Away SELECT room FROM Motion;
"""
SECOND_MOTION_TRACE = [("2026-01-01T10:00:00", "motion/hall", {}),     # before: does not count
                       ("2026-01-01T10:01:00", "door/front", {"contact": True}),
                       ("2026-01-01T10:02:00", "motion/hall", {}),
                       ("2026-01-01T10:03:00", "motion/kitchen", {}),  # the second: closes
                       ("2026-01-01T10:04:00", "motion/hall", {})]
BY_PATTERN = ["01-01 10:01:00 context-start Away key=null", '01-01 10:01:00 publish away "start"',
              '01-01 10:02:00 event seen key=null {"room": "hall"}',
              # the completing motion does not belong to the instance it closes
              "01-01 10:03:00 context-end Away key=null", '01-01 10:03:00 publish away "end"']


@pytest.mark.parametrize("duration,expected", [
    ("", BY_PATTERN),
    (" DURATION 10 min", BY_PATTERN),  # the pattern comes first
    (" DURATION 90 sec", [  # the duration comes first
        "01-01 10:01:00 context-start Away key=null", '01-01 10:01:00 publish away "start"',
        '01-01 10:02:00 event seen key=null {"room": "hall"}',
        "01-01 10:02:30 context-end Away key=null", '01-01 10:02:30 publish away "end"']),
], ids=["pattern", "pattern before duration", "duration before pattern"])
def test_the_second_motion_after_opening_closes(duration, expected):
    lines = run_rules(SECOND_MOTION % duration, SECOND_MOTION_TRACE, until="2026-01-01T11:00:00")
    assert lines == expected


def test_the_opening_event_itself_does_not_count():
    rules = TYPES + """
    CREATE CONTEXT Busy INITIATED BY Motion(occupancy = true) TERMINATED BY PATTERN [ Motion -> Motion ];
    CONTEXT Busy ON END PUBLISH 'busy' PAYLOAD 'end';
    @name('seen') CONTEXT Busy SELECT room FROM Motion;
    """
    trace = [("2026-01-01T10:00:00", "motion/hall", {"occupancy": True}),  # opens: not counted
             ("2026-01-01T10:01:00", "motion/hall", {}),
             ("2026-01-01T10:02:00", "motion/kitchen", {})]
    assert run_rules(rules, trace) == [
        "01-01 10:00:00 context-start Busy key=null",
        '01-01 10:00:00 event seen key=null {"room": "hall"}',
        '01-01 10:01:00 event seen key=null {"room": "hall"}',
        "01-01 10:02:00 context-end Busy key=null",
        '01-01 10:02:00 publish busy "end"']


POLICIES = TYPES + """
CREATE CONTEXT Busy INITIATED BY Door(contact = false)
    TERMINATED BY PATTERN [ Motion -> Motion ] POLICY %s;
@name('seen') CONTEXT Busy SELECT room FROM Motion;
"""
POLICY_TRACE = [("2026-01-01T10:00:00", "door/front", {"contact": False}),
                ("2026-01-01T10:01:00", "motion/hall", {}),
                ("2026-01-01T10:02:00", "door/front", {"contact": False}),  # a further initiator
                ("2026-01-01T10:03:00", "motion/hall", {}),
                ("2026-01-01T10:04:00", "motion/hall", {}),
                ("2026-01-01T10:05:00", "motion/hall", {})]
HALL = '{"room": "hall"}'
KEPT = ["01-01 10:00:00 context-start Busy key=null", f"01-01 10:01:00 event seen key=null {HALL}",
        "01-01 10:03:00 context-end Busy key=null"]


@pytest.mark.parametrize("policy,expected", [
    ("IGNORE", KEPT),
    ("EXTEND", KEPT),  # the instance and its terminating pattern's partial match stay
    # the terminating pattern starts again with the new instance
    ("REFRESH", ["01-01 10:00:00 context-start Busy key=null",
                 f"01-01 10:01:00 event seen key=null {HALL}",
                 "01-01 10:02:00 context-end Busy key=null",
                 "01-01 10:02:00 context-start Busy key=null",
                 f"01-01 10:03:00 event seen key=null {HALL}",
                 "01-01 10:04:00 context-end Busy key=null"]),
    # each instance has its own: the 10:03 motion closes the first and belongs to the second
    ("ADD", ["01-01 10:00:00 context-start Busy key=null",
             f"01-01 10:01:00 event seen key=null {HALL}",
             "01-01 10:02:00 context-start Busy key=null",
             "01-01 10:03:00 context-end Busy key=null",
             f"01-01 10:03:00 event seen key=null {HALL}",
             "01-01 10:04:00 context-end Busy key=null"]),
])
def test_terminating_pattern_under_each_policy(policy, expected):
    assert run_rules(POLICIES % policy, POLICY_TRACE) == expected


def test_terminating_pattern_with_a_timer():
    """Occupied until two minutes without motion (counted from the opening, then from each
    motion)."""
    rules = TYPES + """
    CREATE CONTEXT Occupied INITIATED BY Motion(occupancy = true)
        TERMINATED BY PATTERN [ every (timer:interval(2 min) and not Motion) ];
    CONTEXT Occupied ON END PUBLISH 'home/lights' PAYLOAD 'off';
    """
    trace = [("2026-01-01T10:00:00", "motion/hall", {"occupancy": True}),
             ("2026-01-01T10:01:00", "motion/hall", {"occupancy": False}),
             ("2026-01-01T10:02:30", "motion/hall", {"occupancy": False}),
             ("2026-01-01T10:10:00", "motion/hall", {"occupancy": True})]
    assert run_rules(rules, trace, until="2026-01-01T11:00:00") == [
        "01-01 10:00:00 context-start Occupied key=null",
        "01-01 10:04:30 context-end Occupied key=null",
        '01-01 10:04:30 publish home/lights "off"',
        "01-01 10:10:00 context-start Occupied key=null",
        "01-01 10:12:00 context-end Occupied key=null",
        '01-01 10:12:00 publish home/lights "off"']


def test_terminating_pattern_per_key():
    rules = TYPES + """
    CREATE CONTEXT Busy PARTITION BY room INITIATED BY Motion(occupancy = true)
        TERMINATED BY PATTERN [ Motion -> Motion ] DURATION 30 min;
    CONTEXT Busy ON END PUBLISH 'home/{room}/idle' PAYLOAD {"key": context.key};
    @name('seen') CONTEXT Busy SELECT room FROM Motion;
    """
    trace = [("2026-01-01T10:00:00", "motion/hall", {"occupancy": True}),
             ("2026-01-01T10:01:00", "motion/kitchen", {"occupancy": True}),
             ("2026-01-01T10:02:00", "motion/hall", {}),
             ("2026-01-01T10:03:00", "motion/kitchen", {}),
             ("2026-01-01T10:04:00", "motion/hall", {}),     # the hall's second: closes it
             ("2026-01-01T10:05:00", "motion/kitchen", {}),  # the kitchen's second
             ("2026-01-01T10:06:00", "motion/bath", {})]     # a key with no instance
    assert run_rules(rules, trace, until="2026-01-01T11:00:00") == [
        '01-01 10:00:00 context-start Busy key="hall"',
        '01-01 10:00:00 event seen key="hall" {"room": "hall"}',
        '01-01 10:01:00 context-start Busy key="kitchen"',
        '01-01 10:01:00 event seen key="kitchen" {"room": "kitchen"}',
        '01-01 10:02:00 event seen key="hall" {"room": "hall"}',
        '01-01 10:03:00 event seen key="kitchen" {"room": "kitchen"}',
        '01-01 10:04:00 context-end Busy key="hall"',
        '01-01 10:04:00 publish home/hall/idle {"key": "hall"}',
        '01-01 10:05:00 context-end Busy key="kitchen"',
        '01-01 10:05:00 publish home/kitchen/idle {"key": "kitchen"}']


# ---------------------------------------------------------------- INITIATED BY PATTERN: its tags

VISIT = """
SET TIMEZONE 'UTC';
CREATE EVENT Presence (person STRING, room STRING) FROM TOPIC 'presence/{person}';
CREATE EVENT Door (door STRING, contact BOOL, room STRING) FROM TOPIC 'door/{door}';
CREATE CONTEXT Visit%s INITIATED BY PATTERN [ every a=Presence -> b=Door(contact = false) ]
    DURATION 10 min;
CONTEXT Visit ON START PUBLISH 'visit/start' PAYLOAD {"who": a.person, "door": b.door};
CONTEXT Visit ON END PUBLISH 'visit/end' PAYLOAD {"who": a.person};
@name('doors') CONTEXT Visit SELECT door FROM Door;
"""
VISIT_TRACE = [("2026-01-01T10:00:00", "presence/alice", {"room": "hall"}),
               ("2026-01-01T10:01:00", "door/front", {"contact": False, "room": "kitchen"}),
               ("2026-01-01T10:02:00", "presence/bob", {"room": "kitchen"}),
               ("2026-01-01T10:03:00", "door/back", {"contact": False, "room": "hall"})]


def test_on_start_and_on_end_see_the_initiating_patterns_tags():
    assert run_rules(VISIT % "", VISIT_TRACE, until="2026-01-01T11:00:00", contexts=False) == [
        '01-01 10:01:00 publish visit/start {"who": "alice", "door": "front"}',
        # the event completing the initiating pattern belongs to the instance it opens
        '01-01 10:01:00 event doors key=null {"door": "front"}',
        '01-01 10:03:00 event doors key=null {"door": "back"}',  # bob's match: IGNOREd
        '01-01 10:11:00 publish visit/end {"who": "alice"}']


def test_each_instance_sees_its_own_match():
    rules = (VISIT % "").replace("DURATION 10 min", "DURATION 10 min POLICY ADD")
    assert run_rules(rules, VISIT_TRACE, until="2026-01-01T11:00:00", contexts=False) == [
        '01-01 10:01:00 publish visit/start {"who": "alice", "door": "front"}',
        '01-01 10:01:00 event doors key=null {"door": "front"}',
        '01-01 10:03:00 publish visit/start {"who": "bob", "door": "back"}',
        '01-01 10:03:00 event doors key=null {"door": "back"}',
        '01-01 10:03:00 event doors key=null {"door": "back"}',
        '01-01 10:11:00 publish visit/end {"who": "alice"}',
        '01-01 10:13:00 publish visit/end {"who": "bob"}']


def test_keyed_on_start_sees_the_tags_and_the_key():
    rules = (VISIT % " PARTITION BY room").replace(
        """'visit/start' PAYLOAD {""", """'visit/{room}/start' PAYLOAD {"key": context.key, """)
    # the hall's pattern: alice (10:00) then the back door (10:03); the front door is the
    # kitchen's, before bob came in there
    assert run_rules(rules, VISIT_TRACE, until="2026-01-01T11:00:00") == [
        '01-01 10:03:00 context-start Visit key="hall"',
        '01-01 10:03:00 publish visit/hall/start {"key": "hall", "who": "alice", "door": "back"}',
        '01-01 10:03:00 event doors key="hall" {"door": "back"}',
        '01-01 10:13:00 context-end Visit key="hall"',
        '01-01 10:13:00 publish visit/end {"who": "alice"}']


def test_on_start_sees_repeated_tags():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Motion (room STRING) FROM TOPIC 'motion/{room}';
    CREATE CONTEXT Lively INITIATED BY PATTERN [ every [2] m=Motion ] DURATION 1 min;
    CONTEXT Lively ON START PUBLISH 'lively' PAYLOAD {"first": m[0].room, "second": m[1].room};
    """
    trace = [("2026-01-01T10:00:00", "motion/hall", {}),
             ("2026-01-01T10:00:10", "motion/kitchen", {})]
    assert run_rules(rules, trace, contexts=False) == [
        '01-01 10:00:10 publish lively {"first": "hall", "second": "kitchen"}']


def test_a_composition_sees_its_parts_initiating_tags():
    rules = (VISIT % "") + """
    CREATE CONTEXT Night START 22:00 END 06:00;
    CREATE CONTEXT NightVisit AS Night AND Visit;
    CONTEXT NightVisit ON START PUBLISH 'night_visit' PAYLOAD {"who": a.person};
    """
    trace = [(ts.replace("T10:", "T22:"), topic, payload) for ts, topic, payload in VISIT_TRACE]
    lines = run_rules(rules, trace, until="2026-01-01T23:00:00", contexts=False)
    assert [line for line in lines if "night_visit" in line] == [
        '01-01 22:01:00 publish night_visit {"who": "alice"}']
