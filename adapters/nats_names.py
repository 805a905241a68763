"""The cluster's layout on NATS: names, subjects, and MQTT topics as NATS subjects.

One stream (`CEP`) takes every device message of every home.  The home is a level of
the MQTT topic, `home/<id>/...` by default (`HomeTopic`, from a template such as
`home/{home}/#`); the stream's subject transform puts each message on the subject of its
home's partition, `cep.in.<partition>.<the original subject>`, with NATS' own
`{{partition(N, k)}}` (a hash of the home's token), so one home's messages are always in
one partition, in the order the stream took them.  Ticks (`cep.in.<partition>.$tick`,
stored as they are, in the partition's own subjects) move a quiet partition's clock.
Each partition's consumer filters on one subject, `cep.in.<partition>.>`: NATS finds a
single filter's next message from its subject index, where a consumer with several
filters over an interleaved stream costs the server about twenty times more CPU per
message.  Output lines go to `cep.out.<home>` (stream
`CEP_OUT`).  The key-value buckets hold the leases and the workers' presence
(`cep-leases`), the partitions' checkpoints (`cep-checkpoints`) and the rule sets
(`cep-rules`).

Topics and subjects convert as NATS' MQTT listener converts them, so a device on that
listener and a worker agree: `/` between levels is `.`, an empty level is `/`, and a `.`
inside a level is `//` (`a.b/c` is `a//b.c`).  A topic with a space, a level `*` or `>`
or a control character has no subject (NATS refuses it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STREAM = "CEP"
OUT_STREAM = "CEP_OUT"
LEASES = "cep-leases"
CHECKPOINTS = "cep-checkpoints"
RULES = "cep-rules"
IN_PREFIX = "cep.in"
TICK_LEVEL = "$tick"            # cep.in.<partition>.$tick: a tick
OUT_PREFIX = "cep.out"
NEWS = "cep.cluster.news"      # core NATS: "something changed, look at the leases now"
CONSUMER_PREFIX = "cep-p"      # the durable consumer of partition N is cep-pN
RULES_LEVEL = "$cep/rules"     # a home's topic for "its rule set changed here"
# the NATS header `cep cluster rules put` sets on that marker: the fingerprint, or
# RULES_HEADER_NONE for the shared rules alone (MQTT 3.1.1 cannot set NATS headers)
RULES_HEADER = "Cep-Rules"
RULES_HEADER_NONE = "shared"
FORMAT = "1"                   # the layout's version, in the stream's metadata

DEFAULT_HOME_TOPIC = "home/{home}/#"
HOME_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HOME_ID_HELP = "1 to 64 letters, digits, '_' or '-'"
_LITERAL_LEVEL = re.compile(r"^[A-Za-z0-9_-]+$")
_BAD_IN_SUBJECT = re.compile(r"[\x00-\x20\x7f]")


class LayoutError(ValueError):
    """A home topic template, home id or topic the cluster cannot use (the message says
    what to give instead)."""


def topic_to_subject(topic: str) -> str:
    """An MQTT topic as NATS' MQTT listener publishes it (raises LayoutError when NATS
    has no subject for it)."""
    if not topic:
        raise LayoutError("an empty topic has no NATS subject")
    tokens = []
    for level in topic.split("/"):
        if level in ("*", ">", "+", "#"):
            raise LayoutError(f"the topic level {level!r} is a wildcard in NATS or MQTT")
        if _BAD_IN_SUBJECT.search(level):
            raise LayoutError("NATS subjects cannot hold spaces or control characters")
        tokens.append("/" if level == "" else level.replace(".", "//"))
    return ".".join(tokens)


def subject_to_topic(subject: str) -> str:
    """The MQTT topic of a NATS subject (the inverse of `topic_to_subject`)."""
    return "/".join("" if token == "/" else token.replace("//", ".")
                    for token in subject.split("."))


def check_home(home: str) -> str:
    """`home` if it is a usable home id, else LayoutError."""
    if not HOME_ID.match(home):
        raise LayoutError(f"{home!r} is not a home id: use {HOME_ID_HELP}")
    return home


@dataclass(frozen=True)
class HomeTopic:
    """Where the home is in a topic: `prefix` levels, then the home's id, then the rest
    (`home/{home}/#`: prefix ("home",))."""

    prefix: tuple[str, ...]

    @classmethod
    def parse(cls, template: str) -> HomeTopic:
        levels = template.split("/")
        if len(levels) < 3 or levels[-1] != "#" or levels[-2] != "{home}":
            raise LayoutError(
                f"home topic {template!r}: give the levels before the home, then {{home}}, "
                f"then # (the default is {DEFAULT_HOME_TOPIC})")
        prefix = tuple(levels[:-2])
        for level in prefix:
            if not _LITERAL_LEVEL.match(level):
                raise LayoutError(
                    f"home topic {template!r}: the level {level!r} before {{home}} must be "
                    "plain letters, digits, '_' or '-' (no wildcard)")
        if prefix[0] == "cep":
            raise LayoutError(f"home topic {template!r}: 'cep' is the cluster's own subject "
                              "space; choose another first level")
        return cls(prefix)

    @property
    def template(self) -> str:
        return "/".join((*self.prefix, "{home}", "#"))

    @property
    def source(self) -> str:
        """The stream's subjects: every home's messages (`home.*.>`)."""
        return ".".join((*self.prefix, "*", ">"))

    def transform(self, partitions: int) -> str:
        """The stream's subject transform destination: the home's partition first."""
        # (the home is the source's one `*`: wildcard 1, whatever its level)
        return ".".join((IN_PREFIX, f"{{{{partition({partitions},1)}}}}", *self.prefix,
                         "{{wildcard(1)}}", ">"))

    def home_subject(self, home: str, topic: str) -> str:
        """The NATS subject of a topic of `home` (a home-relative topic such as
        `light/set`); raises LayoutError."""
        return ".".join((*self.prefix, home, topic_to_subject(topic)))

    def split(self, tokens: list[str]) -> tuple[str, str] | None:
        """(home, home-relative topic) of a stored subject's tokens after
        `cep.in.<partition>`; None when they are not a home's topic."""
        n = len(self.prefix)
        if len(tokens) < n + 2 or tuple(tokens[:n]) != self.prefix:
            return None
        home = tokens[n]
        if not HOME_ID.match(home):
            return None
        return home, subject_to_topic(".".join(tokens[n + 1:]))


