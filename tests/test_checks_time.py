"""Checks of time and place: SET LOCATION and the sun (sun events, `sun_elevation()`),
`timer:at`, `X FOR d`, keyed event intervals (`PARTITION BY k INITIATED BY ...`), `TERMINATED
BY PATTERN`, the tags of an initiating pattern in ON START / ON END, `@once`, timers that
a context does not leave time for, ON END of contexts that never end, and no cascades from
declarations that did not parse.

Each error case is (id, rule text, expected): the text comes after HOME and must produce
exactly one error, `line:col: error: message` (a prefix of a long message), and nothing
else: the mistake is reported once, at its node, and causes nothing more. Each warning case
must be accepted with exactly that one diagnostic.
"""

import pytest
from helpers import diagnostics_text, load

from cep.language.catalog import FLOAT, INT, LIST, STRING

HOME = """
CREATE EVENT Motion (room STRING, occupancy BOOL) FROM TOPIC 'home/{room}/motion';
CREATE EVENT Door (room STRING, contact BOOL, n INT) FROM TOPIC 'home/{room}/door';
CREATE EVENT Badge (person STRING, room STRING) FROM TOPIC 'home/badge/{person}';
CREATE EVENT Tag (room INT, who STRING) FROM TOPIC 'home/tag/{who}';
CREATE CONTEXT Night START 22:00 END 07:00;
CONTEXT Night SELECT * FROM PATTERN [every m=Motion -> d=Door -> b=Badge -> t=Tag];
"""
H = HOME.count("\n")  # lines HOME takes: a case's first line is H + 1
HERE = "SET LOCATION GEO (52.52, 13.40);\n"  # Berlin: every sun event on every day

