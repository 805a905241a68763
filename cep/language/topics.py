"""Topic templates: `home/{room}/temperature` as an MQTT filter, a matcher and a filler.

A template is MQTT topic levels separated by `/`.  A level is a literal, `+`
(any one level, binds nothing), `#` (any rest, last level only, binds nothing),
or holds one `{name}` with an optional literal prefix and suffix: that level
subscribes as `+`, is matched locally and binds the non-empty remainder to
`name`.

Everything is worked out once in `TopicTemplate`; `match` then only splits the
topic and compares levels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

__all__ = [
    "TemplateError",
    "TopicTemplate",
    "compile_template",
    "fill_template",
    "filter_covers",
    "merge_subscriptions",
    "template_problems",
    "topic_string",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Level kinds in a compiled template.
_LITERAL, _PLUS, _HASH, _BIND = 0, 1, 2, 3


class TemplateError(ValueError):
    """A template that cannot be used: its problems, or a value that cannot fill it."""


def template_problems(template: str, publish: bool = False) -> list[tuple[str, int]]:
    """Every problem of `template` as (message, offset of the culprit in the string).

    With `publish`, `+` and `#` are refused too (a PUBLISH topic names one topic).
    An empty list means the template is good.
    """
    problems: list[tuple[str, int]] = []
    if template == "":
        return [("the topic is empty", 0)]
    if "\0" in template:
        problems.append(("a topic cannot contain a NUL character", template.index("\0")))
    levels = template.split("/")
    seen: dict[str, int] = {}
    offset = 0
    for index, level in enumerate(levels):
        _level_problems(level, offset, index == len(levels) - 1, publish, seen, problems)
        offset += len(level) + 1
    return problems


def _level_problems(level: str, offset: int, last: bool, publish: bool,
                    seen: dict[str, int], problems: list[tuple[str, int]]) -> None:
    for char, name in (("#", "`#`"), ("+", "`+`")):
        at = level.find(char)
        if at < 0:
            continue
        if publish:
            problems.append((f"{name} is a wildcard: a PUBLISH topic cannot hold one",
                             offset + at))
        elif level != char:
            problems.append((f"{name} must be a whole level, not mixed with other characters",
                             offset + at))
        elif char == "#" and not last:
            problems.append(("`#` must be the last level", offset + at))
    groups = 0
    i = 0
    close = 0  # the first `}` after i, once looked for (-1: there is none any more)
    while i < len(level):
        ch = level[i]
        if ch == "}":
            problems.append(("unbalanced `}`: no `{` opens it", offset + i))
            i += 1
            continue
        if ch != "{":
            i += 1
            continue
        if 0 <= close <= i:  # each `}` is looked for once: linear however many `{` there are
            close = level.find("}", i + 1)
        reopen = level.find("{", i + 1, close) if close >= 0 else -1
        if close < 0 or reopen >= 0:
            problems.append(("unbalanced `{`: no `}` closes it in this level", offset + i))
            i += 1
            continue
        groups += 1
        name = level[i + 1:close]
        if groups == 2:
            problems.append(("a level may hold only one `{name}`", offset + i))
        if name == "":
            problems.append(("empty `{}`: write the attribute name inside", offset + i))
        elif not _NAME.match(name):
            problems.append((f"`{{{name}}}`: expected an attribute name inside the braces",
                             offset + i + 1))
        elif name in seen:
            problems.append((f"`{{{name}}}` appears twice in the topic", offset + i))
        else:
            seen[name] = offset + i
        i = close + 1


class TopicTemplate:
    """A checked template: its subscription filter, matcher, names and filler.

    Build with `compile_template`; raises TemplateError listing the problems.
    """

    __slots__ = (
        "_binds",
        "_has_hash",
        "_literals",
        "_n",
        "_wild_first",
        "exact",
        "filter",
        "levels",
        "names",
        "template",
    )

    def __init__(self, template: str, publish: bool = False) -> None:
        problems = template_problems(template, publish)
        if problems:
            raise TemplateError(f"bad topic template {template!r}: "
                                + "; ".join(f"{m} (at offset {o})" for m, o in problems))
        self.template = template
        parsed: list[tuple[int, str, str, str]] = []  # kind, literal/prefix, name, suffix
        for level in template.split("/"):
            if level == "+":
                parsed.append((_PLUS, "", "", ""))
            elif level == "#":
                parsed.append((_HASH, "", "", ""))
            elif "{" in level:
                start = level.index("{")
                end = level.index("}")
                parsed.append((_BIND, level[:start], level[start + 1:end], level[end + 1:]))
            else:
                parsed.append((_LITERAL, level, "", ""))
        self.levels = tuple(parsed)
        self.names: tuple[str, ...] = tuple(p[2] for p in parsed if p[0] == _BIND)
        self.filter = "/".join("#" if k == _HASH else "+" if k in (_PLUS, _BIND) else lit
                               for k, lit, _, _ in parsed)
        self.exact = all(k == _LITERAL for k, _, _, _ in parsed)
        self._has_hash = bool(parsed) and parsed[-1][0] == _HASH
        self._n = len(parsed) - 1 if self._has_hash else len(parsed)
        self._wild_first = parsed[0][0] != _LITERAL
        # Only the levels that need a check, as (index, kind, literal/prefix, name, suffix).
        self._literals = tuple((i, lit) for i, (k, lit, _, _) in enumerate(parsed)
                               if k == _LITERAL and i < self._n)
        self._binds = tuple((i, pre, name, suf, len(pre) + len(suf))
                            for i, (k, pre, name, suf) in enumerate(parsed) if k == _BIND)

    def match(self, topic: str) -> dict[str, str] | None:
        """The bound names if `topic` matches (an empty dict when nothing binds), else None."""
        if self.exact:
            return {} if topic == self.template else None
        if self._wild_first and topic[:1] == "$":
            return None  # MQTT: wildcards never match `$SYS/...`-style topics
        levels = topic.split("/")
        if self._has_hash:
            if len(levels) < self._n:
                return None
        elif len(levels) != self._n:
            return None
        for i, lit in self._literals:
            if levels[i] != lit:
                return None
        bound: dict[str, str] = {}
        for i, pre, name, suf, fixed in self._binds:
            level = levels[i]
            if (len(level) <= fixed or not level.startswith(pre)
                    or not level.endswith(suf)):
                return None
            bound[name] = level[len(pre):len(level) - len(suf)]
        return bound

    def fill(self, values: Mapping[str, Any]) -> str:
        """The topic with each `{name}` replaced by the string form of `values[name]`.

        A missing or null value, or one that would change the topic's levels
        (`/`, `+`, `#`), raises TemplateError.
        """
        if not self.names:
            return self.template
        out: list[str] = []
        for kind, lit, name, suf in self.levels:
            if kind == _BIND:
                value = values.get(name)
                if value is None:
                    raise TemplateError(f"cannot fill topic {self.template!r}: "
                                        f"{{{name}}} is null")
                text = topic_string(value)
                if text == "" or "/" in text or "+" in text or "#" in text or "\0" in text:
                    raise TemplateError(f"cannot fill topic {self.template!r}: {{{name}}} "
                                        f"is {text!r}, which is not a single topic level")
                out.append(lit + text + suf)
            else:
                out.append("+" if kind == _PLUS else "#" if kind == _HASH else lit)
        return "/".join(out)

    def __repr__(self) -> str:
        return f"TopicTemplate({self.template!r})"


def topic_string(value: Any) -> str:
    """The string form of a value inside a topic: booleans as `true`/`false`."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


