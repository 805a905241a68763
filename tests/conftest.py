import os
import sys

import pytest

# Tests import `tests.helpers`-style modules by name; keep the tests folder importable.
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def broker(tmp_path):
    """A mosquitto of the test's own, on a free loopback port, stopped after the test."""
    from tests.broker import Broker, require_mosquitto

    require_mosquitto()
    folder = tmp_path / "broker"
    folder.mkdir()
    running = Broker(folder).start()
    yield running
    running.stop()