ERRORS = [
    # ---------------------------------------------------------------- SET LOCATION
    ("location-latitude", "SET LOCATION GEO (95, 13.4);",
     f"{H + 1}:1: error: latitude 95 is outside -90..90: SET LOCATION GEO takes (latitude, "
     "longitude), such as GEO (52.52, 13.40)"),
    ("location-longitude", "SET LOCATION GEO (52.5, -181);",
     f"{H + 1}:1: error: longitude -181 is outside -180..180"),
    ("location-twice", HERE + "SET LOCATION GEO (48.14, 11.58);",
     f"{H + 2}:1: error: location GEO (48.14, 11.58) conflicts with GEO (52.52, 13.4) set at "
     f"test.epl:{H + 1}: one rule set has one location"),
    # ---------------------------------------------------------------- the sun without a place
    ("sun-context-without-location",
     "CREATE CONTEXT Evening START SUNSET END 23:00;\nCONTEXT Evening SELECT room FROM Motion;",
     f"{H + 1}:30: error: SUNSET needs to know where the home is: add `SET LOCATION GEO "
     "(latitude, longitude)` to the rule set, such as `SET LOCATION GEO (52.52, 13.40);`"),
    ("sun-reported-once",
     "CREATE CONTEXT Evening START SUNSET END SUNRISE;\nCONTEXT Evening SELECT room FROM Motion;\n"
     "SELECT * FROM PATTERN [every timer:at(DUSK)];\nSELECT sun_elevation() AS e FROM Motion;",
     f"{H + 1}:30: error: SUNSET needs to know where the home is: add `SET LOCATION GEO "
     "(latitude, longitude)` to the rule set, such as `SET LOCATION GEO (52.52, 13.40);` (and 3 "
     "other uses of the sun)"),
    ("timer-at-sun-without-location", "SELECT * FROM PATTERN [every timer:at(SUNSET - 15 min)];",
     f"{H + 1}:39: error: SUNSET needs to know where the home is"),
    ("sun-elevation-without-location", "SELECT sun_elevation() AS e FROM Motion;",
     f"{H + 1}:8: error: sun_elevation() needs to know where the home is"),
    ("sun-in-initiating-pattern",
     "CREATE CONTEXT Lit INITIATED BY PATTERN [every timer:at(DAWN)] DURATION 1 hour;\n"
     "CONTEXT Lit SELECT room FROM Motion;",
     f"{H + 1}:57: error: DAWN needs to know where the home is"),
    ("sun-in-a-window-filter",
     "CREATE WINDOW Dark#lastevent FROM Motion(sun_elevation() < 0.0);\n"
     "ON Door WHERE Dark.occupancy PUBLISH 'x';",
     f"{H + 1}:42: error: sun_elevation() needs to know where the home is"),
    # ---------------------------------------------------------------- sun events
    ("sun-offset-a-day", HERE + "CREATE CONTEXT E START SUNSET + 24 hour END 23:00;\n"
                                "CONTEXT E SELECT room FROM Motion;",
     f"{H + 2}:33: error: an offset from SUNSET must be less than a day: the event happens every "
     "day, so write a clock time or a shorter offset"),
    ("sun-start-equals-end", HERE + "CREATE CONTEXT E START SUNSET + 1 hour END SUNSET + 60 min;\n"
                                    "CONTEXT E SELECT room FROM Motion;",
     f"{H + 2}:44: error: START and END are the same time, so the interval would be empty"),
    ("sun-clock-end-bad", HERE + "CREATE CONTEXT E START DUSK END 24:00;\n"
                                 "CONTEXT E SELECT room FROM Motion;",
     f"{H + 2}:33: error: 24:00 is not a clock time: use 00:00 to 23:59"),
    ("sun-elevation-argument", HERE + "SELECT sun_elevation(room) AS e FROM Motion;",
     f"{H + 2}:22: error: sun_elevation() needs a TIMESTAMP, but this is a STRING"),
    ("sun-elevation-two-arguments",
     HERE + "SELECT sun_elevation(current_timestamp(), 1) AS e FROM Motion;",
     f"{H + 2}:8: error: sun_elevation() takes no argument (now) or one TIMESTAMP, not 2"),
    ("sun-elevation-is-a-number", HERE + "SELECT room FROM Motion WHERE sun_elevation() = 'low';",
     f"{H + 2}:31: error: cannot compare a number (FLOAT) with a STRING"),
    # ---------------------------------------------------------------- timer:at
    ("timer-at-hour", "SELECT * FROM PATTERN [every timer:at(24:00)];",
     f"{H + 1}:39: error: 24:00 is not a clock time: use 00:00 to 23:59"),
    ("timer-at-day", "SELECT * FROM PATTERN [every timer:at(07:30 ON MON-FRY)];",
     f"{H + 1}:48: error: unknown day `FRY`: use MON, TUE, WED, THU, FRI, SAT or SUN (did you "
     "mean `FRI`?)"),
    # ---------------------------------------------------------------- FOR
    ("for-zero", "SELECT * FROM PATTERN [every d=Door(contact = true) FOR 0 min];",
     f"{H + 1}:57: error: a duration must be longer than zero"),
    ("for-own-tag", "SELECT * FROM PATTERN [every d=Door(d.contact) FOR 5 min];",
     f"{H + 1}:37: error: tag `d` is not bound here: a filter cannot use its own tag; use the "
     "bare attribute name"),
    ("for-later-tag", "SELECT * FROM PATTERN [every d=Door(room = m.room) FOR 5 min -> m=Motion];",
     f"{H + 1}:44: error: tag `m` is not bound here: it is bound later in the pattern"),
    ("for-unknown-type", "SELECT * FROM PATTERN [every d=Dor FOR 5 min];",
     f"{H + 1}:30: error: unknown event type Dor: declare it with CREATE EVENT or produce it with "
     "INSERT INTO (did you mean `Door`?)"),
    ("for-filter-type", "SELECT * FROM PATTERN [every Door(contact = 1) FOR 5 min];",
     f"{H + 1}:35: error: cannot compare a BOOL with a number (INT)"),
    ("for-tag-twice", "SELECT * FROM PATTERN [every d=Door -> d=Door FOR 5 min];",
     f"{H + 1}:40: error: tag `d` is already bound earlier in this pattern"),
    # ---------------------------------------------------------------- keyed event intervals
    ("keyed-missing-in-terminator",
     "CREATE CONTEXT Visit PARTITION BY room INITIATED BY Motion TERMINATED BY Tag(who = 'x');\n"
     "CONTEXT Visit SELECT room FROM Motion;",
     f"{H + 1}:35: error: PARTITION BY `room`: it is STRING in Motion but INT in Tag; the key "
     "must have one type in every event type the context reads"),
    ("keyed-missing-attribute",
     "CREATE CONTEXT Visit PARTITION BY person INITIATED BY Badge TERMINATED BY Door;\n"
     "CONTEXT Visit SELECT room FROM Badge;",
     f"{H + 1}:35: error: PARTITION BY `person`: Door has no attribute `person`; every event type "
     "that INITIATED BY and TERMINATED BY read must carry the key"),
    ("keyed-missing-in-pattern",
     "CREATE CONTEXT Visit PARTITION BY room INITIATED BY PATTERN [every b=Badge -> t=Tag] "
     "DURATION 1 hour;\nCONTEXT Visit SELECT room FROM Badge;",
     f"{H + 1}:35: error: PARTITION BY `room`: it is STRING in Badge but INT in Tag"),
    ("keyed-misspelt",
     "CREATE CONTEXT Visit PARTITION BY rom INITIATED BY Motion DURATION 1 hour;\n"
     "CONTEXT Visit SELECT room FROM Motion;",
     f"{H + 1}:35: error: PARTITION BY `rom`: Motion has no attribute `rom` (did you mean "
     "`room`?); every event type that INITIATED BY reads must carry the key"),
    ("keyed-twice",
     "CREATE CONTEXT Visit PARTITION BY room, room INITIATED BY Motion DURATION 1 hour;\n"
     "CONTEXT Visit SELECT room FROM Motion;",
     f"{H + 1}:41: error: `room` appears twice in PARTITION BY"),
    ("keyed-key-type",
     "CREATE CONTEXT Visit PARTITION BY room INITIATED BY Motion DURATION 1 hour;\n"
     "CONTEXT Visit SELECT room FROM Motion WHERE context.key > 3;",
     f"{H + 2}:45: error: cannot order a STRING against a number (INT) with `>`"),
    ("keyed-key-list",
     "CREATE CONTEXT Visit PARTITION BY room, person INITIATED BY Badge DURATION 1 hour;\n"
     "CONTEXT Visit SELECT room FROM Badge WHERE context.key = 'hall';",
     f"{H + 2}:44: error: cannot compare a list (a key of several attributes) with a STRING"),
    # ---------------------------------------------------------------- TERMINATED BY PATTERN
    ("terminating-pattern-unknown-type",
     "CREATE CONTEXT Out INITIATED BY Motion TERMINATED BY PATTERN [every d=Door -> b=Badg];\n"
     "CONTEXT Out SELECT room FROM Motion;",
     f"{H + 1}:79: error: unknown event type Badg: declare it with CREATE EVENT or produce it "
     "with INSERT INTO (did you mean `Badge`?)"),
    ("terminating-pattern-filter",
     "CREATE CONTEXT Out INITIATED BY Motion TERMINATED BY PATTERN "
     "[every d=Door -> b=Badge(room = d.rom)];\nCONTEXT Out SELECT room FROM Motion;",
     f"{H + 1}:94: error: event type Door has no attribute `rom` (did you mean `room`?)"),
    ("terminating-pattern-tag-later",
     "CREATE CONTEXT Out INITIATED BY Motion TERMINATED BY PATTERN "
     "[every d=Door(room = b.room) -> b=Badge];\nCONTEXT Out SELECT room FROM Motion;",
     f"{H + 1}:83: error: tag `b` is not bound here"),
    ("terminator-view",
     "CREATE CONTEXT Out INITIATED BY Motion TERMINATED BY Door#time(1 min);\n"
     "CONTEXT Out SELECT room FROM Motion;",
     f"{H + 1}:58: error: a view (#time) belongs on a SELECT rule's FROM or in a CREATE WINDOW, "
     "not on a context's TERMINATED BY"),
    # ---------------------------------------------------------------- initiating pattern tags
    ("start-tag-attribute",
     "CREATE CONTEXT Visit INITIATED BY PATTERN [every b=Badge -> m=Motion] DURATION 10 min;\n"
     "CONTEXT Visit ON START PUBLISH 'home/visit' PAYLOAD {\"who\": b.persn};",
     f"{H + 2}:61: error: event type Badge has no attribute `persn` (did you mean `person`?)"),
    ("start-tag-type",
     "CREATE CONTEXT Visit INITIATED BY PATTERN [every b=Badge -> m=Motion] DURATION 10 min;\n"
     "CONTEXT Visit ON END WHERE m.occupancy = 'yes' PUBLISH 'home/visit';",
     f"{H + 2}:28: error: cannot compare a BOOL with a STRING"),
    ("start-tag-unknown",
     "CREATE CONTEXT Visit INITIATED BY PATTERN [every b=Badge -> m=Motion] DURATION 10 min;\n"
     "CONTEXT Visit ON START WHERE x.room = 'hall' PUBLISH 'home/visit';",
     f"{H + 2}:30: error: unknown tag `x`"),
    ("start-tag-inside-not",
     "CREATE CONTEXT Visit INITIATED BY PATTERN [every b=Badge -> (timer:interval(1 min) and not "
     "m=Motion)] DURATION 10 min;\nCONTEXT Visit ON START WHERE m.occupancy PUBLISH 'home/visit';",
     f"{H + 2}:30: error: unknown tag `m`"),
    ("start-tag-repeated",
     "CREATE CONTEXT Visit INITIATED BY PATTERN [every [2] b=Badge] DURATION 10 min;\n"
     "CONTEXT Visit ON START PUBLISH 'home/visit' PAYLOAD {\"who\": b.person};",
     f"{H + 2}:61: error: tag `b` holds several events ([n] or until): write `b[0].person`"),
    # ---------------------------------------------------------------- annotations
    ("once-with-every", "@once CONTEXT Night SELECT * FROM PATTERN [every m=Motion -> d=Door];",
     f"{H + 1}:1: error: @once says this rule fires once per context instance, but its pattern "
     "has `every`, which makes it fire again: remove @once or the `every`"),
    ("once-on-a-stream", "@once SELECT room FROM Motion;",
     f"{H + 1}:1: error: @once is for a pattern without `every`, which fires once per context "
     "instance; this rule fires for every Motion event: remove @once"),
    ("once-on-an-on-rule", "@once ON Door PUBLISH 'home/door';",
     f"{H + 1}:1: error: @once is for a pattern without `every`"),
    ("name-without-value", "@name SELECT room FROM Motion;",
     f"{H + 1}:1: error: @name needs a name: @name('...')"),
    ("description-without-value", "@description SELECT room FROM Motion;",
     f"{H + 1}:1: error: @description needs a text: @description('...')"),
]

