"""Checks of the second edition: named windows (CREATE WINDOW), views, aggregates, GROUP BY,
HAVING, OUTPUT, prior(), changed(), cast(), CASE, string `+`, the time functions, window reads
and subqueries.

Each error case is (id, rule text, expected) where expected is the one error the text must
produce, `line:col: error: message` (a prefix of a long message): exactly one error proves
that the mistake is reported once, at its node, and causes nothing else. The rule text comes
after HOME, whose last rule reads both windows (so no case warns that they are unread).
"""

import pytest
from helpers import diagnostics_text, load

from cep.language.catalog import FLOAT, INT, STRING, TIMESTAMP, VALUES

HOME = """
CREATE EVENT Temp (room STRING, value FLOAT, n INT, at TIMESTAMP) FROM TOPIC 'home/{room}/temp';
CREATE EVENT Door (door STRING, contact BOOL) FROM TOPIC 'home/door/{door}';
CREATE WINDOW Last#lastevent FROM Temp;
CREATE WINDOW ByRoom#unique(room) FROM Temp;
ON Door WHERE Last.n > 0 AND ByRoom['hall'].n > 0 PUBLISH 'home/windows-read';
"""
H = HOME.count("\n")  # lines HOME takes: a case's first line is H + 1

ERRORS = [
    # ---------------------------------------------------------------- CREATE WINDOW
    ("window-duplicate", "CREATE WINDOW Last#time(5 min) FROM Door;",
     f"{H + 1}:15: error: window Last is already declared at test.epl:4"),
    ("window-named-like-type", "CREATE WINDOW Door#lastevent FROM Temp;",
     f"{H + 1}:15: error: window Door has the name of an event type: rename the window, such as `DoorWindow`"),
    ("window-named-like-derived-type", "INSERT INTO Hot SELECT room FROM Temp(value > 25.0);\nCREATE WINDOW Hot#lastevent FROM Temp;",
     f"{H + 2}:15: error: window Hot has the name of an event type: rename the window, such as `HotWindow`"),
    ("window-named-like-context", "CREATE CONTEXT Night START 22:00 END 06:00;\nCREATE WINDOW Night#lastevent FROM Temp;\nCONTEXT Night SELECT room FROM Temp;",
     f"{H + 2}:15: error: window Night has the name of a context: rename the window, such as `NightWindow`"),
    ("window-unknown-type", "CREATE WINDOW W#lastevent FROM Tmp;\nON Door WHERE W.x = 1 PUBLISH 'a';",
     f"{H + 1}:32: error: unknown event type Tmp: declare it with CREATE EVENT or produce it with INSERT INTO (did you mean"),
    ("window-type-is-window", "CREATE WINDOW W#lastevent FROM Last;\nON Door WHERE W.x = 1 PUBLISH 'a';",
     f"{H + 1}:32: error: unknown event type Last: declare it with CREATE EVENT or produce it with INSERT INTO; Last is a"),
    ("window-filter-not-condition", "CREATE WINDOW W#lastevent FROM Temp(value + 1);\nON Door WHERE W.n = 1 PUBLISH 'a';",
     f"{H + 1}:37: error: a filter must be a condition (true or false), but this is a number (FLOAT)"),
    ("window-filter-unknown-attr", "CREATE WINDOW W#lastevent FROM Temp(valu > 1.0);\nON Door WHERE W.n = 1 PUBLISH 'a';",
     f"{H + 1}:37: error: unknown name `valu`: event type Temp has no attribute `valu` (did you mean `value`?)"),
    ("window-filter-derived", "CREATE WINDOW W#lastevent FROM Hot(temp > 1.0);\nON Door WHERE W.room = 'a' PUBLISH 'a';\nINSERT INTO Hot SELECT room, value FROM Temp(value > 25.0);",
     f"{H + 1}:36: error: unknown name `temp`: event type Hot has no attribute `temp`"),
    ("window-unique-derived", "CREATE WINDOW W#unique(rom) FROM Hot;\nON Door WHERE W.room = 'a' PUBLISH 'a';\nINSERT INTO Hot SELECT room, value FROM Temp(value > 25.0);",
     f"{H + 1}:24: error: #unique: `rom` is not an attribute of Hot (did you mean `room`?)"),
    ("window-read-derived", "ON Door WHERE W.valu > 1.0 PUBLISH 'a';\nCREATE WINDOW W#lastevent FROM Hot;\nINSERT INTO Hot SELECT room, value FROM Temp(value > 25.0);",
     f"{H + 1}:15: error: window W holds Hot events, which have no attribute `valu` (did you mean `value`?)"),
    ("window-unique-event-key", "CREATE WINDOW W#unique(a) FROM Pair;\nON Door WHERE W.a IS NULL PUBLISH 'a';\nINSERT INTO Pair SELECT a, b FROM PATTERN [every a=Temp -> b=Temp];",
     f"{H + 1}:24: error: #unique: `a` holds an event, which cannot be a key"),
    # ---------------------------------------------------------------- views
    ("view-unknown", "CREATE WINDOW W#tim(5 min) FROM Temp;\nON Door WHERE W.n = 1 PUBLISH 'a';",
     f"{H + 1}:16: error: unknown view #tim: use #time, #length, #lastevent or #unique (did you mean `#time`?)"),
    ("view-time-number", "SELECT room FROM Temp#time(5);",
     f"{H + 1}:28: error: #time takes one duration, such as `#time(10 min)`"),
    ("view-time-none", "SELECT room FROM Temp#time;",
     f"{H + 1}:22: error: #time takes one duration, such as `#time(10 min)`"),
    ("view-time-two", "SELECT room FROM Temp#time(5 min, 1 min);",
     f"{H + 1}:35: error: #time takes one duration, such as `#time(10 min)`"),
    ("view-time-zero", "SELECT room FROM Temp#time(0 sec);",
     f"{H + 1}:28: error: a duration must be longer than zero"),
    ("view-length-zero", "SELECT room FROM Temp#length(0);",
     f"{H + 1}:30: error: #length takes one whole number of events, at least 1, such as `#length(5)`"),
    ("view-length-fraction", "SELECT room FROM Temp#length(2.5);",
     f"{H + 1}:30: error: #length takes one whole number of events, at least 1, such as `#length(5)`"),
    ("view-length-duration", "SELECT room FROM Temp#length(1 min);",
     f"{H + 1}:30: error: #length takes one whole number of events, at least 1, such as `#length(5)`"),
    ("view-length-two", "SELECT room FROM Temp#length(3, 4);",
     f"{H + 1}:33: error: #length takes one whole number of events, at least 1, such as `#length(5)`"),
    ("view-lastevent-argument", "SELECT room FROM Temp#lastevent(1);",
     f"{H + 1}:33: error: #lastevent takes no arguments: write `#lastevent`"),
    ("view-unique-empty", "SELECT room FROM Temp#unique;",
     f"{H + 1}:22: error: #unique takes the attributes that key it, such as `#unique(room)`"),
    ("view-unique-number", "SELECT room FROM Temp#unique(5);",
     f"{H + 1}:30: error: #unique takes attribute names, such as `#unique(room)`"),
    ("view-unique-unknown", "SELECT room FROM Temp#unique(rom);",
     f"{H + 1}:30: error: #unique: `rom` is not an attribute of Temp (did you mean `room`?)"),
    ("view-unique-twice", "SELECT room FROM Temp#unique(room, room);",
     f"{H + 1}:36: error: `room` appears twice in #unique"),
    ("view-on-trigger", "ON Temp#lastevent PUBLISH 'a';",
     f"{H + 1}:8: error: a view (#lastevent) belongs on a SELECT rule's FROM or in a CREATE WINDOW, not on an ON trigger,"),
    ("view-on-initiator", "CREATE CONTEXT C INITIATED BY Door#lastevent DURATION 5 min;\nCONTEXT C SELECT room FROM Temp;",
     f"{H + 1}:35: error: a view (#lastevent) belongs on a SELECT rule's FROM or in a CREATE WINDOW, not on a context's"),
    ("view-on-terminator", "CREATE CONTEXT C INITIATED BY Door(contact) TERMINATED BY Door#time(1 min);\nCONTEXT C SELECT room FROM Temp;",
     f"{H + 1}:63: error: a view (#time) belongs on a SELECT rule's FROM or in a CREATE WINDOW, not on a context's TERMINATED"),
    # ---------------------------------------------------------------- aggregates
    ("aggregate-without-window", "SELECT room, avg(value) AS mean FROM Temp;",
     f"{H + 1}:14: error: an aggregate needs a window: use it in the SELECT or HAVING of a rule that reads its stream through"),
    ("aggregate-in-where", "SELECT room FROM Temp#time(10 min) WHERE avg(value) > 20.0;",
     f"{H + 1}:42: error: an aggregate cannot be in WHERE, which tests each event before it enters the window: put this"),
    ("aggregate-in-filter", "SELECT room FROM Temp(avg(value) > 20.0)#time(10 min);",
     f"{H + 1}:23: error: an aggregate cannot be in a filter, which tests each event before it enters the window: put this"),
    ("aggregate-in-publish", 'SELECT room, avg(value) AS mean FROM Temp#time(10 min) PUBLISH \'a\' PAYLOAD {"m": avg(value)};',
     f"{H + 1}:82: error: an aggregate cannot be in PUBLISH, which sees the rule's result: select it with a name, such as"),
    ("aggregate-in-pattern", "SELECT count(*) AS c FROM PATTERN [every a=Temp];",
     f"{H + 1}:8: error: an aggregate needs a window: use it in the SELECT or HAVING of a rule that reads its stream through"),
    ("aggregate-in-on-rule", "ON Temp WHERE max(value) > 30.0 PUBLISH 'a';",
     f"{H + 1}:15: error: an aggregate needs a window: use it in the SELECT or HAVING of a rule that reads its stream through"),
    ("aggregate-in-having-unwindowed", "SELECT room FROM Temp HAVING count(*) > 2;",
     f"{H + 1}:30: error: an aggregate needs a window: use it in the SELECT or HAVING of a rule that reads its stream through"),
    ("aggregate-in-context-filter", "CREATE CONTEXT C INITIATED BY Temp(avg(value) > 1.0) DURATION 5 min;\nCONTEXT C SELECT room FROM Temp;",
     f"{H + 1}:36: error: an aggregate needs a window: use it in the SELECT or HAVING of a rule that reads its stream through"),
    ("missing-view-said-once", "SELECT room, avg(value) AS mean, max(value) AS peak FROM Temp GROUP BY room HAVING avg(value) > 23.0 OUTPUT SNAPSHOT EVERY 1 min;",
     f"{H + 1}:14: error: an aggregate needs a window: use it in the SELECT or HAVING of a rule that reads its stream through a view, such as `FROM Temp#time(10 min)`"),
    ("missing-view-said-at-group-by", "SELECT room FROM Temp GROUP BY rom HAVING avg(value) > 23.0 OUTPUT SNAPSHOT EVERY 1 min;",
     f"{H + 1}:32: error: GROUP BY needs a window: it groups the events a view holds, so read the stream through one, such as `FROM Temp#time(10 min)`"),
    ("missing-view-said-at-having", "SELECT room FROM Temp HAVING avg(value) > 23.0 OUTPUT SNAPSHOT EVERY 1 min;",
     f"{H + 1}:30: error: an aggregate needs a window"),
    ("aggregate-nested", "SELECT avg(max(value)) AS m FROM Temp#time(10 min);",
     f"{H + 1}:12: error: max() is inside another aggregate: an aggregate takes the values of the window's events, not of an"),
    ("aggregate-needs-name", "SELECT room, avg(value) FROM Temp#time(10 min);",
     f"{H + 1}:14: error: give this expression a name with AS, such as `... AS level`"),
    ("sum-of-string", "SELECT sum(room) AS s FROM Temp#time(10 min);",
     f"{H + 1}:12: error: sum() needs numbers, but this is a STRING"),
    ("avg-of-timestamp", "SELECT avg(at) AS s FROM Temp#time(10 min);",
     f"{H + 1}:12: error: avg() needs numbers, but this is a TIMESTAMP"),
    ("stddev-of-bool", "SELECT stddev(contact) AS s FROM Door#time(10 min);",
     f"{H + 1}:15: error: stddev() needs numbers, but this is a BOOL"),
    ("max-of-bool", "SELECT max(contact) AS s FROM Door#time(10 min);",
     f"{H + 1}:12: error: max() needs numbers, strings or timestamps, but this is a BOOL"),
    ("list-of-event", "SELECT list(Temp) AS s FROM Temp#time(10 min);",
     f"{H + 1}:13: error: list() collects attribute values, but this is an event"),
    ("values-compared", "SELECT room FROM Temp#time(10 min) HAVING list(n) = 1;",
     f"{H + 1}:43: error: list() can be selected and published, not compared: it makes a list of values, which no operator"),
    ("values-ordered", "SELECT room FROM Temp#time(10 min) HAVING list(n) > 1;",
     f"{H + 1}:43: error: list() can be selected and published, not compared: it makes a list of values, which no operator"),
    ("values-arithmetic", "SELECT list(n) + 1 AS l FROM Temp#time(10 min);",
     f"{H + 1}:8: error: list() can be selected and published, not compared: it makes a list of values, which no operator"),
    ("values-joined", "SELECT 'n: ' + list(n) AS l FROM Temp#time(10 min);",
     f"{H + 1}:16: error: list() can be selected and published, not compared: it makes a list of values, which no operator"),
    ("values-in", "SELECT room FROM Temp#time(10 min) HAVING list(n) IN (1, 2);",
     f"{H + 1}:43: error: list() can be selected and published, not compared: it makes a list of values, which no operator"),
    ("values-between", "SELECT room FROM Temp#time(10 min) HAVING 2 BETWEEN list(n) AND 3;",
     f"{H + 1}:53: error: list() can be selected and published, not compared: it makes a list of values, which no operator"),
    ("values-like", "SELECT room FROM Temp#time(10 min) HAVING list(room) LIKE 'a%';",
     f"{H + 1}:43: error: list() can be selected and published, not compared: it makes a list of values, which no operator"),
    ("values-case", "SELECT CASE list(n) WHEN 1 THEN 'one' END AS l FROM Temp#time(10 min);",
     f"{H + 1}:13: error: list() can be selected and published, not compared: it makes a list of values, which no operator"),
    ("values-condition", "SELECT room FROM Temp#time(10 min) HAVING list(room);",
     f"{H + 1}:43: error: list() can be selected and published, not compared: it makes a list of values, which no operator"),
    ("values-derived-compared", "INSERT INTO Recent SELECT room, list(n) AS ns FROM Temp#length(5);\nSELECT room FROM Recent WHERE ns = 3;",
     f"{H + 2}:31: error: list() can be selected and published, not compared: it makes a list of values, which no operator"),
    ("values-subquery-compared", "ON Door WHERE (SELECT list(n) FROM Last) = 3 PUBLISH 'a';",
     f"{H + 1}:15: error: list() can be selected and published, not compared: it makes a list of values, which no operator"),
    ("values-into-declared", "INSERT INTO Door SELECT room AS door, list(n) AS contact FROM Temp#length(5);",
     f"{H + 1}:13: error: INSERT INTO Door: `contact` is a list of values (from list()) but Door declares it BOOL"),
    # ---------------------------------------------------------------- GROUP BY / HAVING
    ("group-by-without-window", "SELECT room FROM Temp GROUP BY room;",
     f"{H + 1}:32: error: GROUP BY needs a window: it groups the events a view holds, so read the stream through one, such as"),
    ("group-by-pattern", "SELECT a.room AS room FROM PATTERN [every a=Temp] GROUP BY room;",
     f"{H + 1}:60: error: GROUP BY needs a window: it groups the events a view holds, so read the stream through one, such as"),
    ("group-by-unknown", "SELECT room, avg(value) AS m FROM Temp#time(10 min) GROUP BY rom;",
     f"{H + 1}:62: error: GROUP BY `rom` is not an attribute of event type Temp (did you mean `room`?)"),
    ("group-by-twice", "SELECT room, avg(value) AS m FROM Temp#time(10 min) GROUP BY room, room;",
     f"{H + 1}:68: error: `room` appears twice in GROUP BY"),
    ("having-not-condition", "SELECT room, avg(value) AS m FROM Temp#time(10 min) GROUP BY room HAVING avg(value);",
     f"{H + 1}:74: error: HAVING must be a condition (true or false), but this is a number (FLOAT)"),
    ("having-select-name", "SELECT room, avg(value) AS m FROM Temp#time(10 min) GROUP BY room HAVING m > 20.0;",
     f"{H + 1}:74: error: unknown name `m`: HAVING sees the attributes of event type Temp and aggregates, not the SELECT"),
    ("having-unknown", "SELECT room FROM Temp HAVING valu > 1.0;",
     f"{H + 1}:30: error: unknown name `valu`: event type Temp has no attribute `valu` (did you mean `value`?)"),
    # ---------------------------------------------------------------- prior
    ("prior-zero", "SELECT room, prior(0, value) AS p FROM Temp;",
     f"{H + 1}:14: error: prior(0, value) is this event: count from 1 (`prior(1, value)` is the event before), or write"),
    ("prior-unknown-attr", "SELECT room, prior(1, valu) AS p FROM Temp;",
     f"{H + 1}:14: error: prior(): event type Temp has no attribute `valu` (did you mean `value`?)"),
    ("prior-in-pattern", "SELECT prior(1, value) AS p FROM PATTERN [every a=Temp];",
     f"{H + 1}:8: error: prior() needs a stream (`FROM Type` or `ON Type`), and a pattern reads several: compare the events"),
    ("prior-in-on-start", "CREATE CONTEXT C INITIATED BY Door(contact) DURATION 5 min;\nCONTEXT C ON START WHERE prior(1, contact) PUBLISH 'a';",
     f"{H + 2}:26: error: prior() needs a stream (`FROM Type` or `ON Type`), and ON START has none"),
    ("prior-in-filter", "SELECT room FROM Temp(prior(1, value) > 1.0);",
     f"{H + 1}:23: error: prior() cannot be in an event filter: use it in the SELECT, WHERE, HAVING or PUBLISH of a rule"),
    ("prior-in-pattern-filter", "SELECT * FROM PATTERN [every a=Temp(prior(1, value) > 1.0)];",
     f"{H + 1}:37: error: prior() cannot be in an event filter: use it in the SELECT, WHERE, HAVING or PUBLISH of a rule"),
    ("prior-in-subquery", "SELECT room, (SELECT prior(1, value) FROM Last) AS p FROM Temp;",
     f"{H + 1}:22: error: prior() cannot be in a subquery: it reads the rule's stream, not the window"),
    ("prior-in-aggregate", "SELECT avg(prior(1, value)) AS p FROM Temp#time(1 min);",
     f"{H + 1}:12: error: prior() cannot be inside an aggregate: an aggregate takes the window's events, prior() the stream's"),
    ("prior-type", "SELECT room FROM Temp WHERE prior(1, room) > 3;",
     f"{H + 1}:29: error: cannot order a STRING against a number (INT) with `>`"),
    # ---------------------------------------------------------------- OUTPUT
    ("snapshot-without-window", "SELECT room FROM Temp OUTPUT SNAPSHOT EVERY 1 min;",
     f"{H + 1}:23: error: OUTPUT SNAPSHOT needs a window: it repeats what a SELECT rule's window holds, so read the stream"),
    ("snapshot-on-rule", "ON Temp OUTPUT SNAPSHOT EVERY 1 min PUBLISH 'a';",
     f"{H + 1}:9: error: OUTPUT SNAPSHOT needs a window: it repeats what a SELECT rule's window holds, so read the stream"),
    ("output-on-start", "CREATE CONTEXT C INITIATED BY Door(contact) DURATION 5 min;\nCONTEXT C ON START OUTPUT FIRST EVERY 1 min PUBLISH 'a';",
     f"{H + 2}:20: error: OUTPUT FIRST needs a stream or a pattern to throttle: ON START runs once per context instance"),
    ("output-zero", "ON Door OUTPUT FIRST EVERY 0 sec PUBLISH 'a';",
     f"{H + 1}:28: error: a duration must be longer than zero"),
    ("snapshot-zero", "SELECT room FROM Temp#length(3) OUTPUT SNAPSHOT EVERY 0 min;",
     f"{H + 1}:55: error: a duration must be longer than zero"),
    # ---------------------------------------------------------------- changed
    ("changed-in-where", "ON Door WHERE changed(contact) PUBLISH 'a';",
     f"{H + 1}:15: error: changed() belongs in an event filter, such as `Door(changed(contact))`"),
    ("changed-in-select", "SELECT changed(contact) AS c FROM Door;",
     f"{H + 1}:8: error: changed() belongs in an event filter, such as `Door(changed(contact))`"),
    ("changed-in-publish", 'ON Door PUBLISH \'a\' PAYLOAD {"c": changed(contact)};',
     f"{H + 1}:35: error: changed() belongs in an event filter, such as `Door(changed(contact))`"),
    ("changed-in-having", "SELECT door FROM Door HAVING changed(contact);",
     f"{H + 1}:30: error: changed() belongs in an event filter, such as `Door(changed(contact))`"),
    ("changed-in-subquery", "ON Door((SELECT count(*) FROM Last WHERE changed(n)) > 0) PUBLISH 'a';",
     f"{H + 1}:42: error: changed() belongs in an event filter, such as `Door(changed(contact))`"),
    ("changed-two-arguments", "ON Door(changed(door, contact)) PUBLISH 'a';",
     f"{H + 1}:9: error: changed() takes one attribute of the event, such as `changed(contact)`"),
    ("changed-literal", "ON Door(changed('contact')) PUBLISH 'a';",
     f"{H + 1}:9: error: changed() takes one attribute of the event, such as `changed(contact)`"),
    ("changed-unknown", "ON Door(changed(contac)) PUBLISH 'a';",
     f"{H + 1}:17: error: unknown name `contac`: event type Door has no attribute `contac` (did you mean `contact`?)"),
    ("changed-tag", "SELECT * FROM PATTERN [every a=Door -> b=Door(changed(a))];",
     f"{H + 1}:47: error: changed() takes one attribute of the event, such as `changed(contact)`"),
    # ---------------------------------------------------------------- cast
    ("cast-unknown-type", "SELECT cast(n, DOUBLE) AS d FROM Temp;",
     f"{H + 1}:8: error: cannot cast to DOUBLE: use STRING, INT, FLOAT or BOOL"),
    ("cast-to-timestamp", "SELECT cast(n, TIMESTAMP) AS d FROM Temp;",
     f"{H + 1}:8: error: cannot cast to TIMESTAMP: use STRING, INT, FLOAT or BOOL"),
    ("cast-event", "SELECT cast(a, STRING) AS d FROM PATTERN [every a=Temp];",
     f"{H + 1}:13: error: cast() converts a value, but this is an event"),
    ("cast-result", "SELECT room FROM Temp WHERE cast(n, STRING) = 3;",
     f"{H + 1}:29: error: cannot compare a STRING with a number (INT)"),
    # ---------------------------------------------------------------- CASE
    ("case-when-not-condition", "SELECT CASE WHEN n THEN 'a' ELSE 'b' END AS c FROM Temp;",
     f"{H + 1}:18: error: WHEN must be a condition (true or false) in a CASE with no value after CASE, but this is a number"),
    ("case-when-value", "SELECT CASE room WHEN 1 THEN 'a' END AS c FROM Temp;",
     f"{H + 1}:23: error: WHEN value is a number (INT), but CASE matches a STRING"),
    ("case-mixed-results", "SELECT CASE WHEN n > 1 THEN 'a' ELSE 2 END AS c FROM Temp;",
     f"{H + 1}:38: error: THEN and ELSE values must be of one kind, but this is a number (INT) and the one before is a STRING"),
    ("case-event", "SELECT CASE a WHEN 1 THEN 'a' END AS c FROM PATTERN [every a=Temp];",
     f"{H + 1}:13: error: CASE matches values, but this is an event: match one of its attributes"),
    ("case-result", "SELECT room FROM Temp WHERE CASE WHEN n > 1 THEN 1 ELSE 2.5 END = 'x';",
     f"{H + 1}:29: error: cannot compare a number (FLOAT) with a STRING"),
    # ---------------------------------------------------------------- string +
    ("join-timestamp", "SELECT 'at ' + at AS t FROM Temp;",
     f"{H + 1}:16: error: `+` joins text, and a TIMESTAMP has no text form: put it in the payload as its own value, such as"),
    ("join-event", "SELECT 'saw ' + a AS t FROM PATTERN [every a=Temp];",
     f"{H + 1}:17: error: `+` joins text, but this is an event: join one of its attributes, such as `a.name`"),
    ("join-events", "SELECT 'saw ' + a AS t FROM PATTERN [every [2] a=Temp];",
     f"{H + 1}:17: error: `+` joins text, but this is a list of events: join an attribute of one of them, such as `a[0].name`"),
    ("join-result", "SELECT room FROM Temp WHERE room + n > 1;",
     f"{H + 1}:29: error: cannot order a STRING against a number (INT) with `>`"),
    ("minus-string", "SELECT room - n AS t FROM Temp;",
     f"{H + 1}:8: error: `-` needs numbers, but this is a STRING"),
    # ---------------------------------------------------------------- time functions
    ("hour-of-number", "SELECT hour(n) AS h FROM Temp;",
     f"{H + 1}:13: error: hour() needs a TIMESTAMP, but this is a number (INT)"),
    ("minute-two-arguments", "SELECT minute(at, at) AS m FROM Temp;",
     f"{H + 1}:8: error: minute() takes no argument (now) or one TIMESTAMP, not 2"),
    ("current-timestamp-argument", "SELECT current_timestamp(at) AS t FROM Temp;",
     f"{H + 1}:8: error: current_timestamp() takes no arguments, not 1"),
    ("weekday-result", "SELECT room FROM Temp WHERE weekday() = 'MON';",
     f"{H + 1}:29: error: cannot compare a number (INT) with a STRING"),
    ("current-timestamp-result", "SELECT room FROM Temp WHERE current_timestamp() > 5;",
     f"{H + 1}:29: error: cannot order a TIMESTAMP against a number (INT) with `>`"),
    ("unknown-function-suggests", "SELECT chaned(n) AS c FROM Temp;",
     f"{H + 1}:8: error: unknown function `chaned`: the functions are abs, round, min, max, lower, upper, coalesce,"),
    # ---------------------------------------------------------------- window reads
    ("window-read-unknown-attr", "ON Door WHERE Last.valu > 1.0 PUBLISH 'a';",
     f"{H + 1}:15: error: window Last holds Temp events, which have no attribute `valu` (did you mean `value`?)"),
    ("window-read-type", "ON Door WHERE Last.room > 1 PUBLISH 'a';",
     f"{H + 1}:15: error: cannot order a STRING against a number (INT) with `>`"),
    ("window-not-unique", "ON Door WHERE Last['hall'].value > 1.0 PUBLISH 'a';",
     f"{H + 1}:15: error: Last is not #unique: read its latest event with `Last.value`"),
    ("window-not-unique-index", "ON Door WHERE Last[2].value > 1.0 PUBLISH 'a';",
     f"{H + 1}:15: error: Last is not #unique: read its latest event with `Last.value`"),
    ("window-key-count", "ON Door WHERE ByRoom['hall', 1].value > 1.0 PUBLISH 'a';",
     f"{H + 1}:15: error: ByRoom is keyed by (room): give 1 key"),
    ("window-key-count-two", "CREATE WINDOW Two#unique(room, n) FROM Temp;\nON Door WHERE Two['hall'].value > 1.0 PUBLISH 'a';",
     f"{H + 2}:15: error: Two is keyed by (room, n): give 2 keys"),
    ("window-key-type", "ON Door WHERE ByRoom[3].value > 1.0 PUBLISH 'a';",
     f"{H + 1}:15: error: ByRoom is keyed by `room`, a STRING, but this key is a number (INT)"),
    ("window-key-type-expr", "ON Door WHERE ByRoom[contact].value > 1.0 PUBLISH 'a';",
     f"{H + 1}:22: error: ByRoom is keyed by `room`, a STRING, but this key is a BOOL"),
    ("window-key-unknown-attr", "ON Door WHERE ByRoom[door].valu > 1.0 PUBLISH 'a';",
     f"{H + 1}:15: error: window ByRoom holds Temp events, which have no attribute `valu` (did you mean `value`?)"),
    ("window-unknown-keyed", "ON Door WHERE ByRom[door].value > 1.0 PUBLISH 'a';",
     f"{H + 1}:15: error: unknown named window `ByRom`: declare it with CREATE WINDOW (did you mean `ByRoom`?)"),
    ("window-unknown-tag-suggests", "ON Door WHERE Lst.value > 1.0 PUBLISH 'a';",
     f"{H + 1}:15: error: unknown tag `Lst` (did you mean `Last`?)"),
    ("window-bare-name", "ON Door WHERE Last IS NULL PUBLISH 'a';",
     f"{H + 1}:15: error: `Last` is a named window: read one of its attributes, such as `Last.room`"),
    ("tag-index-expression", "SELECT a[n].n AS x FROM PATTERN [every [2] a=Temp];",
     f"{H + 1}:8: error: the index of tag `a` is a whole number from 0, such as `a[0].n`"),
    ("window-in-filter", "ON Door(Last.valu > 1.0) PUBLISH 'a';",
     f"{H + 1}:9: error: window Last holds Temp events, which have no attribute `valu` (did you mean `value`?)"),
    ("window-in-select", "SELECT door, Last.valu AS v FROM Door;",
     f"{H + 1}:14: error: window Last holds Temp events, which have no attribute `valu` (did you mean `value`?)"),
    ("window-in-publish", 'ON Door PUBLISH \'a\' PAYLOAD {"v": ByRoom[door].valu};',
     f"{H + 1}:35: error: window ByRoom holds Temp events, which have no attribute `valu` (did you mean `value`?)"),
    ("window-in-on-start", "CREATE CONTEXT C INITIATED BY Door(contact) DURATION 5 min;\nCONTEXT C ON START WHERE Last.valu > 1.0 PUBLISH 'a';",
     f"{H + 2}:26: error: window Last holds Temp events, which have no attribute `valu` (did you mean `value`?)"),
    ("window-in-context-filter", "CREATE CONTEXT C INITIATED BY Door(Last.valu > 1.0) DURATION 5 min;\nCONTEXT C SELECT room FROM Temp;",
     f"{H + 1}:36: error: window Last holds Temp events, which have no attribute `valu` (did you mean `value`?)"),
    ("window-in-pattern-filter", "SELECT * FROM PATTERN [every a=Door(Last.valu > 1.0)];",
     f"{H + 1}:37: error: window Last holds Temp events, which have no attribute `valu` (did you mean `value`?)"),
    ("alias-named-window", "SELECT room FROM Temp AS Last;",
     f"{H + 1}:18: error: tag `Last` has the name of a named window: rename the tag"),
    ("tag-named-window", "SELECT * FROM PATTERN [every ByRoom=Temp];",
     f"{H + 1}:30: error: tag `ByRoom` has the name of a named window: rename the tag"),
    ("context-alias-named-window", "CREATE CONTEXT C INITIATED BY Door AS Last DURATION 5 min;\nCONTEXT C SELECT room FROM Temp;",
     f"{H + 1}:31: error: tag `Last` has the name of a named window: rename the tag"),
    ("stream-from-window", "SELECT room FROM Last;",
     f"{H + 1}:18: error: unknown event type Last: declare it with CREATE EVENT or produce it with INSERT INTO; Last is a"),
    # ---------------------------------------------------------------- subqueries
    ("subquery-unknown-window", "ON Door WHERE (SELECT count(*) FROM Lst) > 0 PUBLISH 'a';",
     f"{H + 1}:37: error: unknown named window `Lst`: a subquery reads a window declared with CREATE WINDOW (did you mean"),
    ("subquery-unknown-attr", "ON Door WHERE (SELECT max(valu) FROM Last) > 0 PUBLISH 'a';",
     f"{H + 1}:27: error: unknown name `valu`: window Last (its Temp events) has no attribute `valu` (did you mean `value`?)"),
    ("subquery-outer-attr", "ON Door WHERE (SELECT count(*) FROM ByRoom WHERE room = door) > 0 PUBLISH 'a';",
     f"{H + 1}:57: error: unknown name `door`: inside a subquery, bare names are attributes of window ByRoom (its Temp"),
    ("subquery-outer-attr-pattern", "SELECT * FROM PATTERN [every a=Door] WHERE (SELECT count(*) FROM ByRoom WHERE room = door) > 0;",
     f"{H + 1}:86: error: unknown name `door`: inside a subquery, bare names are attributes of window ByRoom (its Temp"),
    ("subquery-where-not-condition", "ON Door WHERE (SELECT count(*) FROM ByRoom WHERE n) > 0 PUBLISH 'a';",
     f"{H + 1}:50: error: a subquery's WHERE must be a condition (true or false), but this is a number (INT)"),
    ("subquery-aggregate-in-where", "ON Door WHERE (SELECT count(*) FROM ByRoom WHERE avg(n) > 1) > 0 PUBLISH 'a';",
     f"{H + 1}:50: error: an aggregate cannot be in a subquery's WHERE, which picks the window's events: aggregate in its"),
    ("subquery-nested-aggregate", "ON Door WHERE (SELECT sum(count(*)) FROM ByRoom) > 0 PUBLISH 'a';",
     f"{H + 1}:27: error: count() is inside another aggregate: an aggregate takes the values of the window's events, not of"),
    ("subquery-type", "ON Door WHERE (SELECT max(room) FROM ByRoom) > 0 PUBLISH 'a';",
     f"{H + 1}:15: error: cannot order a STRING against a number (INT) with `>`"),
    ("subquery-outer-tag-attr", "ON Door WHERE (SELECT count(*) FROM ByRoom WHERE room = Door.dor) > 0 PUBLISH 'a';",
     f"{H + 1}:57: error: event type Door has no attribute `dor` (did you mean `door`?)"),

]

