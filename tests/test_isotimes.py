"""ISO times by sums within a minute (cep.adapters.isotimes): exactly what
`datetime.fromisoformat(text).timestamp()` gives, and None for the same texts, whatever the
order the texts come in.  CI runs this file against the compiled build too, where the
fused reading uses the sums."""

import random
from datetime import datetime

import pytest

from cep.adapters.isotimes import MAX_SECONDS_TEXTS, OffsetTimes


def reference(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if moment.tzinfo is None else moment.timestamp()


ODD = [
    "2024-01-01T00:00:00.050+00:00", "2024-01-01T00:00:00.050Z", "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00+05:30", "2024-01-01T00:00:00.123456-03:00", "2024-01-01 00:00:01.5+01:00",
    "2024-01-01T00:00:00.1234567+00:00", "2024-01-01T00:00,250+00:00", "2024-01-01T00:00+00:00",
    "2024-01-01T00:00:00", "2024-01-01T00:00:00.050", "20240101T000000.050+00:00",
    "2024-01-01T00:00:60.000+00:00", "2024-02-30T00:00:00.000+00:00", "2024-01-01T24:00:00+00:00",
    "2024-01-01T00:00:00.050+00:00:30", "2024-01-01T00:00:0١.000+00:00", "2024-01-01T00:00:00.05+00:00",
    "2024-01-01T00:00:00.050+0000", "2024-01-01T00:00:00.050 +00:00", "", "Z", "2024",
    "1970-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00", "0001-01-01T00:00:00+14:00",
    # after a time in milliseconds, its minute's texts read by their digits
    "2024-01-01T00:00:00.050+00:00", "2024-01-01T00:00:59.999+00:00", "2024-01-01T00:00:0a.000+00:00",
    "2024-01-01T00:00:00.0a0+00:00", "2024-01-01T00:00:00:000+00:00", "2024-01-01T00:00:00.00-+00:00",
    "2024-01-01T00:00:60.000+00:00", "2024-01-01T00:00:-1.000+00:00", "2024-01-01T00:00:00.٣00+00:00",
    "2024-01-01T00:00:00,250+00:00", "2024-01-01T00:00:07.250+00:00",
]


def test_odd_texts_read_as_fromisoformat_reads_them():
    times = OffsetTimes()
    for text in ODD * 3:  # again, once each has taught what it can
        assert times.unix(text) == reference(text), text


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_runs_of_times_give_the_same_seconds(seed):
    """Runs within a minute (the sums), minute and offset changes, fractions of every
    length, texts that do not parse, in order and shuffled."""
    rnd = random.Random(seed)
    texts = []
    moment = datetime(2024, 3, 31, 0, 59, 30)
    for _ in range(20_000):
        moment = moment.fromtimestamp(moment.timestamp() + rnd.choice([0, 0.05, 0.001, 1, 37]))
        digits = rnd.choice([0, 1, 3, 3, 3, 6])
        text = moment.isoformat(timespec={0: "seconds", 3: "milliseconds",
                                          6: "microseconds"}.get(digits, "milliseconds"))
        if digits == 1:
            text = text[:21]
        text += rnd.choice(["+00:00", "+00:00", "Z", "+02:00", "-09:30", "", "+0100"])
        if rnd.random() < 0.01:
            text = text.replace(":", "-", 1)
        texts.append(text)
    shuffled = texts[:]
    rnd.shuffle(shuffled)
    for run in (texts, shuffled):
        times = OffsetTimes()
        assert [t for t in run if times.unix(t) != reference(t)] == []


def test_the_seconds_texts_remembered_are_bounded():
    times = OffsetTimes()
    for n in range(MAX_SECONDS_TEXTS + 5_000):
        text = f"2024-01-01T00:00:{n % 60:02d}.{n:06d}+00:00"
        assert times.unix(text) == reference(text)
    assert len(times.seconds) == MAX_SECONDS_TEXTS


def test_times_in_milliseconds_are_read_by_their_digits():
    """Readings at random milliseconds (60,000 seconds texts a minute, more than are
    remembered) are all sums, and each is what fromisoformat gives; the texts remembered
    stay bounded."""
    rnd = random.Random(5)
    times = OffsetTimes()
    at = datetime(2024, 3, 31, 0, 40).timestamp()
    for _ in range(30_000):
        at += rnd.randrange(1, 100) / 1000
        text = datetime.fromtimestamp(at).isoformat(timespec="milliseconds") + "+01:00"
        assert times.unix(text) == reference(text), text
    assert times.millis and len(times.seconds) == MAX_SECONDS_TEXTS