WARNINGS = [
    # ---------------------------------------------------------------- polar day and night
    ("polar-sunset", "SET LOCATION GEO (69.65, 18.96);\n"
                     "CREATE CONTEXT Evening START SUNSET END 23:00;\n"
                     "CONTEXT Evening SELECT room FROM Motion;",
     f"{H + 2}:30: warning: at latitude 69.65 there are days without SUNSET (on them the sun does "
     "not cross the horizon), and on those days this does not happen; use a clock time if it "
     "must happen every day"),
    ("polar-dusk-timer", "SET LOCATION GEO (63.43, 10.39);\n"
                         "SELECT * FROM PATTERN [every timer:at(DUSK - 15 min ON MON-FRI)];",
     f"{H + 2}:39: warning: at latitude 63.43 there are days without DUSK (on them the sun does "
     "not cross 6° below the horizon)"),
    ("polar-south", "SET LOCATION GEO (-77.85, 166.67);\n"
                    "SELECT * FROM PATTERN [every timer:at(SUNRISE)];",
     f"{H + 2}:39: warning: at latitude -77.85 there are days without SUNRISE"),
    # ---------------------------------------------------------------- annotations
    ("once-with-argument", "@once('yes') CONTEXT Night SELECT * FROM PATTERN [m=Motion -> d=Door];",
     f"{H + 1}:7: warning: @once takes no argument: write `@once` (the argument is ignored)"),
    ("no-every-says-once", "CONTEXT Night SELECT * FROM PATTERN [m=Motion -> d=Door];",
     f"{H + 1}:29: warning: this pattern has no `every`: it fires at most once per context "
     "instance (write @once before the rule if that is meant)"),
    # ---------------------------------------------------------------- timers that cannot fire
    ("timer-never-fires", "CREATE CONTEXT Late START 22:00 END 02:00;\n"
                          "CONTEXT Late SELECT * FROM PATTERN [every m=Motion -> timer:interval(4 hours)];",
     f"{H + 2}:55: warning: the 4-hour timer can never fire: Late's instances last at most 4 "
     "hours (START 22:00 END 02:00), and an instance's end drops its pending timers; shorten the "
     "timer or make the context longer"),
    ("timer-never-fires-duration", "CREATE CONTEXT Hot INITIATED BY Door(contact) DURATION 1 hour;\n"
                                   "CONTEXT Hot SELECT * FROM PATTERN [every m=Motion -> "
                                   "(timer:interval(90 min) and not Motion)];",
     f"{H + 2}:55: warning: the 90-minute timer can never fire: Hot's instances last at most 1 "
     "hour (DURATION 1 hour)"),
    ("timer-never-fires-terminated", "CREATE CONTEXT Hot INITIATED BY Door(contact) TERMINATED BY "
                                     "Door(NOT contact) DURATION 1 hour;\n"
                                     "CONTEXT Hot SELECT * FROM PATTERN [every m=Motion -> "
                                     "timer:interval(1 hour)];",
     f"{H + 2}:54: warning: the 1-hour timer can never fire: Hot's instances last at most 1 hour"),
    ("timer-never-fires-composite", "CREATE CONTEXT Late START 22:00 END 02:00;\n"
                                    "CREATE CONTEXT PerRoom PARTITION BY room;\n"
                                    "CREATE CONTEXT LateRoom AS Late AND PerRoom;\n"
                                    "CONTEXT LateRoom SELECT * FROM PATTERN [every m=Motion -> "
                                    "timer:interval(5 hours)];",
     f"{H + 4}:59: warning: the 5-hour timer can never fire: LateRoom's instances last at most 4 "
     "hours (its part Late: START 22:00 END 02:00)"),
    ("timer-never-fires-in-a-daylight-saving-zone", "SET TIMEZONE 'Europe/Berlin';\n"
                                                    "CREATE CONTEXT Late START 22:00 END 02:00;\n"
                                                    "CONTEXT Late SELECT * FROM PATTERN "
                                                    "[every m=Motion -> timer:interval(5 hours)];",
     f"{H + 3}:55: warning: the 5-hour timer can never fire: Late's instances last at most 5 "
     "hours (START 22:00 END 02:00, 1 hour longer on the night the clocks go back)"),
    ("for-never-over", "CREATE CONTEXT Late START 22:00 END 02:00;\n"
                       "CONTEXT Late SELECT * FROM PATTERN [every d=Door(contact) FOR 6 hours];",
     f"{H + 2}:63: warning: this 6-hour FOR can never be over: Late's instances last at most 4 "
     "hours (START 22:00 END 02:00), and an instance's end drops what is pending"),
    ("within-never-runs-out", "CREATE CONTEXT Late START 22:00 END 02:00;\n"
                              "CONTEXT Late SELECT * FROM PATTERN [every m=Motion -> d=Door where "
                              "timer:within(1 day)];",
     f"{H + 2}:81: warning: this 1-day timer:within can never run out: Late's instances last at "
     "most 4 hours (START 22:00 END 02:00), so it restricts nothing; shorten it or leave it out"),
    ("timer-at-outside", "CREATE CONTEXT Late START 22:00 END 02:00;\n"
                         "CONTEXT Late SELECT * FROM PATTERN [every timer:at(07:30)];",
     f"{H + 2}:52: warning: timer:at(07:30) can never fire in Late: its instances run from 22:00 "
     "to 02:00; pick a time inside them"),
    ("timer-at-at-the-end", "CONTEXT Night SELECT * FROM PATTERN [every timer:at(07:00)];",
     f"{H + 1}:53: warning: timer:at(07:00) can never fire in Night: its instances run from "
     "22:00 to 07:00"),
    # ---------------------------------------------------------------- a context's end drops the wait
    ("final-timer-dropped", "CONTEXT Night SELECT * FROM PATTERN [every m=Motion -> "
                            "(timer:interval(5 hours) and not Door)];",
     f"{H + 1}:57: warning: a match that starts in the last 5 hours of an instance is dropped "
     "unfinished: Night's instances last at most 9 hours (START 22:00 END 07:00), and its end "
     "cancels this 5-hour timer, the pattern's last step; make the context longer or the wait "
     "shorter if those matches matter"),
    ("final-for-dropped", "CREATE CONTEXT Hot INITIATED BY Door(contact) DURATION 1 hour;\n"
                          "CONTEXT Hot SELECT * FROM PATTERN [every m=Motion -> "
                          "d=Door(NOT contact) FOR 30 min];",
     f"{H + 2}:78: warning: a match that starts in the last 30 minutes of an instance is dropped "
     "unfinished: Hot's instances last at most 1 hour (DURATION 1 hour), and its end cancels this "
     "30-minute FOR"),
    # ---------------------------------------------------------------- ON END that never runs
    ("on-end-of-partition", "CREATE CONTEXT PerRoom PARTITION BY room;\n"
                            "CONTEXT PerRoom ON END PUBLISH 'home/{room}/bye';",
     f"{H + 2}:20: warning: ON END of PerRoom never runs: a partition's instances do not end"),
    ("on-end-of-location", "CREATE LOCATION kitchen CIRCLE (0, 0) RADIUS 3 m;\n"
                           "CREATE CONTEXT InKitchen LOCATION kitchen;\n"
                           "CONTEXT InKitchen ON END PUBLISH 'home/kitchen/bye';",
     f"{H + 3}:22: warning: ON END of InKitchen never runs: a fixed location's instance lasts the "
     "whole run"),
    ("on-end-of-never-ending-composite",
     "CREATE CONTEXT PerRoom PARTITION BY room;\n"
     "CREATE CONTEXT PerPerson PARTITION BY person;\n"
     "CREATE CONTEXT Both AS PerRoom AND PerPerson;\n"
     "CONTEXT Both ON END PUBLISH 'home/bye';",
     f"{H + 4}:17: warning: ON END of Both never runs: none of its parts ends"),
    # ---------------------------------------------------------------- keyed intervals
    ("keyed-rule-reads-unkeyed-type",
     "CREATE CONTEXT Visit PARTITION BY person INITIATED BY Badge DURATION 1 hour;\n"
     "@name('r') CONTEXT Visit SELECT room FROM Motion;",
     f"{H + 2}:1: warning: events of type Motion have no `person`, so they belong to no instance "
     "of Visit and rule 'r' never sees them"),
]

