"""Keyed event intervals: `PARTITION BY k INITIATED BY ... [TERMINATED BY ...] [POLICY p]`,
an event interval per key, with exact output lines.

An initiator opens (refreshes, extends) its own key's instance only, a terminator closes
its own key's only, an event belongs to its key's open instances, `context.key` is the key,
ON START / ON END run per instance, an initiating pattern runs per key.  Lines are
compacted by helpers.run_rules as `MM-DD HH:MM:SS kind ...`.
"""

from __future__ import annotations

from datetime import UTC

import pytest
from helpers import load, run_rules

from cep.runtime.contexts import EventIntervalRuntime
from cep.runtime.engine import Engine
from cep.runtime.events import Event

# ---------------------------------------------------------------- a door left open, per door

DOORS = """
SET TIMEZONE 'UTC';
CREATE EVENT Door (door STRING, contact BOOL) FROM TOPIC 'zigbee2mqtt/{door}';
CREATE CONTEXT DoorOpen PARTITION BY door INITIATED BY Door(contact = false)
    TERMINATED BY Door(contact = true) DURATION 10 min POLICY %s;
CONTEXT DoorOpen ON START PUBLISH 'home/{door}/open' PAYLOAD {"key": context.key};
CONTEXT DoorOpen ON END PUBLISH 'home/{door}/shut' PAYLOAD {"key": context.key};
@name('reminder') @once
CONTEXT DoorOpen SELECT context.key AS door FROM PATTERN [ timer:interval(5 min) ]
PUBLISH 'home/{door}/reminder' PAYLOAD 'still open';
@name('seen') CONTEXT DoorOpen SELECT door FROM Door;
"""
# The window opens, then the balcony door; the garage reports closed (it has no instance);
# the window reports open again (a further initiator of its key, under the policy); the
# balcony door closes (its terminator: the window's instance stays).
DOOR_TRACE = [("2026-01-01T10:00:00", "zigbee2mqtt/window", {"contact": False}),
              ("2026-01-01T10:01:00", "zigbee2mqtt/balcony", {"contact": False}),
              ("2026-01-01T10:02:00", "zigbee2mqtt/garage", {"contact": True}),
              ("2026-01-01T10:03:00", "zigbee2mqtt/window", {"contact": False}),
              ("2026-01-01T10:04:00", "zigbee2mqtt/balcony", {"contact": True})]


def opened(at, door):
    return [f'01-01 {at} context-start DoorOpen key="{door}"',
            f'01-01 {at} publish home/{door}/open {{"key": "{door}"}}',
            f'01-01 {at} event seen key="{door}" {{"door": "{door}"}}']


def shut(at, door):
    return [f'01-01 {at} context-end DoorOpen key="{door}"',
            f'01-01 {at} publish home/{door}/shut {{"key": "{door}"}}']


def reminded(at, door):
    return [f'01-01 {at} event reminder key="{door}" {{"door": "{door}"}}',
            f'01-01 {at} publish home/{door}/reminder "still open"']


def seen(at, door):
    return [f'01-01 {at} event seen key="{door}" {{"door": "{door}"}}']


# The balcony's instance is the same under every policy: opened at 10:01, closed by its own
# terminator at 10:04, before its reminder (10:06) was due; it never gets the window's.
DOOR_CASES = {
    "ADD": [*opened("10:00:00", "window"), *opened("10:01:00", "balcony"),
            # a second window instance; the event belongs to both
            *opened("10:03:00", "window"), *seen("10:03:00", "window"),
            *shut("10:04:00", "balcony"),
            *reminded("10:05:00", "window"), *reminded("10:08:00", "window"),
            *shut("10:10:00", "window"), *shut("10:13:00", "window")],
    "IGNORE": [*opened("10:00:00", "window"), *opened("10:01:00", "balcony"),
               *seen("10:03:00", "window"),
               *shut("10:04:00", "balcony"),
               *reminded("10:05:00", "window"),
               *shut("10:10:00", "window")],
    "REFRESH": [*opened("10:00:00", "window"), *opened("10:01:00", "balcony"),
                # END, then a new START (its reminder counts from 10:03)
                *shut("10:03:00", "window"), *opened("10:03:00", "window"),
                *shut("10:04:00", "balcony"),
                *reminded("10:08:00", "window"),
                *shut("10:13:00", "window")],
    "EXTEND": [*opened("10:00:00", "window"), *opened("10:01:00", "balcony"),
               *seen("10:03:00", "window"),
               *shut("10:04:00", "balcony"),
               *reminded("10:05:00", "window"),
               *shut("10:13:00", "window")],
}


