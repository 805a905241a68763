"""zigbee2mqtt's device list as a rule file: one `CREATE EVENT` per device.

zigbee2mqtt publishes its device list, retained, on `<base>/bridge/devices`: a JSON array
of devices, each with its `friendly_name`, its `type` (Coordinator, Router, EndDevice) and,
for a supported device, a `definition` whose `exposes` list the properties the device
has. Each device publishes its state as a JSON object on `<base>/<friendly name>`, one key
per property. `device_rules` turns the list into declarations that read those messages:

- the type name is the friendly name in CamelCase (ASCII letters and digits), made unique;
- one attribute per property that the device publishes (the `access` bit 1), features of
  lights, switches and the like flattened, a composite's parts (`color.x`) read by path;
- binary → BOOL when its two values are booleans or words cep reads as booleans
  (`ON`/`OFF`), else STRING; numeric → INT when a whole-number `value_step` says so, else
  FLOAT; enum and text → STRING. Units, ranges and values go into comments.

The coordinator and devices without a definition (unsupported, not interviewed) have no
state to declare and are left out with a comment. See docs/datasets.md.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cep.runtime.convert import to_bool

if TYPE_CHECKING:
    from cep.adapters.mqtt import BrokerSettings  # paho loads only for --broker

BASE_TOPIC = "zigbee2mqtt"
FETCH_TIMEOUT = 10.0  # seconds to wait for the retained device list

# Words that cannot name an event type (keywords are case-insensitive; a pattern takes
# `every`, `not`, `timer`, ... as keywords wherever they stand): every keyword of
# grammar/cep.lark, so that a name works in every place a type name goes.
_KEYWORDS = frozenset("""
    set timezone create event from topic payload as timestamp located at geo in entity
    location area circle radius context start end on initiated terminated by duration
    policy partition within of and or not insert into select where pattern publish qos
    retain every until timer interval between like is null true false window group having
    output first last snapshot case when then else for sunrise sunset dawn dusk
""".split())
# Words that an attribute cannot be called: where an expression starts, these are keywords
# (`true`, `null`, `CASE WHEN`, `context.x`, `(SELECT ...)`), or operators.
_ATTR_RESERVED = frozenset("""
    true false null not case context select and or in is like between when then else
""".split())

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class DeviceListError(ValueError):
    """No usable device list: it is not one zigbee2mqtt would publish, or none came from
    the broker. What is wrong, in words."""


class BrokerUsageError(ValueError):
    """A broker URL or option that cannot work (bad usage)."""


def base_topic_problem(base: str) -> str | None:
    """Why `base` cannot be zigbee2mqtt's base topic (None when it can)."""
    if not base or any(c in base for c in "+#{}\0") or base.startswith("/") \
            or base.endswith("/"):
        return (f"--base-topic {base!r} must be a plain topic (no wildcards, braces or "
                "leading or trailing /)")
    return None


@dataclass
class Attribute:
    name: str
    type: str
    path: str      # the key (or dotted path) in the state message
    comment: str


@dataclass
class Device:
    friendly_name: str
    kind: str                           # Coordinator, Router, EndDevice, ...
    about: str                          # vendor, model and description, when known
    type_name: str = ""
    attributes: list[Attribute] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None          # why no event type is declared


# ---------------------------------------------------------------- reading the list

def parse_device_list(data: bytes | str, source: str) -> list[dict[str, Any]]:
    """The devices of a `bridge/devices` message; DeviceListError says what is wrong."""
    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DeviceListError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    if not data.strip():
        raise DeviceListError(f"{source}: empty, not a device list")
    try:
        devices = json.loads(data)
    except json.JSONDecodeError as exc:
        raise DeviceListError(f"{source}: not JSON ({exc.msg} at line {exc.lineno} column "
                              f"{exc.colno}); expected zigbee2mqtt's device list, the JSON "
                              "array of the bridge/devices message") from None
    except RecursionError:
        raise DeviceListError(f"{source}: JSON nested too deeply to be a device list") from None
    if not isinstance(devices, list):
        raise DeviceListError(f"{source}: a JSON {_json_kind(devices)}, not an array; expected "
                              "zigbee2mqtt's device list, the JSON array of the "
                              "bridge/devices message")
    names: set[str] = set()
    for number, device in enumerate(devices, 1):
        where = f"{source}: device {number}"
        if not isinstance(device, dict):
            raise DeviceListError(f"{where} is a JSON {_json_kind(device)}, not an object")
        name = device.get("friendly_name")
        if name is None:
            raise DeviceListError(f"{where} has no friendly_name")
        if not isinstance(name, str) or not name.strip():
            raise DeviceListError(f"{where}: friendly_name is {json.dumps(name)}, not a name")
        where = f"{source}: device {number} ({name!r})"
        if name in names:
            raise DeviceListError(f"{where}: a second device with this friendly_name")
        names.add(name)
        definition = device.get("definition")
        if definition is not None:
            if not isinstance(definition, dict):
                raise DeviceListError(f"{where}: definition is a JSON "
                                      f"{_json_kind(definition)}, not an object or null")
            exposes = definition.get("exposes")
            if exposes is not None:
                _check_features(exposes, f"{where}: definition.exposes")
    return devices