VALID = [
    ("sun-everywhere", """
SET TIMEZONE 'Europe/Berlin';
SET LOCATION GEO (52.52, 13.40);
SET LOCATION GEO (52.52, 13.40);
CREATE EVENT Motion (room STRING, occupancy BOOL) FROM TOPIC 'home/{room}/motion';
CREATE EVENT Lamp (room STRING, on BOOL) FROM TOPIC 'home/{room}/lamp';
CREATE CONTEXT Evening START SUNSET - 30 min END 23:30;
CREATE CONTEXT Morning START DAWN END SUNRISE + 1 hour ON MON-FRI;
CREATE CONTEXT Exactly START SUNSET + 0 min END SUNRISE;
@name('evening-motion') CONTEXT Evening
SELECT room FROM Motion(occupancy AND sun_elevation() < 3.0) PUBLISH 'home/{room}/light/set';
@name('morning-lamp') CONTEXT Morning ON Lamp(on) PUBLISH 'home/{room}/blinds/open';
@name('at-night') CONTEXT Exactly ON Motion WHERE sun_elevation(current_timestamp()) < -6.0
PUBLISH 'home/night';
@name('blinds') SELECT 'down' AS blinds FROM PATTERN [every timer:at(SUNSET + 15 min ON SAT, SUN)]
PUBLISH 'home/blinds/set' PAYLOAD {"state": blinds};
@name('wake') SELECT 1 AS n FROM PATTERN [every timer:at(06:45 ON MON-FRI) -> Motion]
PUBLISH 'home/coffee';
"""),
    ("for-binds-its-tag", """
CREATE EVENT Door (room STRING, contact BOOL) FROM TOPIC 'home/{room}/door';
CREATE EVENT Motion (room STRING, occupancy BOOL) FROM TOPIC 'home/{room}/motion';
@name('open-door') SELECT d.room AS room FROM PATTERN [every m=Motion
    -> d=Door(room = m.room, contact = false) FOR 10 min -> Motion(room = d.room)]
PUBLISH 'home/{room}/door-was-open';
@name('open-long') ON PATTERN [every d=Door(changed(contact), contact = false) FOR 5 min]
WHERE d.room != 'garage' PUBLISH 'home/door/open' PAYLOAD {"room": d.room};
"""),
    ("keyed-intervals", """
CREATE EVENT Motion (room STRING, occupancy BOOL) FROM TOPIC 'home/{room}/motion';
CREATE EVENT Door (room STRING, contact BOOL) FROM TOPIC 'home/{room}/door';
CREATE EVENT Badge (person STRING, room STRING) FROM TOPIC 'home/badge/{person}';
CREATE CONTEXT Occupied PARTITION BY room INITIATED BY Motion(occupancy)
    TERMINATED BY PATTERN [every Door(contact = false) -> Motion(occupancy = false)]
    DURATION 2 hours;
CREATE CONTEXT Visit PARTITION BY person, room INITIATED BY Badge DURATION 1 hour POLICY EXTEND;
@name('occupied-on') CONTEXT Occupied ON START PUBLISH 'home/{room}/occupied'
PAYLOAD {"room": context.key};
@name('occupied-off') CONTEXT Occupied ON END PUBLISH 'home/{room}/free';
@name('occupied-door') CONTEXT Occupied SELECT context.key AS k, room FROM Door
WHERE context.key = 'hall' PUBLISH 'home/{k}/door';
@name('visit') CONTEXT Visit SELECT context.key AS k FROM Badge PUBLISH 'home/visit'
PAYLOAD {"key": k};
"""),
    ("initiating-pattern-tags", """
CREATE EVENT Badge (person STRING, room STRING) FROM TOPIC 'home/badge/{person}';
CREATE EVENT Motion (room STRING, occupancy BOOL) FROM TOPIC 'home/{room}/motion';
CREATE CONTEXT Welcome INITIATED BY PATTERN [every b=Badge -> (m=Motion(room = b.room) or
    timer:interval(1 min))] DURATION 10 min;
CREATE CONTEXT Crowd INITIATED BY PATTERN [every [2] b=Badge] TERMINATED BY Motion DURATION 1 hour;
@name('welcome') CONTEXT Welcome ON START WHERE b.person != 'cat'
PUBLISH 'home/speaker' PAYLOAD {"who": b.person, "moving": m.occupancy};
@name('bye') CONTEXT Welcome ON END PUBLISH 'home/bye' PAYLOAD {"who": b.person};
@name('crowd') CONTEXT Crowd ON START PUBLISH 'home/crowd'
PAYLOAD {"first": b[0].person, "second": b[1].person};
@name('crowd-motion') CONTEXT Crowd SELECT room FROM Motion;
"""),
    ("once-and-timers-that-fit", """
CREATE EVENT Motion (room STRING, occupancy BOOL) FROM TOPIC 'home/{room}/motion';
CREATE EVENT Door (room STRING, contact BOOL) FROM TOPIC 'home/{room}/door';
CREATE CONTEXT Night START 22:00 END 07:00;
CREATE CONTEXT Hot INITIATED BY Door(contact) DURATION 1 hour POLICY EXTEND;
CREATE CONTEXT PerRoom PARTITION BY room;
@name('first-motion') @once CONTEXT Night SELECT m.room AS room FROM PATTERN [m=Motion];
@name('short-wait') CONTEXT Night SELECT m.room AS room FROM PATTERN
    [every m=Motion -> (timer:interval(20 min) and not Door)];
@name('hourly') CONTEXT Night SELECT 1 AS n FROM PATTERN [every timer:interval(5 hours)];
@name('extended') CONTEXT Hot SELECT m.room AS room FROM PATTERN
    [every m=Motion -> timer:interval(2 hours)];
@name('idle') CONTEXT PerRoom SELECT context.key AS room FROM PATTERN
    [every Motion -> (timer:interval(1 day) and not Motion)];
@name('hello') CONTEXT PerRoom ON START PUBLISH 'home/{room}/hello';
@name('morning') CONTEXT Night SELECT 1 AS n FROM PATTERN [every timer:at(06:30)];
@name('once-start') @once CONTEXT Night ON START PUBLISH 'home/night';
"""),
    ("a-type-that-only-feeds-a-partition", """
CREATE EVENT Presence (room STRING, person STRING) FROM TOPIC 'home/{room}/presence/{person}';
CREATE CONTEXT PerRoom PARTITION BY room;
@name('hello') CONTEXT PerRoom ON START PUBLISH 'home/{room}/hello';
"""),
]


