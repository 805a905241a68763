import os
import shutil
import subprocess
import sys

import pytest

# Tests import `tests.helpers`-style modules by name; keep the tests folder importable.
sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config):
    """CEP_EXPECT_BUILD="compiled with mypyc" (CI's run against the compiled build): stop
    unless the cep these tests import is that build (`cep --version`'s words)."""
    wanted = os.environ.get("CEP_EXPECT_BUILD")
    if wanted:
        from cep.cli.app import build_variant

        if build_variant() != wanted:
            import cep

            pytest.exit(f"the tests import {build_variant()} cep from {cep.__file__}, "
                        f"not {wanted}", returncode=1)


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


@pytest.fixture
def password_broker(tmp_path):
    """A mosquitto that takes only user `cepuser` with password `S3cr3t`."""
    from tests.broker import Broker, require, require_mosquitto

    require_mosquitto()
    require(shutil.which("mosquitto_passwd") is not None, "needs mosquitto_passwd")
    folder = tmp_path / "auth"
    folder.mkdir()
    passwords = folder / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "cepuser", "S3cr3t"],
                   check=True, capture_output=True)
    passwords.chmod(0o600)
    running = Broker(folder, extra_config=f"allow_anonymous false\npassword_file {passwords}\n")
    running.start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def own_state_home(tmp_path_factory, monkeypatch):
    """`cep run` keeps its state under $XDG_STATE_HOME/cep by default: each test has its
    own, so no test finds another's state (nor the user's)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))