def _check_features(features: Any, where: str) -> None:
    if not isinstance(features, list):
        raise DeviceListError(f"{where} is a JSON {_json_kind(features)}, not an array")
    for index, feature in enumerate(features):
        if not isinstance(feature, dict):
            raise DeviceListError(f"{where}[{index}] is a JSON {_json_kind(feature)}, "
                                  "not an object")
        if "features" in feature:
            _check_features(feature["features"], f"{where}[{index}].features")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "number"


# ---------------------------------------------------------------- devices → declarations

def describe_devices(devices: list[dict[str, Any]]) -> list[Device]:
    """Each device with its event type name and attributes, or why it is left out."""
    described: list[Device] = []
    taken: set[str] = set()
    for raw in devices:
        device = _device(raw)
        if device.skipped is None:
            device.type_name = _unique(_type_name(device.friendly_name), taken)
        described.append(device)
    return described


def _device(raw: dict[str, Any]) -> Device:
    definition = raw.get("definition")
    about = ""
    if isinstance(definition, dict):
        about = ", ".join(str(definition[key]) for key in ("vendor", "model", "description")
                          if definition.get(key))
    kind = str(raw.get("type") or "device")
    device = Device(raw["friendly_name"], kind, about)
    if kind == "Coordinator":
        device.skipped = "the coordinator (the zigbee adapter) has no state of its own"
    elif not isinstance(definition, dict):
        why = "not supported by zigbee2mqtt" if raw.get("supported") is False \
            else "not interviewed yet" if raw.get("interview_completed") is False \
            else "unknown to zigbee2mqtt"
        device.skipped = f"no definition ({why}), so no properties to declare"
    elif not definition.get("exposes"):
        device.skipped = "its definition exposes no properties"
    if device.skipped is not None or not isinstance(definition, dict):
        return device
    problem = _topic_problem(device.friendly_name)
    if problem is not None:
        device.skipped = problem
        return device
    unpublished: list[str] = []
    unusable: list[str] = []
    paths: set[str] = set()
    names: set[str] = set()
    for leaf, path, access in _leaves(definition["exposes"], (), None):
        shown = ".".join(path)
        if not access & 1:
            if shown not in unpublished:
                unpublished.append(shown)
            continue
        if shown in paths:
            continue  # another feature of the same key (`illuminance` and `illuminance_lux`)
        typed = _attribute_type(leaf)
        if isinstance(typed, str) or any("." in step or not step for step in path):
            why = typed if isinstance(typed, str) else "a key with a dot, which no path reads"
            unusable.append(f"{shown} ({why})")
            paths.add(shown)
            continue
        paths.add(shown)
        attr_type, comment = typed
        name = _unique(_attr_name("_".join(path)), names)
        device.attributes.append(Attribute(name, attr_type, shown, comment))
    if unpublished:
        device.notes.append("not published (set or get only), not declared: "
                            + ", ".join(unpublished))
    if unusable:
        device.notes.append("not declared: " + "; ".join(unusable))
    if not device.attributes:
        device.skipped = "it publishes no property cep can declare"
    return device


def _leaves(features: list[dict[str, Any]], prefix: tuple[str, ...],
            inherited: int | None) -> list[tuple[dict[str, Any], tuple[str, ...], int]]:
    """(feature, payload path, access) of each property, nested features flattened: a
    composite with a `property` (`color`) nests its parts under that key; the specific
    types (light, switch, cover, ...) have none and their features are top-level keys."""
    found: list[tuple[dict[str, Any], tuple[str, ...], int]] = []
    for feature in features:
        access = feature.get("access")
        if not isinstance(access, int) or isinstance(access, bool):
            access = inherited if inherited is not None else 0
        prop = feature.get("property")
        nested = feature.get("features")
        if isinstance(nested, list) and feature.get("type") != "list":
            inner = (*prefix, str(prop)) if isinstance(prop, str) and prop else prefix
            found.extend(_leaves(nested, inner, access))
        elif isinstance(prop, str) and prop:
            found.append((feature, (*prefix, prop), access))
    return found


