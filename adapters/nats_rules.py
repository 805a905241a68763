"""Rule sets in the cluster: the shared rules every home runs, and a home's own rules.

The `cep-rules` bucket holds, by key:
- `shared`: the shared rules the workers run (each worker writes them at start), so that
  `cep cluster rules put` can check a home's files together with them;
- `set.<fingerprint>`: a home rule set's files, under the fingerprint of the rules as
  compiled (cep.adapters.state.rules_fingerprint): written once, never changed;
- `home.<id>`: which rule set a home has now (for people: status and `rules put`).

What makes a home change rule sets is a message in the home's own partition of the
stream, on its topic `$cep/rules` (`home.<id>.$cep.rules`), saying the new fingerprint:
the home's worker switches at that point of the stream, with a fresh state for that
home, so a worker taking the partition over later switches at the same point.

Only `cep cluster rules put` makes such a marker: it carries the NATS header `Cep-Rules`
saying the fingerprint again (`shared` for none), which a device on NATS' MQTT listener or
on a bridge cannot set (MQTT 3.1.1 has no headers).  A message on that topic without the
header, with a header the body disagrees with, or naming a rule set not in the bucket is
refused (`marker_refusal`): no switch, and not an event of the home either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cep.adapters.nats_client import ClusterError, describe, json_bytes, json_value, kv_get
from cep.adapters.nats_homes import RuleSet
from cep.adapters.nats_names import (
    RULES_HEADER,
    RULES_HEADER_NONE,
    RULES_LEVEL,
    SHARED_RULES_KEY,
    HomeTopic,
    home_rules_key,
    rule_set_key,
)
from cep.adapters.state import rules_fingerprint
from cep.checks.loader import LoadedRules, load_texts
from cep.language.diagnostics import plural
from cep.language.timezones import get_zone

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

Texts = list[tuple[str, str]]
Report = Callable[[str], None]


def check_texts(shared: Texts, own: Texts) -> tuple[LoadedRules, str | None]:
    """The shared and own files checked as one rule set, and the own files' fingerprint
    (None when there are none)."""
    loaded = load_texts([*shared, *own])
    fingerprint = rules_fingerprint(loaded.files[len(shared):]) if own else None
    return loaded, fingerprint


def shared_fingerprint(loaded: LoadedRules, count: int) -> str | None:
    return rules_fingerprint(loaded.files[:count]) if count else None


def _texts(value: Any) -> Texts | None:
    files = value.get("files") if isinstance(value, dict) else None
    if not isinstance(files, list) or not all(
            isinstance(f, list) and len(f) == 2 and all(isinstance(x, str) for x in f)
            for f in files):
        return None
    return [(name, text) for name, text in files]


async def register_shared(kv: KeyValue, texts: Texts, fingerprint: str | None,
                          worker: str) -> tuple[str | None, str | None] | None:
    """Say which shared rules this worker runs; the (fingerprint, worker) registered
    before when they were others, else None."""
    found = await kv_get(kv, SHARED_RULES_KEY)
    before = json_value(found[0]) if found else None
    previous = None
    if isinstance(before, dict) and before.get("fingerprint") != fingerprint:
        previous = (before.get("fingerprint"), before.get("worker"))
    if found is None or previous is not None:
        await kv.put(SHARED_RULES_KEY, json_bytes({
            "fingerprint": fingerprint, "files": [[n, t] for n, t in texts],
            "worker": worker, "registered": time.time()}))
    return previous


async def fetch_shared(kv: KeyValue) -> tuple[Texts, str | None] | None:
    """The shared rules the workers registered; None when no worker has yet."""
    found = await kv_get(kv, SHARED_RULES_KEY)
    if found is None:
        return None
    value = json_value(found[0])
    texts = _texts(value)
    if texts is None or not isinstance(value, dict):
        raise ClusterError("the shared rules in the bucket are damaged: start a worker "
                           "again to write them anew")
    return texts, value.get("fingerprint")


async def put_home_rules(js: JetStreamContext, kv: KeyValue, topic: HomeTopic, home: str,
                         own: Texts | None, fingerprint: str | None) -> tuple[bool, int | None]:
    """Give `home` the rule set `own` (None: none, the shared rules alone): stored, then
    announced in the home's partition.  (changed, the stream sequence where it takes
    effect); (False, None) when the home already had it."""
    found = await kv_get(kv, home_rules_key(home))
    current = json_value(found[0]) if found else None
    if isinstance(current, dict) and current.get("rules") == fingerprint:
        return False, None
    if current is None and fingerprint is None:
        return False, None
    if fingerprint is not None and own is not None:
        if await kv_get(kv, rule_set_key(fingerprint)) is None:
            await kv.put(rule_set_key(fingerprint),
                         json_bytes({"files": [[n, t] for n, t in own]}))
    await kv.put(home_rules_key(home), json_bytes({
        "rules": fingerprint, "files": [n for n, _ in own or []], "put": time.time()}))
    subject = topic.home_subject(home, RULES_LEVEL)
    ack = await js.publish(subject, json_bytes({"rules": fingerprint}),
                           headers={RULES_HEADER: fingerprint or RULES_HEADER_NONE})
    return True, ack.seq


def read_marker(headers: dict[str, str] | None, data: bytes) -> tuple[str | None, str | None]:
    """A marker on a home's `$cep/rules` topic: (the fingerprint it names, None for the
    shared rules alone; why it is refused, or None when it came from `rules put`)."""
    value = json_value(data)
    own = value.get("rules") if isinstance(value, dict) else None
    if not isinstance(value, dict) or "rules" not in value or \
            (own is not None and not isinstance(own, str)):
        shown = None
    else:
        shown = own or RULES_HEADER_NONE
    said = (headers or {}).get(RULES_HEADER)
    if said is None:
        return None, f"it has no {RULES_HEADER} header"
    if shown is None:
        return None, "its body is not {\"rules\": FINGERPRINT}"
    if said != shown:
        return None, f"its {RULES_HEADER} header and its body name different rule sets"
    return (own if isinstance(own, str) else None), None


class WorkerRuleSets:
    """The rule sets a worker's homes run, compiled once each: the shared rules alone
    (`get(None)`), and with each home rule set (`get(fingerprint)`, once `ensure`d)."""

    def __init__(self, shared: Texts, shared_loaded: LoadedRules | None, kv: KeyValue,
                 report: Report) -> None:
        self.shared_texts = shared
        self.kv = kv
        self.report = report
        self.shared_fp = shared_fingerprint(shared_loaded, len(shared)) \
            if shared_loaded is not None else None
        self._sets: dict[str | None, RuleSet | None] = {
            None: _rule_set(shared_loaded, self.shared_fp, None) if shared else None}
        self._missing: set[str] = set()   # fingerprints not in the bucket

    def stored(self, own: str) -> bool:
        """Whether the bucket had the home rule set `own` (once `ensure`d)."""
        return own not in self._missing

    def get(self, own: str | None) -> RuleSet | None:
        if own in self._sets:
            return self._sets[own]
        return self._sets[None]  # not loaded (ensure() said why): the shared rules alone

    async def ensure(self, fingerprints: set[str]) -> None:
        """Fetch and compile the home rule sets not known yet (raises what NATS raised:
        the caller tries again)."""
        for fingerprint in fingerprints - set(self._sets):
            found = await kv_get(self.kv, rule_set_key(fingerprint))
            texts = _texts(json_value(found[0])) if found else None
            if texts is None:
                self.report(f"the home rule set {fingerprint} is not in the bucket (deleted?): "
                            "its homes run the shared rules alone")
                self._sets[fingerprint] = self._sets[None]
                self._missing.add(fingerprint)
                continue
            loaded, _ = check_texts(self.shared_texts, texts)
            if not loaded.ok:
                first = loaded.diagnostics.sorted()[0].render(loaded.sources).splitlines()[0]
                errors = plural(len(loaded.diagnostics.errors), "error")
                self.report(f"the home rule set {fingerprint} does not check with this "
                            f"worker's shared rules ({errors}, the first: {first}): its "
                            "homes run the shared rules alone")
                self._sets[fingerprint] = self._sets[None]
                continue
            self._sets[fingerprint] = _rule_set(loaded, self.shared_fp, fingerprint)


def _rule_set(loaded: LoadedRules | None, shared: str | None, own: str | None) -> RuleSet | None:
    if loaded is None:
        return None
    zone = get_zone(loaded.catalog.timezone)
    if zone is None:  # the checks refuse an unknown zone
        raise ClusterError(f"unknown time zone {loaded.catalog.timezone!r}")
    return RuleSet.build(shared, own, loaded.catalog, zone)


def describe_put(home: str, changed: bool, seq: int | None, files: list[str],
                 fingerprint: str | None) -> str:
    if not changed:
        return f"home {home}: already has this rule set; nothing changed"
    if fingerprint is None:
        return (f"home {home}: its own rule set removed; from stream sequence {seq} on it "
                "runs the shared rules alone, with a fresh state")
    return (f"home {home}: rule set {fingerprint} ({plural(len(files), 'file')}: "
            f"{', '.join(files)}) stored; it takes effect at stream sequence {seq}, where "
            "the home's state starts fresh")


__all__ = ["WorkerRuleSets", "check_texts", "describe", "describe_put", "fetch_shared",
           "put_home_rules", "read_marker", "register_shared"]
