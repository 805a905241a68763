"""Home Assistant MQTT discovery for `cep run --ha-discovery [PREFIX]` (see docs/live.md).

One Home Assistant device per cep instance (its identifiers from the client id), whose
entities are announced with retained configurations under
`<prefix>/<component>/<node>/<object>/config` (`<node>`: the client id with every
character outside [a-zA-Z0-9_-] made `_`):

- each context: a `binary_sensor`, ON while an instance is open; a keyed context
  (PARTITION BY, keyed intervals): one per key, announced when the key first appears;
- each rule: a device trigger (`device_automation`, type `fired`, subtype the rule's
  name) on `cep/<node>/rule/<rule>/fired`, which gets the rule's result as JSON at
  each firing, and a `sensor` (device class timestamp) holding the last firing time,
  the result as its attributes.

Availability is the retained status topic (`cep/status`: online / offline, the last
will). What was announced is kept in cep's own retained topic `cep/<node>/discovery`
(a JSON object: `run`, a token of this run, and `entities`, each with its config topic
and its retained state topics). cep subscribes to it: the retained copy the broker
delivers on subscribing is the previous run's list, and every entity in it that this
rule set no longer has is removed (an empty retained config, its state topics
cleared). Keys of a context that is still there are announced again. paho sends the
SUBSCRIBE of a connection before the messages queued for it, so the previous list
arrives before this run's own; the run token tells the two apart.

The records come from the engine through the runner's sink (context-start/end lines
included, which the runner then withholds from the output unless `--contexts`).
Everything here runs on the engine thread; messages go straight to paho's queue at
QoS 1 (paho's publish is thread-safe), apart from the actions' accounting.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from cep import __version__
from cep.adapters.jsonlib import dumps_compact, loads
from cep.adapters.mqtt import ReceivedMessage, publish_problem, topic_problem
from cep.language import ast
from cep.language.catalog import Catalog
from cep.runtime.output import Output, format_ts

__all__ = ["DEFAULT_PREFIX", "HaDiscovery", "prefix_problem", "safe_id"]

DEFAULT_PREFIX = "homeassistant"
SUPPORT_URL: str | None = None  # the project publishes none yet; sent in `origin` when set
QOS = 1

Send = Callable[[str, bytes, bool], None]  # topic, payload, retain

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def safe_id(text: str) -> str:
    """`text` as an MQTT discovery id ([a-zA-Z0-9_-]): itself when it already is one, else
    with every other character as `_` and a short hash of the original (stable, and two
    names that differ only there stay apart)."""
    cleaned = _UNSAFE.sub("_", text)
    if cleaned == text and text:
        return text
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{cleaned}_{digest}"


def prefix_problem(prefix: str) -> str | None:
    """Why `prefix` cannot be a discovery prefix (None when it can)."""
    problem = topic_problem(prefix)
    if problem is not None:
        return problem
    if prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        return "a prefix has no empty level (no leading, trailing or double /)"
    return None


def key_text(key: Any) -> str:
    """A partition key as people read it: `kitchen`, `kitchen 2` for a composite key."""
    if isinstance(key, list | tuple):
        return " ".join(key_text(part) for part in key)
    if isinstance(key, str):
        return key
    return dumps_compact(key).decode("utf-8")


def _keyed(spec: object) -> bool:
    """Whether a context's instances carry keys (one entity per key)."""
    if isinstance(spec, ast.Partition):
        return True
    return isinstance(spec, ast.EventInterval) and bool(spec.keys)