@pytest.mark.parametrize("case_id,source,expected", ERRORS, ids=[c[0] for c in ERRORS])
def test_error_is_reported_once_at_its_node(case_id, source, expected):
    loaded = load(HOME + source)
    found = diagnostics_text(loaded)
    errors = [line for line in found if ": error: " in line]
    assert len(errors) == 1 and errors[0].startswith(expected), "\n".join(found)
    assert not loaded.ok


@pytest.mark.parametrize("case_id,source,expected", WARNINGS, ids=[c[0] for c in WARNINGS])
def test_warning_is_reported_and_file_accepted(case_id, source, expected):
    loaded = load(HOME + source)
    found = diagnostics_text(loaded)
    assert loaded.ok, "\n".join(found)
    assert len(found) == 1 and found[0].startswith(expected), "\n".join(found)


@pytest.mark.parametrize("case_id,source", VALID, ids=[c[0] for c in VALID])
def test_valid_file_checks_cleanly(case_id, source):
    found = diagnostics_text(load(source))
    assert found == [], "\n".join(found)


def test_the_location_is_registered():
    catalog = load(HOME + HERE).catalog
    assert catalog.location == (52.52, 13.40)
    assert (catalog.location_span.line, catalog.location_span.col) == (H + 1, 1)


def test_context_key_types_of_keyed_intervals():
    loaded = load(HOME + "CREATE CONTEXT One PARTITION BY room INITIATED BY Door DURATION 1 h;\n"
                  "CREATE CONTEXT Two PARTITION BY room, person INITIATED BY Badge "
                  "DURATION 1 h;\n"
                  "CREATE CONTEXT ByTag PARTITION BY room INITIATED BY Tag DURATION 1 h;\n"
                  "@name('one') CONTEXT One SELECT context.key AS k FROM Door;\n"
                  "@name('two') CONTEXT Two SELECT context.key AS k FROM Badge;\n"
                  "@name('tag') CONTEXT ByTag SELECT context.key AS k FROM Tag;\n")
    assert loaded.ok, diagnostics_text(loaded)
    schemas = {info.name: info.schema for info in loaded.catalog.rules}
    assert (schemas["one"], schemas["two"], schemas["tag"]) == (
        {"k": STRING}, {"k": LIST}, {"k": INT})


