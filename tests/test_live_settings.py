"""Broker URLs and options, durations, action payloads: table-driven, no broker needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cep.adapters.live import payload_bytes
from cep.adapters.mqtt import PASSWORD_ENV, BrokerSettings, SettingsError
from cep.cli.live import _filter_problem, parse_duration
from tests.broker import WAIT

URLS = [
    ("mqtt://localhost", ("localhost", 1883, False, None, None)),
    ("localhost:1884", ("localhost", 1884, False, None, None)),
    ("mqtts://broker.lan", ("broker.lan", 8883, True, None, None)),
    ("mqtts://broker.lan:9000", ("broker.lan", 9000, True, None, None)),
    ("mqtt://alice:s%40cret@10.0.0.2:1883", ("10.0.0.2", 1883, False, "alice", "s@cret")),
    ("MQTT://[::1]:1883", ("::1", 1883, False, None, None)),
]


@pytest.mark.parametrize("url, expected", URLS)
def test_broker_urls(url, expected, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    s = BrokerSettings.from_url(url)
    assert (s.host, s.port, s.tls, s.username, s.password) == expected


def test_a_user_without_password_reads_it_from_the_environment(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    s = BrokerSettings.from_url("mqtt://bob@host")
    assert (s.username, s.password) == ("bob", "from-env")
    assert s.display == "mqtt://bob@host:1883"  # never shows the password


BAD = [
    (("http://host",), {}, "the scheme must be mqtt:// or mqtts://"),
    (("mqtt://host:99999",), {}, "the port is not a number"),
    (("mqtt://host/path",), {}, "no path or query"),
    (("mqtt://",), {}, "names no host"),
    (("mqtt://host",), {"ca_file": "/nonexistent/ca.pem", "tls": True}, "no such file"),
    (("mqtt://host",), {"insecure": True}, "need --tls or an mqtts:// URL"),
    (("mqtt://host",), {"keepalive": 0}, "--keepalive"),
    (("mqtt://host",), {"reconnect_min": 5, "reconnect_max": 1}, "reconnect delays"),
    (("mqtt://host",), {"status_topic": "cep/+"}, "plain topic name"),
]


@pytest.mark.parametrize("args, options, message", BAD)
def test_bad_settings_say_why(args, options, message):
    with pytest.raises(SettingsError, match=message.replace("+", r"\+")):
        BrokerSettings.from_url(*args, **options)


def test_client_ids():
    plain = BrokerSettings.from_url("mqtt://h")
    assert plain.client_id.startswith("cep-") and plain.client_id.count("-") >= 2
    persistent = BrokerSettings.from_url("mqtt://h", persistent=True)
    again = BrokerSettings.from_url("mqtt://h", persistent=True)
    assert persistent.client_id == again.client_id  # found again by the broker
    assert BrokerSettings.from_url("mqtt://h", client_id="me").client_id == "me"


@pytest.mark.parametrize("text, seconds", [
    ("90", 90.0), ("90s", 90.0), ("1.5s", 1.5), ("15m", 900.0), ("2h", 7200.0),
    ("1d", 86400.0), ("250ms", 0.25), (" 3 m ", 180.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5s", "0", "5 minutes", "1h30m"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("topic, problem", [
    ("home/#", None), ("+/temp", None), ("#", None), ("a/b", None),
    ("", "empty"), ("home/#/x", "'#'"), ("home/ab#", "'#'"), ("home/a+", "'+'")])
def test_topic_filters(topic, problem):
    found = _filter_problem(topic)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize("value, sent", [
    ("ON", b"ON"), ("", b""), ({"state": "ON", "level": 2.5}, b'{"state":"ON","level":2.5}'),
    ([1, "é"], '[1,"é"]'.encode()), (12, b"12"), (None, b"null"), (True, b"true")])
def test_action_payload_bytes(value, sent):
    assert payload_bytes(value) == sent


@pytest.mark.parametrize("argv, message", [
    (["run", "RULES", "--broker", "ftp://x"], "the scheme must be mqtt"),
    (["run", "RULES", "--insecure"], "TLS options need --tls"),
    (["record", "--topic", "a/#/b", "--out", "OUT"], "'#' must be a whole level"),
    (["record", "--topic", "a", "--out", "OUT", "--duration", "later"], "not a duration"),
    (["record", "--topic", "a", "--out", "OUT", "--tz", "Mars/Olympus"], "unknown time zone"),
    (["run", "RULES", "--tls", "--ca-file", "RULES"], "not a PEM certificate file"),
    (["record", "--topic", "a", "--out", "OUT", "--tls", "--ca-file", "RULES"],
     "not a PEM certificate file"),
    (["run", "RULES", "--broker", "mqtts://h", "--cert", "RULES", "--key", "RULES"],
     "not a PEM certificate and its private key"),
])
@pytest.mark.slow  # a `cep` child process each
def test_usage_errors_exit_2_before_connecting(tmp_path, argv, message):
    rules = tmp_path / "r.epl"
    rules.write_text("CREATE EVENT T (v INT) FROM TOPIC 't';\n"
                     "SELECT a.v AS v FROM PATTERN [every a=T];\n")
    argv = [str(rules) if a == "RULES" else str(tmp_path / "o.jsonl") if a == "OUT" else a
            for a in argv]
    done = subprocess.run([sys.executable, "-m", "cep", *argv], capture_output=True,
                          text=True, timeout=WAIT)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
