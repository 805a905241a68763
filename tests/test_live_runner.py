"""LiveRunner in-process against a real mosquitto, with a clock the test controls.

Shows that timers fire on the runner's clock while no message comes, that the
engine sees messages in arrival order on one thread, and that `stop()` ends
the run cleanly.  The runner polls its clock every `idle_wake` seconds; the
test moves the clock and waits for the resulting action on the bus.  So a timer
fires exactly when the test says, e.g. while the broker is away, never by a race
between the real clock and a loaded machine.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC

import pytest

from cep.adapters.live import LiveRunner
from cep.adapters.mqtt import BrokerSettings
from cep.checks.loader import load_texts
from tests.broker import WAIT, BusClient, wait_until

pytestmark = pytest.mark.mqtt

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


QUIET_RULES = """CREATE EVENT Button (action STRING) FROM TOPIC 'zigbee2mqtt/button' PAYLOAD AS action;

@name('quiet')
SELECT b.action AS last
FROM PATTERN [ every b=Button -> (timer:interval(3 sec) and not Button) ]
PUBLISH 'home/quiet' PAYLOAD {"after": last} QOS 1;

@name('pressed') SELECT action FROM Button;
"""


@pytest.mark.parametrize("broker_back", [False, True], ids=["broker-gone", "broker-back"])
def test_a_qos1_action_raised_while_disconnected(broker_back, broker):
    """Sent after reconnecting when the broker comes back; counted as never sent when the
    run stops first.  The timer fires when the test moves the clock, with the broker
    surely away; the watcher's persistent session (kept by mosquitto across its restart)
    holds the action for it, whenever cep sends it."""
    loaded = load_texts([("quiet.epl", QUIET_RULES)])
    assert loaded.ok, loaded.diagnostics
    clock = TestClock(1_800_000_000.0)
    outputs: list[dict] = []
    settings = BrokerSettings.from_url(broker.url, status_topic="test/cep",
                                       reconnect_min=0.1, reconnect_max=0.5)
    runner = LiveRunner(loaded.catalog, settings, outputs.append, UTC,
                        report=lambda message: None, clock=clock, idle_wake=0.02)
    watcher = BusClient(broker, ("home/quiet",), client_id="watcher", clean_session=False)
    thread = threading.Thread(target=runner.run, kwargs={"install_signals": False})
    thread.start()
    try:
        wait_until(runner.connection.connected.is_set, "cep listening")
        watcher.publish("zigbee2mqtt/button", "single")
        wait_until(lambda: [o["rule"] for o in outputs] == ["pressed"], "the button's event")
        watcher.close()  # its session (the subscription) stays on the broker
        broker.stop()
        wait_until(lambda: runner.connection.state == "reconnecting", "cep seeing it lost")
        clock.now += 5  # the 3 s of quiet are over, with the broker away
        wait_until(lambda: any(o["kind"] == "publish" for o in outputs), "the action")
        assert (runner.stats.actions, runner.stats.action_failures) == (1, 0)
        if broker_back:
            broker.start()
            back = BusClient(broker, ("home/quiet",), client_id="watcher",
                             clean_session=False)
            try:
                back.wait_topic("home/quiet", b'{"after":"single"}')
            finally:
                back.close()
    finally:
        runner.stop()
        thread.join(WAIT)
    assert not thread.is_alive()
    expected = "1 action published (0 dropped)" if broker_back else \
        "0 actions published (0 dropped, 1 never sent)"
    summary = runner.stats.summary(1.0)
    assert expected in summary, summary
