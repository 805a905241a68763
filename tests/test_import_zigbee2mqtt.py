"""`cep import zigbee2mqtt`: a device list (file or retained broker message) as a rule file.

The generated declarations must check without errors (the only warnings: types no rule
reads), read real state messages without a bad message, and name, type and escape what
real device lists hold. A damaged list is refused with what is wrong, writing nothing."""

import json
import re
from pathlib import Path

import pytest

from cep.cli import main

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "zigbee2mqtt"
DEVICES = SHARED / "bridge-devices.json"
STATES = SHARED / "states.jsonl"
needs_shared = pytest.mark.skipif(not DEVICES.exists() or not STATES.exists(),
                                  reason="shared zigbee2mqtt files not present")

UNUSED = "is declared but no rule or context reads it"


def run(capsys, *args) -> tuple[int, str, str]:
    status = main([*map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def import_list(capsys, tmp_path, devices, *extra) -> tuple[Path, str]:
    source = tmp_path / "devices.json"
    source.write_text(json.dumps(devices) if not isinstance(devices, str) else devices)
    out = tmp_path / "devices.epl"
    status, stdout, err = run(capsys, "import", "zigbee2mqtt", source, "--out", out, *extra)
    assert status == 0, err
    assert stdout == ""
    return out, err


def check_clean(capsys, *rules: Path) -> list[str]:
    """`cep check`: no error; the warnings, all of them about unread event types."""
    status, out, err = run(capsys, "check", *rules)
    text = out + err
    assert status == 0, text
    warnings = [line for line in text.splitlines() if ": warning: " in line]
    assert not [line for line in text.splitlines() if ": error: " in line], text
    assert all(UNUSED in line for line in warnings), text
    plural = "" if len(warnings) == 1 else "s"
    assert err.splitlines()[-1].endswith(f"0 errors, {len(warnings)} warning{plural}"), text
    return warnings


def replay(capsys, trace: Path, *rules: Path) -> tuple[list[dict], str]:
    status, out, err = run(capsys, "replay", *rules, "--trace", trace)
    assert status == 0, err
    return [json.loads(line) for line in out.splitlines()], err.splitlines()[-1]


def counts(summary: str) -> dict[str, int]:
    """The events, bad messages and unmatched messages a replay's summary line counts."""
    found = {}
    for what in ("events?", "bad messages?", "unmatched"):
        match = re.search(rf"(\d[\d,]*) {what}\b", summary)
        found[what.rstrip("s?")] = int(match.group(1).replace(",", "")) if match else 0
    return found


def declarations(text: str) -> dict[str, str]:
    """Event type name → its CREATE EVENT statement (comments dropped)."""
    code = " ".join(line.split(" --")[0] for line in text.splitlines()
                    if not line.startswith("--"))
    found: dict[str, str] = {}
    for chunk in code.split("CREATE EVENT ")[1:]:
        found[chunk.split(" ", 1)[0]] = " ".join(chunk.split(";")[0].split()).replace("( ", "(")
    return found


def comment(text: str, attr: str) -> str:
    """The comment after the attribute `attr` of a declaration ("" if none)."""
    for line in text.splitlines():
        if line.startswith(f"    {attr} "):
            return line.partition(" -- ")[2]
    raise AssertionError(f"no attribute {attr} in the rules")


def trace_line(ts: str, topic: str, payload) -> str:
    return json.dumps({"ts": ts, "topic": topic, "payload": payload}) + "\n"


# ---------------------------------------------------------------- the real device list

@needs_shared
def test_the_real_list_gives_one_type_per_device_and_checks_clean(tmp_path, capsys):
    out, err = import_list(capsys, tmp_path, DEVICES.read_text())
    assert err.strip() == f"{tmp_path / 'devices.json'}: 20 devices, 19 event types, 1 skipped"
    text = out.read_text()
    types = declarations(text)
    assert list(types) == [
        "OfficeDeskLight", "OfficeDeskSwitch", "BathroomMotionSensor", "BathroomMirrorLight",
        "HallwayMotionSensor", "KitchenMotionSensor", "HallwayLight", "BedroomDeskLight",
        "BedroomDeskSwitch", "Light1", "MotionSensor1", "SquareSwitch", "Plug",
        "WallSwitch1", "WallSwitch2", "LivingRoomTemperatureHumidityAndPressureSensor",
        "BathroomLeakSensor", "DoorSensor", "Cube"]
    assert "-- Coordinator (Coordinator)\n--   skipped: the coordinator" in text
    # the friendly name as is, comma and spaces included
    assert types["LivingRoomTemperatureHumidityAndPressureSensor"].endswith(
        "FROM TOPIC 'zigbee2mqtt/Living Room temperature, humidity and pressure sensor'")
    # a light's features flattened; `effect` is set-only (access 2), so not declared
    assert types["OfficeDeskLight"] == (
        "OfficeDeskLight (state BOOL, brightness FLOAT, color_temp FLOAT, "
        "color_temp_startup FLOAT, power_outage_memory BOOL, linkquality FLOAT ) "
        "FROM TOPIC 'zigbee2mqtt/Office Desk Light'")
    assert "not published (set or get only), not declared: effect" in text
    # two features of one key (illuminance_lux, illuminance) are one attribute
    assert types["KitchenMotionSensor"].count("illuminance FLOAT") == 1
    # whole steps are INT; the door contact (value_on false) is still BOOL
    assert "side INT" in types["Cube"] and "action_side INT" in types["Cube"]
    assert "action_angle FLOAT" in types["Cube"]
    assert "contact BOOL" in types["DoorSensor"]
    assert "action STRING" in types["WallSwitch1"]
    assert comment(text, "power") == "W; Instantaneous measured power"
    assert "energy FLOAT" in types["Plug"]
    assert comment(text, "brightness") == "0..254; Brightness of this light"
    assert comment(text, "state").startswith("ON = true, OFF = false; ")
    assert len(check_clean(capsys, out)) == 19


@needs_shared
def test_the_real_state_messages_decode_with_the_expected_values(tmp_path, capsys):
    out, _ = import_list(capsys, tmp_path, DEVICES.read_text())
    readers = tmp_path / "read.epl"
    readers.write_text("@name('cube') SELECT * FROM Cube;\n"
                       "@name('light') SELECT * FROM BedroomDeskLight;\n"
                       "@name('climate') SELECT * FROM "
                       "LivingRoomTemperatureHumidityAndPressureSensor;\n")
    assert len(check_clean(capsys, out, readers)) == 16
    lines, summary = replay(capsys, STATES, out, readers)
    # The third message is from "Bedroom temperature, humidity and pressure sensor", a
    # device the list does not hold (it has the "Living Room" one): unmatched, not bad.
    assert counts(summary) == {"event": 2, "bad message": 0, "unmatched": 1}, summary
    assert [(line["rule"], line["attrs"]) for line in lines] == [
        ("cube", {"battery": 100.0, "voltage": 3045.0, "device_temperature": 18.0,
                  "power_outage_count": 344.0, "side": 3, "linkquality": 255.0}),
        ("light", {"state": False, "brightness": 41.0, "color_temp": 260.0,
                   "linkquality": 220.0})]
    # the climate message, sent by the device of the list (same payload, its topic)
    first = json.loads(STATES.read_text().splitlines()[0])
    assert first["topic"].startswith("zigbee2mqtt/Bedroom temperature")
    moved = tmp_path / "moved.jsonl"
    moved.write_text(trace_line(first["ts"], "zigbee2mqtt/Living Room temperature, humidity "
                                             "and pressure sensor", first["payload"]))
    lines, summary = replay(capsys, moved, out, readers)
    assert counts(summary) == {"event": 1, "bad message": 0, "unmatched": 0}, summary
    assert [line["attrs"] for line in lines] == [
        {"battery": 100.0, "temperature": 20.74, "humidity": 44.43, "pressure": 957.4,
         "voltage": 3025.0, "linkquality": 152.0}]


# ---------------------------------------------------------------- names, types, escapes

def feature(kind, prop, access=1, **more):
    return {"type": kind, "name": prop, "property": prop, "access": access, **more}


def device(name, *exposes, kind="EndDevice", **more):
    definition = {"vendor": "Acme", "model": "X1", "description": "a test device",
                  "exposes": list(exposes)}
    return {"friendly_name": name, "type": kind, "supported": True, "definition": definition,
            **more}


SYNTHETIC = [
    {"friendly_name": "Coordinator", "type": "Coordinator", "definition": None,
     "supported": False},
    {"friendly_name": "0x00158d0001", "type": "EndDevice", "definition": None,
     "supported": False},
    device("Hall lock", feature("binary", "state", 3, value_on="LOCK", value_off="UNLOCK"),
           feature("binary", "tamper", value_on=True, value_off=False),
           feature("binary", "closed", value_on=False, value_off=True),
           feature("binary", "alarm", value_on="on", value_off="off"),
           feature("text", "message"),
           feature("enum", "mode", values=["auto", "manual", 3]),
           feature("numeric", "count", value_step=1, value_min=0),
           feature("numeric", "level", value_step=0.5, unit="%"),
           feature("numeric", "battery", unit="%", value_min=0, value_max=100),
           feature("numeric", "target", 2),
           feature("list", "schedule"),
           feature("numeric", "null"), feature("numeric", "state-left"),
           feature("numeric", "2nd"), feature("numeric", "a.b")),
    device("Küche 'Licht' \\ oben",
           {"type": "light", "features": [
               feature("binary", "state", 7, value_on="ON", value_off="OFF"),
               {"type": "composite", "name": "color_xy", "property": "color", "access": 7,
                "features": [feature("numeric", "x", 7), feature("numeric", "y", 7)]},
               {"type": "composite", "name": "color_hs", "property": "color", "access": 7,
                "features": [feature("numeric", "hue", 7), feature("numeric", "saturation",
                                                                    7)]}]},
           feature("numeric", "color_x"), kind="Router"),
    device("kitchen/ceiling", feature("binary", "occupancy", value_on=True, value_off=False)),
    device("Timer", feature("numeric", "left")),
    device("3D printer", feature("numeric", "progress")),
    device("Light 1", feature("numeric", "linkquality")),
    device("Light-1", feature("numeric", "linkquality")),
    device("set only", feature("enum", "effect", 2, values=["blink"])),
    device("bad {name}", feature("numeric", "linkquality")),
    device("no exposes"),
]


def test_names_types_and_escapes(tmp_path, capsys):
    out, err = import_list(capsys, tmp_path, SYNTHETIC)
    assert err.strip().endswith(": 12 devices, 7 event types, 5 skipped")
    text = out.read_text()
    types = declarations(text)
    assert types["HallLock"] == (
        "HallLock (state STRING, tamper BOOL, closed BOOL, alarm BOOL, message STRING, "
        "mode STRING, count INT, level FLOAT, battery FLOAT, null_ FLOAT, state_left FLOAT, "
        "_2nd FLOAT ) FROM TOPIC 'zigbee2mqtt/Hall lock' "
        "PAYLOAD (null_ = 'null', state_left = 'state-left', _2nd = '2nd')")
    assert comment(text, "state") == "on: LOCK, off: UNLOCK"
    assert comment(text, "tamper") == comment(text, "closed") == ""
    assert comment(text, "alarm") == "on = true, off = false"
    assert comment(text, "mode") == "one of auto, manual, 3"
    assert comment(text, "count") == "0..; step 1"
    assert comment(text, "level") == "%; step 0.5"
    assert comment(text, "battery") == "%; 0..100"
    assert "not published (set or get only), not declared: target" in text
    assert "not declared: schedule (a list, which cannot be an attribute); a.b (a key with " \
           "a dot, which no path reads)" in text
    # a composite's parts read by path; a clashing top-level key gets a suffix
    assert types["KucheLichtOben"] == (
        "KucheLichtOben (state BOOL, color_x FLOAT, color_y FLOAT, color_hue FLOAT, "
        "color_saturation FLOAT, color_x_2 FLOAT ) "
        "FROM TOPIC 'zigbee2mqtt/Küche \\'Licht\\' \\\\ oben' "
        "PAYLOAD (color_x = 'color.x', color_y = 'color.y', color_hue = 'color.hue', "
        "color_saturation = 'color.saturation', color_x_2 = 'color_x')")
    assert types["KitchenCeiling"].endswith("FROM TOPIC 'zigbee2mqtt/kitchen/ceiling'")
    assert "TimerDevice" in types and "Device3DPrinter" in types
    assert "Light1" in types and "Light1_2" in types
    for skipped in ("-- Coordinator (Coordinator)\n--   skipped: the coordinator",
                    "-- 0x00158d0001 (EndDevice)\n--   skipped: no definition (not supported",
                    "--   not published (set or get only), not declared: effect\n"
                    "--   skipped: it publishes no property cep can declare",
                    "--   skipped: its friendly name holds `{` or `}`",
                    "--   skipped: its definition exposes no properties"):
        assert skipped in text
    assert len(check_clean(capsys, out)) == 7

    readers = tmp_path / "read.epl"
    readers.write_text("@name('lock') SELECT * FROM HallLock WHERE null_ IS NOT NULL OR "
                       "tamper;\n@name('light') SELECT * FROM KucheLichtOben;\n"
                       "@name('ceiling') SELECT occupancy FROM KitchenCeiling;\n")
    check_clean(capsys, out, readers)
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        trace_line("2026-01-05T07:00:00Z", "zigbee2mqtt/Hall lock",
                   {"state": "LOCK", "tamper": True, "closed": False, "alarm": "off",
                    "message": "hi", "mode": 3, "count": 4, "null": 1.5, "state-left": 2,
                    "2nd": 7, "linkquality": 90})
        + trace_line("2026-01-05T07:00:01Z", "zigbee2mqtt/Küche 'Licht' \\ oben",
                     {"state": "ON", "color": {"x": 0.3, "y": 0.4, "hue": 20,
                                               "saturation": 90}, "color_x": 5})
        + trace_line("2026-01-05T07:00:02Z", "zigbee2mqtt/kitchen/ceiling",
                     {"occupancy": True})
        + trace_line("2026-01-05T07:00:03Z", "zigbee2mqtt/kitchen/ceiling/availability",
                     "online"))
    lines, summary = replay(capsys, trace, out, readers)
    assert counts(summary) == {"event": 3, "bad message": 0, "unmatched": 1}, summary
    assert [(line["rule"], line["attrs"]) for line in lines] == [
        ("lock", {"state": "LOCK", "tamper": True, "closed": False, "alarm": False,
                  "message": "hi", "mode": "3", "count": 4, "null_": 1.5, "state_left": 2.0,
                  "_2nd": 7.0}),
        ("light", {"state": True, "color_x": 0.3, "color_y": 0.4, "color_hue": 20.0,
                   "color_saturation": 90.0, "color_x_2": 5.0}),
        ("ceiling", {"occupancy": True})]


def test_base_topic_and_stdout(tmp_path, capsys):
    source = tmp_path / "devices.json"
    source.write_text(json.dumps([device("Plug", feature("numeric", "power", unit="W"))]))
    status, out, err = run(capsys, "import", "zigbee2mqtt", source, "--base-topic", "z2m/home")
    assert status == 0, err
    assert "FROM TOPIC 'z2m/home/Plug';" in out
    assert out.startswith("-- zigbee2mqtt devices, from ")


# ---------------------------------------------------------------- damaged lists, usage

DAMAGED = [
    ("[{\"friendly_name\": \"a\",", "not JSON (Expecting"),
    ("", "empty, not a device list"),
    ('{"0": {"friendly_name": "a"}}', "a JSON object, not an array"),
    ('[{"type": "Router"}]', "device 1 has no friendly_name"),
    ('[{"friendly_name": "a"}, 3]', "device 2 is a JSON number, not an object"),
    ('[{"friendly_name": 7}]', "device 1: friendly_name is 7, not a name"),
    ('[{"friendly_name": "a"}, {"friendly_name": "a"}]',
     "device 2 ('a'): a second device with this friendly_name"),
    ('[{"friendly_name": "a", "definition": {"exposes": {}}}]',
     "device 1 ('a'): definition.exposes is a JSON object, not an array"),
    ('[{"friendly_name": "a", "definition": []}]',
     "device 1 ('a'): definition is a JSON array, not an object or null"),
]


@pytest.mark.parametrize("text,message", DAMAGED, ids=[m for _, m in DAMAGED])
def test_a_damaged_list_is_refused_and_nothing_is_written(text, message, tmp_path, capsys):
    source, out = tmp_path / "devices.json", tmp_path / "devices.epl"
    source.write_text(text)
    status, stdout, err = run(capsys, "import", "zigbee2mqtt", source, "--out", out)
    assert status == 1
    assert stdout == "" and not out.exists()
    assert err.startswith(f"cep: error: {source}: {message}"), err
    assert err.rstrip().endswith("nothing written")
    out.write_text("old\n")
    assert run(capsys, "import", "zigbee2mqtt", source, "--out", out)[0] == 1
    assert out.read_text() == "old\n"


@pytest.mark.parametrize("args,message", [
    (["zigbee2mqtt"], "zigbee2mqtt reads a FILE or --broker URL (one of them)"),
    (["zigbee2mqtt", __file__, "--broker", "mqtt://localhost"], "(one of them)"),
    (["zigbee2mqtt", "/nonexistent.json"], "cannot read /nonexistent.json"),
    (["zigbee2mqtt", __file__, "--tz", "UTC"], "--tz is not for zigbee2mqtt"),
    (["zigbee2mqtt", __file__, "--base-topic", "z2m/#"], "must be a plain topic"),
    (["zigbee2mqtt", __file__, "--timeout", "3"], "--timeout is for --broker"),
    (["zigbee2mqtt", "--broker", "http://x"], "the scheme must be mqtt:// or mqtts://"),
    (["casas", __file__, "--broker", "mqtt://localhost"], "--broker is for zigbee2mqtt only"),
    (["casas"], "casas needs a FILE"),
])
def test_usage_problems_exit_2(args, message, capsys):
    status, _, err = run(capsys, "import", *args)
    assert status == 2
    assert message in err


# ---------------------------------------------------------------- from a broker

BROKER_LIST = [device("Hall sensor, left", feature("binary", "occupancy", value_on=True,
                                                    value_off=False)),
               {"friendly_name": "Coordinator", "type": "Coordinator", "definition": None}]


def test_the_retained_list_is_read_from_the_broker(broker, tmp_path, capsys):
    from tests.broker import BusClient

    client = BusClient(broker, topics=("nothing/here",))
    try:
        client.publish("zigbee2mqtt/bridge/devices", json.dumps(BROKER_LIST), retain=True)
        client.publish("z2m/bridge/devices", json.dumps(BROKER_LIST[:1]), retain=True)
    finally:
        client.close()
    out = tmp_path / "devices.epl"
    status, _, err = run(capsys, "import", "zigbee2mqtt", "--broker", broker.url, "--out", out)
    assert status == 0, err
    assert err.strip() == (f"zigbee2mqtt/bridge/devices on {broker.url}: 2 devices, "
                           "1 event type, 1 skipped")
    text = out.read_text()
    assert declarations(text) == {"HallSensorLeft": "HallSensorLeft (occupancy BOOL ) "
                                  "FROM TOPIC 'zigbee2mqtt/Hall sensor, left'"}
    assert len(check_clean(capsys, out)) == 1
    status, stdout, err = run(capsys, "import", "zigbee2mqtt", "--broker", broker.url,
                              "--base-topic", "z2m")
    assert status == 0, err
    assert "FROM TOPIC 'z2m/Hall sensor, left';" in stdout


def test_no_retained_list_is_a_clear_error(broker, tmp_path, capsys):
    out = tmp_path / "devices.epl"
    status, _, err = run(capsys, "import", "zigbee2mqtt", "--broker", broker.url,
                         "--base-topic", "elsewhere", "--timeout", "0.5", "--out", out)
    assert status == 1
    assert (f"cep: error: no message on elsewhere/bridge/devices from {broker.url} within "
            "0.5 s: is zigbee2mqtt running") in err
    assert not out.exists()


def test_a_damaged_retained_list_is_refused(broker, tmp_path, capsys):
    from tests.broker import BusClient

    client = BusClient(broker, topics=("nothing/here",))
    try:
        client.publish("zigbee2mqtt/bridge/devices", '{"not": "a list"}', retain=True)
    finally:
        client.close()
    status, _, err = run(capsys, "import", "zigbee2mqtt", "--broker", broker.url)
    assert status == 1
    assert (f"cep: error: zigbee2mqtt/bridge/devices on {broker.url}: a JSON object, not an "
            "array") in err


def test_no_broker_is_a_clear_error(tmp_path, capsys):
    from tests.broker import free_port

    status, _, err = run(capsys, "import", "zigbee2mqtt", "--broker",
                         f"mqtt://127.0.0.1:{free_port()}", "--timeout", "5")
    assert status == 1
    assert "cep: error: cannot connect to mqtt://127.0.0.1:" in err