WARNINGS = [
    ("window-unread", "CREATE WINDOW Unread#time(10 min) FROM Temp;",
     f"{H + 1}:15: warning: window Unread is never read; read it with `Unread.attr` or a "
     "subquery `(SELECT ... FROM Unread)`, or remove it"),
    ("unique-window-unread", "CREATE WINDOW Rooms#unique(room) FROM Temp;",
     f"{H + 1}:15: warning: window Rooms is never read; read it with `Rooms.attr`, "
     "`Rooms[key].attr`, or a subquery"),
    ("window-read-only-by-itself", "CREATE WINDOW Self#lastevent FROM Temp(Self.n < n);",
     f"{H + 1}:15: warning: window Self is never read"),
    ("window-reading-window-unread", "CREATE WINDOW Hot#lastevent FROM Temp(value > Last.value);",
     f"{H + 1}:15: warning: window Hot is never read"),
    ("group-by-plain-attribute",
     "SELECT room, n, avg(value) AS mean FROM Temp#time(30 min) GROUP BY room;",
     f"{H + 1}:14: warning: `n` is neither aggregated nor in GROUP BY: it is the arriving "
     "event's value"),
    ("group-by-alias-attribute",
     "SELECT t.room AS room, t.n AS n, avg(value) AS mean FROM Temp#time(30 min) AS t "
     "GROUP BY room;",
     f"{H + 1}:24: warning: `n` is neither aggregated nor in GROUP BY: it is the arriving "
     "event's value"),
]

