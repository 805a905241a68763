"""What names an expression can see at one place in a rule."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TagInfo:
    """A tag (or stream alias) bound to events of `type`; `repeated` for `[n]`/until tags."""

    type: str
    repeated: bool = False
    count: int | None = None  # known number of repetitions ([n]); None if unbounded


@dataclass
class Scope:
    """Names visible to an expression.

    - `attrs`: bare names that are attributes (the current event, or a rule's result);
      `attrs_owner` says whose, for messages.
    - `tags`: tags and aliases usable as `tag.attr` here.
    - `unbound`: tags the pattern declares that are not bound at this point
      (so the message can say *why* a tag is unknown).
    - `context`: the rule's context name, and whether `context.key` exists.
    """

    attrs: dict[str, str] = field(default_factory=dict)
    attrs_owner: str = "this event"
    tags: dict[str, TagInfo] = field(default_factory=dict)
    unbound: dict[str, str] = field(default_factory=dict)  # tag -> why
    context: str | None = None
    has_key: bool = False
    key_type: str = "ANY"  # the type of `context.key`
    event_attrs: dict[str, dict[str, str] | None] = field(default_factory=dict)
    # ^ event type -> its attributes (None while a derived type's schema is unknown)
    located: frozenset[str] = frozenset()  # event types that carry a position


def suggestion(name: str, candidates: Iterable[str]) -> str:
    """` (did you mean `x`?)` when a close candidate exists, else ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
