"""Bad message reporting: counted always, reported at most once per topic per engine minute."""

from __future__ import annotations

from cep.adapters.bus import BadMessageReporter


def make():
    lines: list[str] = []
    return BadMessageReporter(lines.append), lines


def test_bus_reporter_rate_limit_per_topic_in_engine_time():
    reporter, lines = make()
    # (topic, engine time, reported?)
    steps = [
        ("a", 1000.0, True),    # first bad message on a topic: reported
        ("a", 1010.0, False),
        ("b", 1020.0, True),    # another topic has its own limit
        ("a", 1059.999, False),
        ("a", 1060.0, True),    # a minute after the last report on a
        ("b", 1070.0, False),
        ("a", 1061.0, False),
        ("a", 1200.0, True),
        ("a", 1201.0, False),
    ]
    for topic, now, reported in steps:
        assert reporter.bad(topic, f"why {now}", now) is reported, (topic, now)
    assert lines == [
        "bad message on a: why 1000.0",
        "bad message on b: why 1020.0",
        "bad message on a: why 1060.0 (and 2 more on this topic since the last report)",
        "bad message on a: why 1200.0 (and 1 more on this topic since the last report)",
    ]
    assert reporter.total == 9
    assert reporter.counts == {"a": 7, "b": 2}
    assert reporter.count("a") == 7 and reporter.count("zzz") == 0
    assert reporter.summary() == "9 bad messages on 2 topics: a 7, b 2"


def test_bus_reporter_never_reads_the_wall_clock():
    reporter, lines = make()
    reporter.bad("t", "x", 0.0)
    reporter.bad("t", "x", 59.0)
    assert len(lines) == 1  # no real time passes in engine time
    reporter.bad("t", "x", 1e9)
    assert len(lines) == 2


def test_bus_reporter_interval_is_configurable():
    lines: list[str] = []
    reporter = BadMessageReporter(lines.append, interval=5.0)
    for now in (0.0, 4.0, 5.0, 9.0, 10.0):
        reporter.bad("t", "x", now)
    assert len(lines) == 3


def test_bus_reporter_summary_when_nothing_or_one():
    reporter, _ = make()
    assert reporter.summary() == "no bad messages"
    reporter.bad("home/x", "why", 0.0)
    assert reporter.summary() == "1 bad message on 1 topic: home/x 1"