def test_sun_elevation_is_a_float():
    loaded = load(HOME + HERE + "@name('e') SELECT sun_elevation() AS e FROM Motion;")
    assert loaded.ok and loaded.catalog.rule("e").schema == {"e": FLOAT}


def test_a_wrong_location_is_not_also_missing():
    """A SET LOCATION out of range is reported; the sun events that need it are not."""
    loaded = load(HOME + "SET LOCATION GEO (52.5, 500);\n"
                  "CREATE CONTEXT Evening START SUNSET END 23:00;\n"
                  "CONTEXT Evening SELECT room FROM Motion;\n")
    assert diagnostics_text(loaded) == [f"{H + 1}:1: error: longitude 500 is outside -180..180"]


# ---------------------------------------------------------------- no cascades

def test_a_type_whose_declaration_failed_is_not_unknown():
    """One missing `;` swallows two declarations; their uses are not reported again."""
    loaded = load("CREATE EVENT Motion (room STRING, occupancy BOOL) FROM TOPIC 'm/{room}'\n"
                  "CREATE EVENT Door (room STRING, contact BOOL) FROM TOPIC 'd/{room}';\n"
                  "CREATE CONTEXT PerRoom PARTITION BY room;\n"
                  "CONTEXT PerRoom SELECT room FROM Motion(occupancy);\n"
                  "SELECT m.room AS r FROM PATTERN [every m=Motion -> d=Door(room = m.room)];\n"
                  "CREATE CONTEXT Open INITIATED BY Door(contact) TERMINATED BY Door(NOT contact);\n"
                  "CREATE WINDOW LastMotion#lastevent FROM Motion;\n"
                  "INSERT INTO Moved SELECT room FROM Motion;\n"
                  "SELECT room FROM Moved(room = 'hall') PUBLISH 'x/{room}';\n"
                  "CONTEXT Open ON START WHERE LastMotion.occupancy PUBLISH 'x';\n")
    assert diagnostics_text(loaded) == [
        "1:72: error: missing `;` at the end of this statement (the next one starts with "
        "`CREATE` at line 2)"]


