"""What names an expression can see at one place in a rule."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from cep.language.catalog import WindowInfo


def needs_window(type_name: str = "Type") -> str:
    """Why an aggregate cannot be here, for a rule that reads `type_name` (without a view)."""
    return ("an aggregate needs a window: use it in the SELECT or HAVING of a rule that reads "
            f"its stream through a view, such as `FROM {type_name}#time(10 min)`, or in a "
            "subquery such as `(SELECT avg(x) FROM Window)`")


NEEDS_WINDOW = needs_window()
NEEDS_STREAM = ("prior() reads earlier events of the rule's stream: use it in the SELECT, WHERE, "
                "HAVING or PUBLISH of a rule reading `FROM Type` or `ON Type`")


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
    - `context`: the rule's context name, and whether `context.key` exists
      (`context_unknown`: the rule names a context that does not exist, already reported).
    - `windows`: the named windows, read as `W.attr`, `W[key].attr` and in subqueries.
    - `no_aggregates`: why an aggregate cannot be here (None: it can); `prior_type`: the
      stream type `prior()` reads here (None: it cannot, and `no_prior` says why);
      `in_filter`: an event filter, where `changed()` belongs.
    - `hidden`: names that are not visible here although they are nearby (the rule's names
      inside a subquery, its SELECT names in HAVING), and why, for the message.
    """

    attrs: dict[str, str] = field(default_factory=dict)
    attrs_owner: str = "this event"
    tags: dict[str, TagInfo] = field(default_factory=dict)
    unbound: Mapping[str, str] = field(default_factory=dict)  # tag -> why
    context: str | None = None
    context_unknown: bool = False  # the rule's CONTEXT names no context (said there)
    has_key: bool = False
    key_type: str = "ANY"  # the type of `context.key`
    event_attrs: dict[str, dict[str, str] | None] = field(default_factory=dict)
    # ^ event type -> its attributes (None while a derived type's schema is unknown)
    located: frozenset[str] = frozenset()  # event types that carry a position
    windows: Mapping[str, WindowInfo] = field(default_factory=dict)
    no_aggregates: str | None = NEEDS_WINDOW
    prior_type: str | None = None
    no_prior: str = NEEDS_STREAM
    in_filter: bool = False
    hidden: Mapping[str, str] = field(default_factory=dict)


class SuggestionBudget:
    """How many candidate names "did you mean" may still compare a name with, in this
    check run: difflib costs up to some 20 µs per candidate, so without a bound thousands
    of misspellings among thousands of names would take minutes. Past the budget, and for
    a name with more than MAX_CANDIDATES candidates, errors come without a suggestion."""

    TOTAL = 100_000
    MAX_CANDIDATES = 5_000

    def __init__(self) -> None:
        self.remaining = self.TOTAL

    def reset(self) -> None:
        self.remaining = self.TOTAL

    def spend(self, count: int) -> bool:
        if count > self.MAX_CANDIDATES or count > self.remaining:
            return False
        self.remaining -= count
        return True


SUGGESTIONS = SuggestionBudget()  # reset by cep.checks.check at the start of each run
LONGEST_SUGGESTED = 100  # comparing longer names costs too much (and they are not typos)


def suggestion(name: str, candidates: Iterable[str]) -> str:
    """` (did you mean `x`?)` when a close candidate exists (and the budget allows), else ''."""
    names = candidates if isinstance(candidates, Collection) else list(candidates)
    if not names or len(name) > LONGEST_SUGGESTED or not SUGGESTIONS.spend(len(names)):
        return ""
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