class HaDiscovery:
    """The discovery configurations and states of one run; see the module docstring."""

    def __init__(self, catalog: Catalog, client_id: str, status_topic: str | None,
                 send: Send, tz: tzinfo, prefix: str = DEFAULT_PREFIX,
                 run: str | None = None) -> None:
        self.prefix = prefix
        self.node = safe_id(client_id)
        self.base = f"cep/{self.node}"
        self.topic = f"{self.base}/discovery"   # cep's own list of what it announced
        self.tz = tz
        self._send = send
        self.run = run or f"{time.time_ns():x}-{os.getpid()}"
        self.device = {"identifiers": [f"cep_{self.node}"], "name": f"cep {client_id}",
                       "manufacturer": "cep", "model": "complex event processing engine",
                       "sw_version": __version__}
        self.origin: dict[str, str] = {"name": "cep", "sw_version": __version__}
        if SUPPORT_URL:
            self.origin["support_url"] = SUPPORT_URL
        self.availability: dict[str, str] = {}
        if status_topic:
            self.availability = {"availability_topic": status_topic,
                                 "payload_available": "online",
                                 "payload_not_available": "offline"}
        self.contexts = {name: _keyed(info.spec) for name, info in catalog.contexts.items()}
        self.rules = [info.name for info in catalog.rules]
        self._rule_ids = {name: safe_id(name) for name in self.rules}
        # (context, key as text or None) → open instances; announced entities by config topic
        self.open: dict[tuple[str, str | None], int] = {}
        self.keys: dict[tuple[str, str | None], Any] = {}
        self.entities: dict[str, dict[str, Any]] = {}
        self.started = False
        self.previous_seen = False
        self.cleared: list[str] = []  # config topics removed at this start

    # ------------------------------------------------------------------ topics
    def _context_ids(self, context: str, key: Any) -> tuple[str, str, str]:
        """(config topic, state topic, unique id) of a context's entity (per key)."""
        cid = safe_id(context)
        if key is None:
            object_id, path = f"context_{cid}", f"{self.base}/context/{cid}/state"
        else:
            kid = safe_id(key_text(key))
            object_id, path = f"context_{cid}__{kid}", f"{self.base}/context/{cid}/{kid}/state"
        return (f"{self.prefix}/binary_sensor/{self.node}/{object_id}/config", path,
                f"cep_{self.node}_{object_id}")

    def rule_topics(self, rule: str) -> dict[str, str]:
        rid = self._rule_ids.get(rule) or safe_id(rule)
        base = f"{self.base}/rule/{rid}"
        return {"trigger": f"{self.prefix}/device_automation/{self.node}/rule_{rid}_fired/config",
                "sensor": f"{self.prefix}/sensor/{self.node}/rule_{rid}_last_fired/config",
                "fired": f"{base}/fired", "last": f"{base}/last_fired",
                "attributes": f"{base}/attributes", "unique_id": f"cep_{self.node}_rule_{rid}"}

    def context_state_topic(self, context: str, key: Any = None) -> str:
        return self._context_ids(context, key)[1]

    # ------------------------------------------------------------------ publishing
    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        if publish_problem(topic, payload, QOS) is None:
            self._send(topic, payload, retain)

    def _config(self, topic: str, config: dict[str, Any], entry: dict[str, Any]) -> None:
        self._publish(topic, dumps_compact(config), True)
        self.entities[topic] = entry

    def _announce_context(self, context: str, key: Any) -> None:
        config_topic, state_topic, unique_id = self._context_ids(context, key)
        if config_topic in self.entities:
            return
        name = context if key is None else f"{context} {key_text(key)}"
        self._config(config_topic, {
            "name": name, "unique_id": unique_id, "state_topic": state_topic,
            "payload_on": "ON", "payload_off": "OFF", "qos": QOS, **self.availability,
            "device": self.device, "origin": self.origin,
        }, {"config": config_topic, "retained": [state_topic], "context": context, "key": key})

    def _announce_rule(self, rule: str) -> None:
        t = self.rule_topics(rule)
        self._config(t["trigger"], {
            "automation_type": "trigger", "topic": t["fired"], "type": "fired",
            "subtype": rule, "qos": QOS, "device": self.device, "origin": self.origin,
        }, {"config": t["trigger"], "retained": [], "rule": rule})
        self._config(t["sensor"], {
            "name": f"{rule} last fired", "unique_id": f"{t['unique_id']}_last_fired",
            "device_class": "timestamp", "state_topic": t["last"],
            "json_attributes_topic": t["attributes"], "qos": QOS, **self.availability,
            "device": self.device, "origin": self.origin,
        }, {"config": t["sensor"], "retained": [t["last"], t["attributes"]], "rule": rule})

    def _state(self, context: str, key: Any) -> None:
        count = self.open.get((context, _text_or_none(key)), 0)
        self._publish(self.context_state_topic(context, key), b"ON" if count else b"OFF",
                      True)

    def _publish_list(self) -> None:
        self._publish(self.topic, dumps_compact({"run": self.run,
                                                 "entities": list(self.entities.values())}),
                      True)

    # ------------------------------------------------------------------ the run
    def start(self) -> None:
        """Announce every entity known now and its state (after the engine's start, whose
        records have been taken), then the list."""
        for context, keyed in self.contexts.items():
            if not keyed:
                self._announce_context(context, None)
        for (context, _text), key in self.keys.items():
            self._announce_context(context, key)
        for rule in self.rules:
            self._announce_rule(rule)
        self.started = True
        for context, keyed in self.contexts.items():
            if not keyed:
                self._state(context, None)
        for (context, _text), key in self.keys.items():
            self._state(context, key)
        self._publish_list()

    def output(self, record: Output) -> None:
        """One output record of the engine (any kind)."""
        kind = record.get("kind")
        if kind == "event":
            self._fired(record)
        elif kind == "context-start" or kind == "context-end":
            context, key = record.get("context"), record.get("key")
            if not isinstance(context, str):
                return
            slot = (context, _text_or_none(key))
            count = self.open.get(slot, 0) + (1 if kind == "context-start" else -1)
            self.open[slot] = max(0, count)
            if key is not None and slot not in self.keys:
                self.keys[slot] = key
                if self.started:
                    self._announce_context(context, key)
                    self._publish_list()
            if self.started:
                self._state(context, key)

    def _fired(self, record: Output) -> None:
        rule = record.get("rule")
        if not isinstance(rule, str) or rule not in self._rule_ids:
            return
        t = self.rule_topics(rule)
        attrs = record.get("attrs")
        result = dumps_compact(attrs if isinstance(attrs, dict) else {})
        self._publish(t["fired"], result, False)
        self._publish(t["attributes"], result, True)
        self._publish(t["last"], format_ts(record["ts"], self.tz).encode("utf-8"), True)

    def receive(self, message: ReceivedMessage) -> bool:
        """Whether `message` is discovery's own (then taken here, not by the rules): the
        previous run's list, delivered retained on subscribing, clears what is gone."""
        if message.topic != self.topic:
            return False
        if not message.retain or self.previous_seen or not message.payload:
            return True
        try:
            previous = loads(message.payload)
        except ValueError:
            return True
        if not isinstance(previous, dict) or previous.get("run") == self.run:
            return True  # our own list again (after a reconnect)
        self.previous_seen = True
        entries = previous.get("entities")
        self._forget(entries if isinstance(entries, list) else [])
        return True

    def _forget(self, entries: list[Any]) -> None:
        changed = False
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("config"), str):
                continue
            context, key = entry.get("context"), entry.get("key")
            if isinstance(context, str) and key is not None and context in self.contexts:
                slot = (context, _text_or_none(key))  # a key seen before: announced again
                if slot not in self.keys:
                    self.keys[slot] = key
                    if self.started:
                        self._announce_context(context, key)
                        self._state(context, key)
                        changed = True
            topic = entry["config"]
            if topic in self.entities:
                continue
            # gone from the rule set (or announced under another prefix or id): removed
            self._publish(topic, b"", True)
            for retained in entry.get("retained") or ():
                if isinstance(retained, str) and not self._in_use(retained):
                    self._publish(retained, b"", True)
            self.cleared.append(topic)
            changed = True
        if changed:
            self._publish_list()

    def _in_use(self, topic: str) -> bool:
        return any(topic in entry["retained"] for entry in self.entities.values())


def _text_or_none(key: Any) -> str | None:
    return None if key is None else dumps_compact(key).decode("utf-8")