def test_a_context_whose_declaration_failed_is_not_unknown():
    loaded = load(HOME + "CREATE CONTEXT PerRoom PARTITION BY room,;\n"
                  "CONTEXT PerRoom SELECT context.key AS k FROM Motion;\n"
                  "CONTEXT PerRoom ON START PUBLISH 'x/{room}';\n"
                  "CREATE CONTEXT Both AS PerRoom AND Night;\n"
                  "CONTEXT Both SELECT room FROM Motion;\n")
    assert diagnostics_text(loaded) == [
        f"{H + 1}:42: error: expected a name, found the end of the statement"]


def test_a_window_or_location_whose_declaration_failed_is_not_unknown():
    loaded = load(HOME + "CREATE WINDOW Last#lastevent FROM Motion(;\n"
                  "CREATE LOCATION kitchen CIRCLE (0, 0) RADIUS;\n"
                  "ON Door WHERE Last.occupancy AND (SELECT count(*) FROM Last) > 1 "
                  "AND Last['x'].room = 'a' PUBLISH 'x';\n"
                  "CREATE CONTEXT InKitchen LOCATION kitchen;\n"
                  "CONTEXT InKitchen SELECT room FROM Motion;\n")
    assert [line.split(": error: ")[0] for line in diagnostics_text(loaded)] == [
        f"{H + 1}:42", f"{H + 2}:45"]