def _attribute_type(feature: dict[str, Any]) -> tuple[str, str] | str:
    """(cep type, comment) for a feature, or why it cannot be an attribute."""
    kind = feature.get("type")
    notes: list[str] = []
    if kind == "binary":
        on, off = feature.get("value_on"), feature.get("value_off")
        try:
            as_bool = (to_bool(on), to_bool(off))
        except (TypeError, ValueError):
            as_bool = None
        if as_bool is not None and as_bool[0] != as_bool[1]:
            result = "BOOL"
            if not (isinstance(on, bool) and isinstance(off, bool)):
                true, false = (on, off) if as_bool[0] else (off, on)
                notes.append(f"{_value(true)} = true, {_value(false)} = false")
        else:
            result = "STRING"
            notes.append(f"on: {_value(on)}, off: {_value(off)}")
    elif kind == "numeric":
        step, low, high = (feature.get(key) for key in ("value_step", "value_min", "value_max"))
        result = "INT" if _whole(step) and (low is None or _whole(low)) else "FLOAT"
        if isinstance(feature.get("unit"), str) and feature["unit"]:
            notes.append(feature["unit"])
        if _number(low) or _number(high):
            notes.append(f"{_shown(low) if _number(low) else ''}.."
                         f"{_shown(high) if _number(high) else ''}")
        if _number(step):
            notes.append(f"step {_shown(step)}")
    elif kind == "enum":
        result = "STRING"
        values = feature.get("values")
        if isinstance(values, list) and values:
            notes.append("one of " + ", ".join(map(_value, values)))
    elif kind == "text":
        result = "STRING"
    elif kind == "list":
        return "a list, which cannot be an attribute"
    else:
        return f"a feature of type {json.dumps(kind)}, unknown to this importer"
    description = feature.get("description")
    if isinstance(description, str) and description.strip():
        notes.append(description.strip())
    return result, _comment("; ".join(notes))