@pytest.mark.parametrize("policy", list(DOOR_CASES))
def test_door_left_open_per_door_under_each_policy(policy):
    lines = run_rules(DOORS % policy, DOOR_TRACE, until="2026-01-01T11:00:00")
    assert lines == DOOR_CASES[policy]


def test_a_terminator_of_another_key_does_nothing():
    trace = [("2026-01-01T10:00:00", "zigbee2mqtt/window", {"contact": False}),
             ("2026-01-01T10:01:00", "zigbee2mqtt/balcony", {"contact": True}),
             ("2026-01-01T10:02:00", "zigbee2mqtt/balcony", {"contact": True}),
             ("2026-01-01T10:03:00", "zigbee2mqtt/window", {"contact": True}),
             ("2026-01-01T10:04:00", "zigbee2mqtt/window", {"contact": True})]
    lines = run_rules((DOORS % "IGNORE").replace(" DURATION 10 min", ""), trace,
                      until="2026-01-01T11:00:00")
    assert lines == [*opened("10:00:00", "window"), *shut("10:03:00", "window")]


def test_terminator_that_is_also_an_initiator_of_its_key():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Phase (room STRING, name STRING) FROM TOPIC 'phase/{room}';
    CREATE CONTEXT InPhase PARTITION BY room INITIATED BY Phase TERMINATED BY Phase;
    CONTEXT InPhase ON START PUBLISH 'phase/{room}/start' PAYLOAD {"name": name};
    CONTEXT InPhase ON END PUBLISH 'phase/{room}/end' PAYLOAD {"name": name};
    """
    trace = [("2026-01-01T10:00:00", "phase/hall", {"name": "a"}),
             ("2026-01-01T10:01:00", "phase/kitchen", {"name": "b"}),
             ("2026-01-01T10:02:00", "phase/hall", {"name": "c"})]
    assert run_rules(rules, trace, contexts=False) == [
        '01-01 10:00:00 publish phase/hall/start {"name": "a"}',
        '01-01 10:01:00 publish phase/kitchen/start {"name": "b"}',
        # the hall's instance closes, then the same event opens the hall's next one
        '01-01 10:02:00 publish phase/hall/end {"name": "a"}',
        '01-01 10:02:00 publish phase/hall/start {"name": "c"}']


def test_two_key_attributes_and_events_without_the_key():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Leak (floor STRING, room STRING, wet BOOL) FROM TOPIC 'leak/{floor}/{room}';
    CREATE EVENT Valve (floor STRING, room STRING, open BOOL) FROM TOPIC 'valve/{floor}/{room}';
    CREATE CONTEXT Wet PARTITION BY floor, room INITIATED BY Leak(wet = true)
        TERMINATED BY Leak(wet = false);
    CONTEXT Wet ON START PUBLISH 'alarm/{floor}/{room}' PAYLOAD {"key": context.key, "room": room};
    @name('valve') CONTEXT Wet SELECT context.key AS k, open FROM Valve;
    """
    trace = [("2026-01-01T10:00:00", "leak/1/bath", {"wet": True}),
             ("2026-01-01T10:01:00", "valve/1/kitchen", {"open": True}),   # another key
             ("2026-01-01T10:02:00", "valve/1/bath", {"open": False}),
             ("2026-01-01T10:03:00", "leak/2/bath", {"wet": False}),       # another key
             ("2026-01-01T10:04:00", "valve/1/bath", {"open": True}),
             ("2026-01-01T10:05:00", "leak/1/bath", {"wet": False}),
             ("2026-01-01T10:06:00", "valve/1/bath", {"open": False})]     # closed by then
    assert run_rules(rules, trace) == [
        '01-01 10:00:00 context-start Wet key=["1", "bath"]',
        '01-01 10:00:00 publish alarm/1/bath {"key": ["1", "bath"], "room": "bath"}',
        '01-01 10:02:00 event valve key=["1", "bath"] {"k": ["1", "bath"], "open": false}',
        '01-01 10:04:00 event valve key=["1", "bath"] {"k": ["1", "bath"], "open": true}',
        '01-01 10:05:00 context-end Wet key=["1", "bath"]']