def test_a_location_whose_statement_failed_is_not_missing():
    loaded = load(HOME + "SET LOCATION GEO (52.5 13.4);\n"
                  "CREATE CONTEXT Evening START SUNSET END 23:00;\n"
                  "CONTEXT Evening SELECT room FROM Motion;\n")
    assert [line.split(": error: ")[0] for line in diagnostics_text(loaded)] == [f"{H + 1}:24"]


def test_an_unknown_context_does_not_make_context_key_wrong():
    loaded = load(HOME + "CONTEXT Nite SELECT context.key AS k FROM Motion;\n")
    assert diagnostics_text(loaded) == [
        f"{H + 1}:9: error: unknown context Nite (did you mean `Night`?)"]


def test_a_rule_reading_an_unknown_type_gives_its_result_no_schema():
    """Its readers are not told that the derived type lacks what the rule selects."""
    loaded = load(HOME + "INSERT INTO Moved SELECT room, level FROM Motoin;\n"
                  "SELECT level FROM Moved(room = 'hall') PUBLISH 'x/{level}/{lvl}';\n")
    assert diagnostics_text(loaded) == [
        f"{H + 1}:43: error: unknown event type Motoin: declare it with CREATE EVENT or produce "
        "it with INSERT INTO (did you mean `Motion`?)",
        # the names its SELECT gives are still known
        f"{H + 2}:59: error: topic placeholder `{{lvl}}` is not a name of the rule's result (its "
        "SELECT names) (did you mean `level`?)"]


def test_timer_at_at_its_contexts_start_can_never_fire():
    from helpers import diagnostics_text, load

    loaded = load("CREATE EVENT A (x INT);\nCREATE CONTEXT Evening START 18:00 END 23:30;\n"
                  "@once CONTEXT Evening SELECT 1 AS one FROM PATTERN [timer:at(18:00)];")
    assert any("timer:at(18:00) can never fire in Evening: its instances run from 18:00 to "
               "23:30 and it waits for the next one strictly after it starts, a day later"
               in line for line in diagnostics_text(loaded)), diagnostics_text(loaded)
    fine = load("CREATE EVENT A (x INT);\nCREATE CONTEXT Evening START 18:00 END 23:30;\n"
                "@once CONTEXT Evening SELECT 1 AS one FROM PATTERN [timer:at(18:01)];")
    assert not any("never fire" in line for line in diagnostics_text(fine))