def _value(value: Any) -> str:
    """A value from the device list as a comment shows it: text as it is, else JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return _number(value) and float(value).is_integer()


def _shown(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _topic_problem(name: str) -> str | None:
    """Why `<base>/<name>` cannot be a topic template that matches only this device."""
    if any(ch in name for ch in "{}"):
        return "its friendly name holds `{` or `}`, which a topic template reads as a " \
               "placeholder"
    if "+" in name or "#" in name:
        return "its friendly name holds `+` or `#`, MQTT wildcards"
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return "its friendly name holds a control character"
    return None


# ---------------------------------------------------------------- names

def _type_name(friendly_name: str) -> str:
    """`Living Room temperature, humidity and pressure sensor` →
    `LivingRoomTemperatureHumidityAndPressureSensor`; `Light 1` → `Light1`."""
    ascii_text = unicodedata.normalize("NFKD", friendly_name).encode("ascii", "ignore").decode()
    words = re.findall(r"[A-Za-z0-9]+", ascii_text)
    name = "".join(word[0].upper() + word[1:] for word in words)
    if not name or name[0].isdigit():
        name = "Device" + name
    if name.lower() in _KEYWORDS:
        name += "Device"
    return name


def _attr_name(key: str) -> str:
    """A property key as an attribute name: other characters as `_`, never a keyword."""
    ascii_text = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_]+", "_", ascii_text).strip("_") or "value"
    if name[0].isdigit():
        name = "_" + name
    if name.lower() in _ATTR_RESERVED:
        name += "_"
    return name


def _unique(name: str, taken: set[str], sep: str = "_") -> str:
    """`name`, or `name_2`, `name_3`, ... if taken (in any case: `Light1` and `light1`
    would be two names a reader cannot tell apart)."""
    candidate, number = name, 1
    while candidate.lower() in taken:
        number += 1
        candidate = f"{name}{sep}{number}"
    taken.add(candidate.lower())
    return candidate


# ---------------------------------------------------------------- writing

def _comment(text: str) -> str:
    """Text for a `--` comment: on one line, printable."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def _quoted(text: str) -> str:
    """`text` as a single-quoted rule-language string."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def device_rules(devices: list[dict[str, Any]], source: str,
                 base_topic: str = BASE_TOPIC) -> tuple[str, str]:
    """The rule file for a checked device list, and a summary line of what it holds."""
    text, described = _render(devices, source, base_topic)
    declared = sum(1 for device in described if device.skipped is None)
    summary = (f"{source}: {len(described)} device{'s' if len(described) != 1 else ''}, "
               f"{declared} event type{'s' if declared != 1 else ''}, "
               f"{len(described) - declared} skipped")
    return text, summary


def _render(devices: list[dict[str, Any]], source: str,
            base_topic: str) -> tuple[str, list[Device]]:
    described = describe_devices(devices)
    declared = [d for d in described if d.skipped is None]
    lines = [
        f"-- zigbee2mqtt devices, from {_comment(source)}: {len(declared)} event "
        f"type{'s' if len(declared) != 1 else ''} for {len(described)} "
        f"device{'s' if len(described) != 1 else ''}.",
        "-- Written by `cep import zigbee2mqtt`; write it again when devices are added or "
        "renamed.",
        f"-- Each type reads one device's state messages on {base_topic}/<friendly name>: "
        "one",
        "-- attribute per property the device publishes, from the key of the same name (a",
        "-- PAYLOAD path where the name had to change). A message carries only some keys;",
        "-- the others are null in that event.",
        "-- Types: binary properties are BOOL when zigbee2mqtt's two values read as true",
        "-- and false (true/false, ON/OFF), else STRING; numbers are INT only when the",
        "-- device says they come in whole steps, else FLOAT; enums and text are STRING.",
        "-- `cep check` on this file alone warns once per type that no rule reads it: that",
        "-- is expected; checked with your rules, only the devices they do not read remain.",
    ]
    for device in described:
        lines.append("")
        heading = f"-- {_comment(device.friendly_name)} ({_comment(device.kind)}"
        heading += f": {_comment(device.about)})" if device.about else ")"
        lines.append(heading)
        lines.extend(f"--   {_comment(note)}" for note in device.notes)
        if device.skipped is not None:
            lines.append(f"--   skipped: {device.skipped}")
            continue
        lines.append(f"CREATE EVENT {device.type_name} (")
        width = max(len(f"{a.name} {a.type},") for a in device.attributes)
        for index, attr in enumerate(device.attributes):
            text = f"{attr.name} {attr.type}" + ("," if index < len(device.attributes) - 1
                                                 else "")
            lines.append(f"    {text:<{width}}  -- {attr.comment}" if attr.comment
                         else f"    {text}")
        topic = f"{base_topic}/{device.friendly_name}"
        clause = f") FROM TOPIC {_quoted(topic)}"
        renamed = [a for a in device.attributes if a.name != a.path]
        if renamed:
            paths = [f"{a.name} = {_quoted(a.path)}" for a in renamed]
            lines.append(clause)
            if len(", ".join(paths)) <= 80:
                lines.append(f"    PAYLOAD ({', '.join(paths)});")
            else:
                lines.append("    PAYLOAD (")
                lines.extend(f"        {path}," for path in paths[:-1])
                lines.append(f"        {paths[-1]});")
        else:
            lines.append(clause + ";")
    return "\n".join(lines) + "\n", described


# ---------------------------------------------------------------- from a broker

def read_from_broker(url: str, base_topic: str, timeout: float) -> tuple[bytes, str]:
    """The retained `<base>/bridge/devices` payload from the broker at `url`, and where it
    came from in words. BrokerUsageError for a URL that cannot work; DeviceListError when
    the broker cannot be reached or no list comes within `timeout` seconds."""
    from cep.adapters.mqtt import BrokerSettings, SettingsError, describe_error

    try:
        settings = BrokerSettings.from_url(url, status_topic=None, connect_timeout=timeout,
                                           default_client_id="cep-import")
    except SettingsError as exc:
        raise BrokerUsageError(str(exc)) from None
    topic = f"{base_topic}/bridge/devices"
    payload = fetch_device_list(settings, topic, timeout,
                                lambda exc: describe_error(exc, timeout))
    return payload, f"{topic} on {settings.display}"


def fetch_device_list(settings: BrokerSettings, topic: str, timeout: float,
                      describe_error: Callable[[BaseException], str]) -> bytes:
    """The payload of the (retained) message on `topic`; DeviceListError if none comes
    within `timeout` seconds or the broker cannot be reached."""
    import ssl

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    got = threading.Event()
    result: dict[str, Any] = {}
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                         protocol=paho.MQTTv311)
    client.connect_timeout = timeout
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        client.tls_set(ca_certs=settings.ca_file, certfile=settings.cert_file,
                       keyfile=settings.key_file, cert_reqs=ssl.CERT_REQUIRED)
        if settings.insecure:
            client.tls_insecure_set(True)

    def connected(c: paho.Client, userdata: object, flags: object, reason: Any,
                  properties: object) -> None:
        if reason.is_failure:
            result["error"] = f"the broker refused the connection ({reason})"
            got.set()
        else:
            c.subscribe(topic, qos=1)

    def received(c: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        if message.topic == topic and "payload" not in result:
            result["payload"] = bytes(message.payload)
            got.set()

    client.on_connect = connected
    client.on_message = received
    shown = settings.display
    try:
        client.connect(settings.host, settings.port, keepalive=max(int(timeout) * 2, 10))
    except (OSError, ValueError) as exc:
        raise DeviceListError(f"cannot connect to {shown}: {describe_error(exc)}") from None
    client.loop_start()
    try:
        got.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    if "error" in result:
        raise DeviceListError(f"{shown}: {result['error']}")
    if "payload" not in result:
        raise DeviceListError(f"no message on {topic} from {shown} within {timeout:g} s: is "
                              "zigbee2mqtt running and connected to this broker, with this "
                              "base topic (--base-topic)?")
    payload: bytes = result["payload"]
    return payload