def test_an_initiator_without_its_key_opens_nothing():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Named (door STRING, contact BOOL) FROM TOPIC 'named/{door}';
    CREATE CONTEXT DoorOpen PARTITION BY door INITIATED BY Named(contact = false) DURATION 1 min;
    CONTEXT DoorOpen ON START PUBLISH 'open' PAYLOAD {"key": context.key};
    """
    # a payload without `door` (the topic has none either): no key, no instance
    assert run_rules(rules.replace("'named/{door}'", "'named'"),
                     [("2026-01-01T10:00:00", "named", {"contact": False})]) == []
    assert run_rules(rules, [("2026-01-01T10:00:00", "named/front", {"contact": False})],
                     until="2026-01-01T10:05:00") == [
        '01-01 10:00:00 context-start DoorOpen key="front"',
        '01-01 10:00:00 publish open {"key": "front"}',
        '01-01 10:01:00 context-end DoorOpen key="front"']


# ---------------------------------------------------------------- initiating patterns, per key

VISITS = """
SET TIMEZONE 'UTC';
CREATE EVENT Motion (room STRING) FROM TOPIC 'motion/{room}';
CREATE EVENT Door (room STRING, contact BOOL) FROM TOPIC 'door/{room}';
CREATE CONTEXT Entered PARTITION BY room
    INITIATED BY PATTERN [ every Door(contact = false) -> Motion ] DURATION 5 min;
CONTEXT Entered ON START PUBLISH 'home/{room}/entered' PAYLOAD {"key": context.key};
CONTEXT Entered ON END PUBLISH 'home/{room}/left';
@name('moves') CONTEXT Entered SELECT room FROM Motion;
"""


def test_an_initiating_pattern_runs_per_key_and_sees_only_its_keys_events():
    trace = [("2026-01-01T10:00:00", "door/hall", {"contact": False}),
             ("2026-01-01T10:01:00", "motion/kitchen", {}),    # not the hall's motion
             ("2026-01-01T10:02:00", "door/kitchen", {"contact": False}),
             ("2026-01-01T10:03:00", "motion/hall", {}),       # completes the hall's
             ("2026-01-01T10:04:00", "motion/hall", {}),
             ("2026-01-01T10:05:00", "motion/kitchen", {})]    # completes the kitchen's
    assert run_rules(VISITS, trace, until="2026-01-01T11:00:00") == [
        '01-01 10:03:00 context-start Entered key="hall"',
        '01-01 10:03:00 publish home/hall/entered {"key": "hall"}',
        # the event completing the initiating pattern belongs to the instance it opens
        '01-01 10:03:00 event moves key="hall" {"room": "hall"}',
        '01-01 10:04:00 event moves key="hall" {"room": "hall"}',
        '01-01 10:05:00 context-start Entered key="kitchen"',
        '01-01 10:05:00 publish home/kitchen/entered {"key": "kitchen"}',
        '01-01 10:05:00 event moves key="kitchen" {"room": "kitchen"}',
        '01-01 10:08:00 context-end Entered key="hall"',
        '01-01 10:08:00 publish home/hall/left ""',
        '01-01 10:10:00 context-end Entered key="kitchen"',
        '01-01 10:10:00 publish home/kitchen/left ""']


def test_an_initiating_pattern_starting_with_a_timer_starts_with_the_keys_first_event():
    """As a rule in a partition: the key's run starts with its first event of any type
    that carries the key (here a Temperature, which the pattern does not read)."""
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Motion (room STRING) FROM TOPIC 'motion/{room}';
    CREATE EVENT Temperature (room STRING, value FLOAT) FROM TOPIC 'temp/{room}';
    CREATE CONTEXT Quiet PARTITION BY room
        INITIATED BY PATTERN [ every (timer:interval(10 min) and not Motion) ] DURATION 1 min;
    CONTEXT Quiet ON START PUBLISH 'home/{room}/quiet';
    """
    trace = [("2026-01-01T10:00:00", "temp/hall", {"value": 20}),
             ("2026-01-01T10:05:00", "temp/kitchen", {"value": 20}),
             ("2026-01-01T10:12:00", "motion/kitchen", {})]
    assert run_rules(rules, trace, until="2026-01-01T10:25:00", contexts=False) == [
        '01-01 10:10:00 publish home/hall/quiet ""',
        '01-01 10:20:00 publish home/hall/quiet ""',
        '01-01 10:22:00 publish home/kitchen/quiet ""']