# A realistic home: every second-edition feature in use, checked with no error or warning.
HOME_RULES = """
SET TIMEZONE 'Europe/Berlin';
CREATE EVENT Motion (room STRING, occupied BOOL) FROM TOPIC 'home/{room}/motion' PAYLOAD AS occupied;
CREATE EVENT Illuminance (room STRING, lux FLOAT) FROM TOPIC 'home/{room}/lux' PAYLOAD AS lux;
CREATE EVENT Presence (person STRING, home BOOL) FROM TOPIC 'home/presence/{person}' PAYLOAD AS home;
CREATE EVENT Temperature (room STRING, value FLOAT) FROM TOPIC 'home/{room}/temperature' PAYLOAD AS value;
CREATE EVENT Doorbell (door STRING) FROM TOPIC 'home/doorbell/{door}';
CREATE EVENT Door (door STRING, contact BOOL) FROM TOPIC 'home/door/{door}' PAYLOAD AS contact;
CREATE EVENT Power (device STRING, watts INT, at TIMESTAMP) FROM TOPIC 'home/power/{device}';

-- the latest hall brightness, and who is home (one event per person)
CREATE WINDOW Lux#lastevent FROM Illuminance(room = 'hall');
CREATE WINDOW People#unique(person) FROM Presence;

@name('hall-light')
ON Motion(room = 'hall', occupied) WHERE Lux.lux < 30
PUBLISH 'home/hall/light/set' PAYLOAD {"on": true};

@name('nobody-home')
ON Door(door = 'front', changed(contact), contact = false)
WHERE (SELECT count(*) FROM People WHERE home) = 0
PUBLISH 'home/alarm/arm' PAYLOAD {"reason": 'nobody home', "seen": (SELECT list(person) FROM People)};

@name('welcome-anna')
ON Motion(room = 'hall', occupied) WHERE People['anna'].home AND NOT (SELECT last(home) FROM People WHERE person = Motion.room)
PUBLISH 'home/hall/speaker' PAYLOAD 'welcome home, Anna';

@name('warm-rooms')
INSERT INTO Warm
SELECT room, avg(value) AS mean, max(value) AS peak, count(*) AS readings
FROM Temperature#time(30 min) GROUP BY room HAVING avg(value) > 23.0 AND count(*) >= 3
PUBLISH 'home/{room}/warm' PAYLOAD {"mean": mean, "peak": peak};

@name('warm-report')
SELECT room, 'mean ' + cast(round(mean, 1), STRING) + ' over ' + readings + ' readings' AS text
FROM Warm(readings > 2)
PUBLISH 'home/report' PAYLOAD text;

@name('doorbell')
ON Doorbell OUTPUT FIRST EVERY 30 sec
PUBLISH 'home/notify' PAYLOAD {"message": 'someone at the ' + door + ' door'};

@name('door-log')
SELECT door, contact FROM Door(changed(contact)) PUBLISH 'home/door/{door}/log';

@name('power-level')
SELECT device, watts, watts - prior(1, watts) AS delta,
       CASE WHEN watts > 2000 THEN 'high' WHEN watts > 100 THEN 'on' ELSE 'off' END AS level,
       CASE device WHEN 'oven' THEN 1 WHEN 'kettle' THEN 2 END AS kind,
       cast(watts, FLOAT) / 1000 AS kw, hour(at) AS at_hour, weekday() AS today
FROM Power WHERE prior(1, watts) IS NOT NULL AND watts != prior(1, watts)
PUBLISH 'home/power/{device}/level' PAYLOAD {"level": level, "delta": delta};

@name('power-recent')
SELECT device, list(watts) AS recent, last(watts) AS latest, stddev(watts) AS spread
FROM Power#length(10) GROUP BY device OUTPUT SNAPSHOT EVERY 5 min
PUBLISH 'home/power/{device}/recent' PAYLOAD {"recent": recent, "latest": latest};

@name('power-peak')
SELECT device, max(watts) AS peak, min(at) AS since, first(watts) AS first_watts
FROM Power(watts > 0)#unique(device) GROUP BY device OUTPUT LAST EVERY 1 min;
"""

