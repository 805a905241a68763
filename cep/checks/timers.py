"""Warnings about a rule's timers that its context's instances do not leave time for.

A rule's pattern starts when an instance of its context opens, and the instance's end drops
every timer still pending (docs/language.md, 9.1). When the longest an instance can last is
known (cep.checks.instances: a recurring context of clock times, a DURATION without EXTEND,
a composition with such a part), then

- a `timer:interval(d)`, an `X FOR d` or a `where timer:within(d)` with d at least that long
  can never fire in it (the within never runs out, so it restricts nothing), and a
  `timer:at(hh:mm)` outside a recurring part's START..END can never fire either: a warning at
  each;
- otherwise, when the pattern ends in a timer (its last step is a `timer:interval(d)` or an
  `X FOR d`, alone or beside `and not ...`) that takes at least half the longest instance,
  and a match starts with an event (not a pattern of timers alone, which is meant to repeat
  while the instance lasts), one warning for the rule: every match that starts in the last d
  of an instance is dropped at its end, which is more than half of the instance and so
  likely not meant. A shorter final timer (a 20-minute wait in a 9-hour night) loses only
  the matches of the instance's last minutes, which is what a context is for: no warning.
"""

from __future__ import annotations

from cep.checks.instances import Longest, known_seconds, length_words
from cep.language import ast
from cep.language.diagnostics import Diagnostics
from cep.language.walk import children, walk


def _adjective(seconds: float) -> str:
    """`4-hour`, `90-minute`: a length before a noun."""
    words = length_words(seconds).split(" ")
    return f"{words[0]}-{words[1].rstrip('s')}"


def _bound_text(context: str, bound: Longest) -> str:
    part = f"its part {bound.context}: " if bound.context != context else ""
    return (f"{context}'s instances last at most {length_words(bound.seconds)} "
            f"({part}{bound.why})")


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _inside(minute: int, window: tuple[int, int]) -> bool:
    start, end = window
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end  # across midnight


def final_timer(pattern: ast.Pattern) -> ast.TimerInterval | ast.ForAtom | None:
    """The timer whose firing completes a match, if the pattern ends in one: its last step
    (through `every`, `where timer:within` and `->`) is a `timer:interval` or an `X FOR d`,
    or an `and` with one (`timer:interval(d) and not X`); the longest such."""
    node = pattern
    while isinstance(node, (ast.Every, ast.Within, ast.FollowedBy)):
        node = node.steps[-1] if isinstance(node, ast.FollowedBy) else node.body
    if isinstance(node, (ast.TimerInterval, ast.ForAtom)):
        return node
    if isinstance(node, ast.PatternAnd):
        found = [timer for item in node.items if (timer := final_timer(item)) is not None]
        return max(found, key=lambda t: t.duration.seconds, default=None)
    return None


def _starts_with_an_event(pattern: ast.Pattern) -> bool:
    """Whether a match needs an event (an atom outside every `not`)."""
    pending = [pattern]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.EventAtom, ast.ForAtom)):
            return True
        if not isinstance(node, ast.PatternNot):
            pending.extend(children(node))
    return False


def warn_timers(pattern: ast.Pattern, context: str, bounds: list[Longest],
                diagnostics: Diagnostics) -> None:
    """The warnings of this module for one rule's pattern in `context`, whose instances are
    bounded by `bounds` (none: nothing to say)."""
    if not bounds:
        return
    shortest = min(bounds, key=lambda bound: bound.seconds)
    never = False
    for node in walk(pattern):
        if isinstance(node, (ast.TimerInterval, ast.ForAtom, ast.Within)):
            seconds = known_seconds(node.duration)
            if seconds is None or seconds <= 0 or seconds < shortest.seconds:
                continue
            never = True
            limit = _bound_text(context, shortest)
            if isinstance(node, ast.Within):
                diagnostics.warning(f"this {_adjective(seconds)} timer:within can never run out: "
                                    f"{limit}, so it restricts nothing; shorten it or leave it "
                                    "out", node.duration.span)
            elif isinstance(node, ast.ForAtom):
                diagnostics.warning(f"this {_adjective(seconds)} FOR can never be over: {limit}, "
                                    "and an instance's end drops what is pending; shorten it "
                                    "or make the context longer", node.duration.span)
            else:
                diagnostics.warning(f"the {_adjective(seconds)} timer can never fire: {limit}, "
                                    "and an instance's end drops its pending timers; shorten "
                                    "the timer or make the context longer", node.span)
        elif isinstance(node, ast.TimerAt) and isinstance(node.at, ast.ClockTime):
            at = node.at.hour * 60 + node.at.minute
            # (at the START itself it cannot fire either: it waits for the next such time
            # strictly after it started, and the instance starts at that time)
            outside = next((bound for bound in bounds
                            if bound.window is not None and (not _inside(at, bound.window)
                                                             or at == bound.window[0])),
                           None)
            if outside is not None and outside.window is not None:
                never = True
                part = f" (its part {outside.context})" if outside.context != context else ""
                why = (" and it waits for the next one strictly after it starts, a day later"
                       if at == outside.window[0] else "")
                diagnostics.warning(
                    f"timer:at({_clock(at)}) can never fire in {context}: its instances{part} "
                    f"run from {_clock(outside.window[0])} to {_clock(outside.window[1])}"
                    f"{why}; pick a time inside them", node.at.span)
    if never:
        return
    timer = final_timer(pattern)
    if timer is None or not _starts_with_an_event(pattern):
        return
    seconds = known_seconds(timer.duration)
    if seconds is None or seconds <= 0 or 2 * seconds < shortest.seconds:
        return
    what = "timer" if isinstance(timer, ast.TimerInterval) else "FOR"
    diagnostics.warning(
        f"a match that starts in the last {length_words(seconds)} of an instance is dropped "
        f"unfinished: {_bound_text(context, shortest)}, and its end cancels this "
        f"{_adjective(seconds)} {what}, the pattern's last step; make the context longer or "
        "the wait shorter if those matches matter",
        timer.span if isinstance(timer, ast.TimerInterval) else timer.duration.span)