# ---------------------------------------------------------------- composition with a keyed interval


def test_keyed_interval_in_a_composition():
    rules = """
    SET TIMEZONE 'UTC';
    CREATE EVENT Door (door STRING, contact BOOL) FROM TOPIC 'zigbee2mqtt/{door}';
    CREATE CONTEXT Night START 22:00 END 06:00;
    CREATE CONTEXT DoorOpen PARTITION BY door INITIATED BY Door(contact = false)
        TERMINATED BY Door(contact = true);
    CREATE CONTEXT OpenAtNight AS Night AND DoorOpen;
    CONTEXT OpenAtNight ON START PUBLISH 'home/{door}/night_alarm' PAYLOAD {"key": context.key};
    """
    trace = [("2026-01-01T21:00:00", "zigbee2mqtt/window", {"contact": False}),
             ("2026-01-01T22:30:00", "zigbee2mqtt/balcony", {"contact": False}),
             ("2026-01-01T22:40:00", "zigbee2mqtt/window", {"contact": False}),
             ("2026-01-01T22:50:00", "zigbee2mqtt/window", {"contact": True})]
    assert run_rules(rules, trace, contexts=False) == [
        '01-01 22:30:00 publish home/balcony/night_alarm {"key": "balcony"}',
        '01-01 22:40:00 publish home/window/night_alarm {"key": "window"}']


# ---------------------------------------------------------------- memory and the limit

T0 = 1_700_000_000.0

MEMORY = """
CREATE EVENT R (k STRING, v INT) FROM TOPIC 'r/{k}';
CREATE CONTEXT Streamed PARTITION BY k INITIATED BY R(v = 1) TERMINATED BY R(v = 0);
CREATE CONTEXT Patterned PARTITION BY k INITIATED BY PATTERN [ every R(v = 2) -> R(v = 3) ]
    DURATION 5 sec;
CREATE CONTEXT Ended PARTITION BY k INITIATED BY R(v = 4)
    TERMINATED BY PATTERN [ R(v = 5) -> R(v = 6) ];
@name('streamed') CONTEXT Streamed SELECT v FROM R;
@name('patterned') CONTEXT Patterned SELECT v FROM R;
@name('ended') CONTEXT Ended SELECT v FROM R;
"""


def _engine(rules: str, **options):
    loaded = load(rules)
    assert loaded.ok, [d.headline() for d in loaded.diagnostics.errors]
    outputs: list[dict] = []
    warnings: list[str] = []
    return Engine(loaded.catalog, outputs.append, UTC, warn=warnings.append,
                  **options), outputs, warnings


def _states(engine: Engine) -> dict[str, int]:
    counts = {}
    for name in ("Streamed", "Patterned", "Ended"):
        runtime = engine.contexts[name]
        assert isinstance(runtime, EventIntervalRuntime)
        counts[name] = len(runtime.by_key)
    return counts