VALID = [
    ("home", HOME_RULES),
    ("window-of-derived-type-read-before-its-producer",
     "CREATE EVENT T (room STRING, value FLOAT) FROM TOPIC 'home/{room}/t' PAYLOAD AS value;\n"
     "ON T WHERE value > Means[room].mean + 2.0 PUBLISH 'home/{room}/jump';\n"
     "CREATE WINDOW Means#unique(room) FROM Mean(mean > 0.0);\n"
     "INSERT INTO Mean SELECT room, avg(value) AS mean FROM T#time(1 h) GROUP BY room;\n"),
    ("event-type-read-only-by-a-window",
     "CREATE EVENT T (v INT) FROM TOPIC 't' PAYLOAD AS v;\n"
     "CREATE EVENT U (v INT) FROM TOPIC 'u' PAYLOAD AS v;\n"
     "CREATE WINDOW W#length(3) FROM T;\n"
     "ON U WHERE (SELECT sum(v) FROM W) > U.v PUBLISH 'x';\n"),
    ("window-read-in-context-and-window-filters",
     "CREATE EVENT T (v INT) FROM TOPIC 't' PAYLOAD AS v;\n"
     "CREATE WINDOW W#lastevent FROM T;\n"
     "CREATE WINDOW V#lastevent FROM T(v > W.v);\n"
     "CREATE CONTEXT C INITIATED BY T(v > V.v) TERMINATED BY T(changed(v), v < W.v);\n"
     "CONTEXT C ON START PUBLISH 'x' PAYLOAD {\"w\": W.v};\n"),
    ("subquery-in-filters-and-aggregates-anywhere",
     "CREATE EVENT T (room STRING, v INT) FROM TOPIC 'home/{room}/t' PAYLOAD AS v;\n"
     "CREATE WINDOW W#time(1 h) FROM T;\n"
     "SELECT * FROM PATTERN [every a=T -> b=T(v > (SELECT avg(v) FROM W WHERE room = a.room))];\n"
     "SELECT room, (SELECT max(v) FROM W WHERE room = T.room) AS top FROM T(v > (SELECT min(v) FROM W));\n"),
    ("having-without-window", "CREATE EVENT T (v INT) FROM TOPIC 't' PAYLOAD AS v;\n"
     "SELECT v FROM T HAVING v > 1 AND prior(1, v) < v;\n"),
    ("output-on-pattern-and-stream",
     "CREATE EVENT T (v INT) FROM TOPIC 't' PAYLOAD AS v;\n"
     "SELECT * FROM PATTERN [every a=T -> b=T] OUTPUT LAST EVERY 10 sec;\n"
     "ON T OUTPUT FIRST EVERY 1 min PUBLISH 'x';\n"
     "SELECT v FROM T OUTPUT FIRST EVERY 1 min;\n"),
    ("string-joins", "CREATE EVENT T (s STRING, i INT, f FLOAT, b BOOL) FROM TOPIC 't';\n"
     "SELECT s + i AS a, i + s AS b, s + f + b AS c, s + null AS d, 'x' + s AS e FROM T;\n"),
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
    assert [line for line in found if line.startswith(expected)], "\n".join(found)
    assert len(found) == 1, "\n".join(found)


@pytest.mark.parametrize("case_id,source", VALID, ids=[c[0] for c in VALID])
def test_valid_file_checks_cleanly(case_id, source):
    found = diagnostics_text(load(source))
    assert found == [], "\n".join(found)


def test_the_home_registers_its_windows_and_result_types():
    catalog = load(HOME_RULES).catalog
    assert {name: (w.type, w.keys) for name, w in catalog.windows.items()} == {
        "Lux": ("Illuminance", ()), "People": ("Presence", ("person",))}
    schemas = {info.name: info.schema for info in catalog.rules}
    assert schemas["warm-rooms"] == {"room": STRING, "mean": FLOAT, "peak": FLOAT,
                                     "readings": INT}
    assert catalog.events["Warm"].attrs == schemas["warm-rooms"]
    assert schemas["warm-report"] == {"room": STRING, "text": STRING}
    assert schemas["power-level"] == {"device": STRING, "watts": INT, "delta": INT,
                                      "level": STRING, "kind": INT, "kw": FLOAT,
                                      "at_hour": INT, "today": INT}
    assert schemas["power-recent"] == {"device": STRING, "recent": VALUES, "latest": INT,
                                       "spread": FLOAT}
    assert schemas["power-peak"] == {"device": STRING, "peak": INT, "since": TIMESTAMP,
                                     "first_watts": INT}


def test_a_derived_window_is_typed_when_its_readers_are_checked():
    """Reading a window counts as reading its type: the rule is checked after the producer,
    so `Means[room].mean` is FLOAT and comparing it with a string is refused."""
    loaded = load("CREATE EVENT T (room STRING, value FLOAT) FROM TOPIC 'home/{room}/t';\n"
                  "ON T WHERE Means[room].mean = 'high' PUBLISH 'x';\n"
                  "CREATE WINDOW Means#unique(room) FROM Mean;\n"
                  "INSERT INTO Mean SELECT room, avg(value) AS mean FROM T#time(1 h) GROUP BY room;\n")
    assert diagnostics_text(loaded) == [
        "2:12: error: cannot compare a number (FLOAT) with a STRING"]


def test_every_error_of_one_rule_is_reported_once():
    """Five mistakes, five errors; the missing view (which the aggregate, GROUP BY and OUTPUT
    SNAPSHOT all need) is one of them, said at the aggregate."""
    loaded = load(HOME + "SELECT avg(n) AS a, prior(0, n) AS p, changed(n) AS c, Last.nn AS l, "
                  "cast(n, DATE) AS d FROM Temp GROUP BY room OUTPUT SNAPSHOT EVERY 1 min;")
    errors = [line.split(": error: ")[0] for line in diagnostics_text(loaded)
              if ": error: " in line]
    assert errors == [f"{H + 1}:{col}" for col in (8, 21, 39, 56, 70)], \
        diagnostics_text(loaded)