def partition_subject(partition: int) -> str:
    return f"{IN_PREFIX}.{partition}.>"


def tick_subject(partition: int) -> str:
    return f"{IN_PREFIX}.{partition}.{TICK_LEVEL}"


TICK_SUBJECTS = f"{IN_PREFIX}.*.{TICK_LEVEL}"  # the stream's subjects for the ticks


def out_subject(home: str) -> str:
    return f"{OUT_PREFIX}.{home}"


def consumer_name(partition: int) -> str:
    return f"{CONSUMER_PREFIX}{partition}"


def lease_key(partition: int) -> str:
    return f"p.{partition}"


def worker_key(name: str) -> str:
    return f"w.{name}"


def header_key(partition: int) -> str:
    return f"p.{partition}"


def home_key(partition: int, home: str) -> str:
    return f"h.{partition}.{home}"


def rule_set_key(fingerprint: str) -> str:
    return f"set.{fingerprint}"


def home_rules_key(home: str) -> str:
    return f"home.{home}"


SHARED_RULES_KEY = "shared"
WORKER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_worker_name(name: str) -> str:
    if not WORKER_NAME.match(name):
        raise LayoutError(f"{name!r} is not a worker name: use {HOME_ID_HELP}")
    return name


def parse_reply(reply: str) -> tuple[int, int, int] | None:
    """(stream sequence, consumer sequence, timestamp in nanoseconds) from a JetStream
    message's reply subject (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.
    <pending>`, or the longer form with a domain and an account hash); None if it is not
    one."""
    tokens = reply.split(".")
    if len(tokens) == 9:
        base = 5
    elif len(tokens) >= 12:
        base = 7
    else:
        return None
    if tokens[0] != "$JS" or tokens[1] != "ACK":
        return None
    try:
        return int(tokens[base]), int(tokens[base + 1]), int(tokens[base + 2])
    except ValueError:
        return None