def test_a_key_with_nothing_going_on_holds_nothing():
    engine, outputs, _ = _engine(MEMORY)
    at = T0
    for key in range(3000):
        for v in (1, 2, 4, 7, 3, 5, 0, 6):  # open, wait, close: every key comes back to rest
            at += 0.01
            engine.process(Event("R", at, {"k": f"k{key}", "v": v}))
        if key == 0:
            assert _states(engine) == {"Streamed": 0, "Patterned": 1, "Ended": 0}
    # the Patterned instances close by their DURATION (a timer): until then their keys are
    # live (those of the last 5 seconds), then nothing is left
    assert _states(engine)["Streamed"] == _states(engine)["Ended"] == 0
    assert 0 < _states(engine)["Patterned"] == len(engine.contexts["Patterned"].open) < 100
    engine.advance(at + 60)
    assert _states(engine) == {"Streamed": 0, "Patterned": 0, "Ended": 0}
    assert engine.stats["rule_errors"] == 0
    per_rule = {name: sum(1 for o in outputs if o.get("rule") == name)
                for name in ("streamed", "patterned", "ended")}
    # each key: Streamed sees 1 2 4 7 3 5 (not the closing 0); Patterned sees 3 5 0 6;
    # Ended sees 4 7 3 5 0 (not the 6 that completes its terminating pattern)
    assert per_rule == {"streamed": 6 * 3000, "patterned": 4 * 3000, "ended": 5 * 3000}


def test_keys_waiting_in_their_pattern_are_kept():
    engine, _, _ = _engine(MEMORY)
    for key in range(50):
        engine.process(Event("R", T0 + key, {"k": f"k{key}", "v": 2}))  # each waits for its 3
    assert _states(engine)["Patterned"] == 50
    engine.process(Event("R", T0 + 60, {"k": "k7", "v": 3}))
    assert [i.key for i in engine.contexts["Patterned"].open] == ["k7"]


def test_a_keyed_interval_at_its_limit_refuses_new_keys_and_says_so():
    rules = """
    CREATE EVENT R (k STRING, v INT) FROM TOPIC 'r/{k}';
    CREATE CONTEXT Open PARTITION BY k INITIATED BY R(v = 1) TERMINATED BY R(v = 0);
    @name('in_open') CONTEXT Open SELECT v FROM R;
    @name('everything') SELECT v FROM R;
    """
    engine, outputs, warnings = _engine(rules, max_instances=3)
    for key in range(5):
        engine.process(Event("R", T0 + key, {"k": f"k{key}", "v": 1}))
    assert [i.key for i in engine.contexts["Open"].open] == ["k0", "k1", "k2"]
    assert engine.stats["refused_keys"] == 2
    assert warnings == ["context 'Open' has 3 live keys, its limit: an event of a new key "
                        "('k3') opens nothing in it (1 so far)"]
    engine.process(Event("R", T0 + 10, {"k": "k1", "v": 0}))  # k1 closes: a key is free
    engine.process(Event("R", T0 + 11, {"k": "k4", "v": 1}))
    assert [i.key for i in engine.contexts["Open"].open] == ["k0", "k2", "k4"]
    assert sum(1 for o in outputs if o.get("rule") == "everything") == 7


def test_keys_whose_pattern_comes_back_to_rest_by_a_timer_are_swept(monkeypatch):
    rules = """
    CREATE EVENT R (k STRING, v INT) FROM TOPIC 'r/{k}';
    CREATE CONTEXT Quick PARTITION BY k
        INITIATED BY PATTERN [ every a=R(v = 2) -> b=R(v = 3) where timer:within(1 sec) ]
        DURATION 1 sec;
    @name('quick') CONTEXT Quick SELECT v FROM R;
    """
    monkeypatch.setattr(EventIntervalRuntime, "RELEASE_FLOOR", 4)
    engine, _, _ = _engine(rules)
    runtime = engine.contexts["Quick"]
    assert isinstance(runtime, EventIntervalRuntime)
    for key in range(20):  # each waits for its 3, for a second
        engine.process(Event("R", T0 + 10 * key, {"k": f"k{key}", "v": 2}))
        assert len(runtime.by_key) <= 5  # the waiting key, and those not swept yet
    engine.advance(T0 + 1000)
    assert 0 < len(runtime.by_key) <= 5  # back to rest by their timer: kept until a sweep
    for key in range(20, 25):  # new keys whose events start nothing (v = 7)
        engine.process(Event("R", T0 + 1000 + key, {"k": f"k{key}", "v": 7}))
    assert len(runtime.by_key) == 0