@lru_cache(maxsize=1024)
def compile_template(template: str, publish: bool = False) -> TopicTemplate:
    """A cached TopicTemplate (templates are few; compile each once)."""
    return TopicTemplate(template, publish)


def fill_template(template: str, values: Mapping[str, Any]) -> str:
    """`fill` of a PUBLISH template (compiled once and cached)."""
    return compile_template(template, True).fill(values)


def filter_covers(outer: str, inner: str) -> bool:
    """True when every topic that MQTT filter `inner` matches is matched by `outer`."""
    if outer == inner:
        return True
    a, b = outer.split("/"), inner.split("/")
    if a[0] in ("+", "#") and b[0][:1] == "$":
        return False  # `$` topics escape leading wildcards
    for i, level in enumerate(a):
        if level == "#":
            return True  # `x/#` also matches `x`, so it covers whatever remains of inner
        if i >= len(b):
            return False
        if level == "+":
            if b[i] == "#":
                return False
        elif level != b[i]:
            return False
    return len(a) == len(b)


def merge_subscriptions(filters: Iterable[str]) -> list[str]:
    """The filters without duplicates and without any filter another one covers.

    Keeps the first-seen order of the survivors.
    """
    unique = list(dict.fromkeys(filters))
    return [f for f in unique
            if not any(other != f and filter_covers(other, f) for other in unique)]
