"""LiveRunner in-process against a real mosquitto, with a clock the test controls.

Shows that timers fire on the runner's clock while no message comes, that the
engine sees messages in arrival order on one thread, and that `stop()` ends
the run cleanly.  The runner polls its clock every `idle_wake` seconds; the
test moves the clock and waits for the resulting action on the bus.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC
from pathlib import Path

import pytest

from cep.adapters.live import LiveRunner
from cep.adapters.mqtt import BrokerSettings
from cep.checks.loader import load_texts
from tests.broker import WAIT, Broker, BusClient, require_mosquitto

RULES = """\
CREATE EVENT Motion (room STRING) FROM TOPIC 'zigbee2mqtt/{room}_motion';

@name('idle')
SELECT m.room AS room
FROM PATTERN [ every m=Motion -> (timer:interval(10 min) and not Motion(room = m.room)) ]
PUBLISH 'zigbee2mqtt/{room}_light/set' PAYLOAD {"state": "OFF"};
"""


class TestClock:
    __test__ = False

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def broker(tmp_path: Path):
    require_mosquitto()
    running = Broker(tmp_path).start()
    yield running
    running.stop()


def test_timers_fire_on_the_runner_clock_while_the_bus_is_quiet(broker):
    loaded = load_texts([("idle.epl", RULES)])
    assert loaded.ok, loaded.diagnostics
    clock = TestClock(1_800_000_000.0)
    outputs: list[dict] = []
    settings = BrokerSettings.from_url(broker.url, status_topic="test/cep")
    runner = LiveRunner(loaded.catalog, settings, outputs.append, UTC,
                        report=lambda message: None, clock=clock, idle_wake=0.02)
    bus = BusClient(broker)
    thread = threading.Thread(target=runner.run, kwargs={"install_signals": False})
    thread.start()
    try:
        bus.wait_topic("test/cep", b"online")
        bus.publish("zigbee2mqtt/hall_motion", '{"occupancy": true}')
        bus.publish("zigbee2mqtt/study_motion", '{"occupancy": true}')
        # both arrived at 1_800_000_000; at +5 min the hall moves again
        wait_until(lambda: runner.stats.events == 2)
        clock.now += 300
        bus.publish("zigbee2mqtt/hall_motion", '{"occupancy": true}')
        wait_until(lambda: runner.stats.events == 3)
        clock.now += 301  # the study's 10 minutes are over; the hall's (from +5 min) not yet
        off = bus.wait_topic("zigbee2mqtt/study_light/set")
        assert json.loads(off.payload) == {"state": "OFF"}
        clock.now += 300  # now the hall's
        bus.wait_topic("zigbee2mqtt/hall_light/set")
    finally:
        runner.stop()
        thread.join(WAIT)
        bus.close()
    assert not thread.is_alive()
    events = [o for o in outputs if o["kind"] == "event"]
    assert [(o["attrs"]["room"], o["ts"] - 1_800_000_000.0) for o in events] == [
        ("study", 600.0), ("hall", 900.0)]


def wait_until(condition, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_the_engine_clock_follows_the_runner_clock_while_the_bus_is_quiet(broker):
    """Event time is wall time live: with nothing arriving, the engine's clock (which the
    view shows, with 'closes in' and 'ago') still moves on."""
    loaded = load_texts([("idle.epl", RULES)])
    clock = TestClock(1_800_000_000.0)
    settings = BrokerSettings.from_url(broker.url, status_topic="test/cep")
    runner = LiveRunner(loaded.catalog, settings, lambda record: None, UTC,
                        report=lambda message: None, clock=clock, idle_wake=0.02)
    thread = threading.Thread(target=runner.run, kwargs={"install_signals": False})
    thread.start()
    try:
        wait_until(lambda: runner.engine.started)
        clock.now += 42.5
        wait_until(lambda: runner.engine.now == clock.now)
    finally:
        runner.stop()
        thread.join(WAIT)
    assert runner.stats.events == 0
