"""Topic templates: matching, bindings, subscription filters, problems, filling, merging."""

from __future__ import annotations

import pytest

from cep.language.topics import (
    TemplateError,
    compile_template,
    fill_template,
    filter_covers,
    merge_subscriptions,
    template_problems,
)

# template, topic, expected bindings (None: no match)
MATCHES = [
    ("home/bedroom/pillow", "home/bedroom/pillow", {}),
    ("home/bedroom/pillow", "home/bedroom/pillow/x", None),
    ("home/bedroom/pillow", "home/bedroom", None),
    ("home/bedroom/pillow", "home/kitchen/pillow", None),
    ("home/{room}/temperature", "home/kitchen/temperature", {"room": "kitchen"}),
    ("home/{room}/temperature", "home//temperature", None),  # binds a non-empty level
    ("home/{room}/temperature", "home/a/b/temperature", None),
    ("home/{room}/temperature", "home/kitchen/humidity", None),
    ("home/{room}/temperature", "home/kitchen/temperature/x", None),
    ("zigbee2mqtt/{room}_motion", "zigbee2mqtt/hall_motion", {"room": "hall"}),
    ("zigbee2mqtt/{room}_motion", "zigbee2mqtt/_motion", None),
    ("zigbee2mqtt/{room}_motion", "zigbee2mqtt/hall_motionx", None),
    ("zigbee2mqtt/{room}_motion", "zigbee2mqtt/hall", None),
    ("zigbee2mqtt/{room}_motion", "zigbee2mqtt/hall/x_motion", None),
    ("z/sensor_{id}", "z/sensor_42", {"id": "42"}),
    ("z/sensor_{id}", "z/sensor_", None),
    ("z/sensor_{id}", "z/other_42", None),
    ("z/a{id}b", "z/axb", {"id": "x"}),
    ("z/a{id}b", "z/ab", None),
    ("z/a{id}b", "z/aab", {"id": "a"}),
    ("{site}/{room}/t", "s1/r1/t", {"site": "s1", "room": "r1"}),
    ("home/+/door", "home/bath/door", {}),
    ("home/+/door", "home//door", {}),  # MQTT: + matches an empty level
    ("home/+/door", "home/a/b/door", None),
    ("home/#", "home", {}),  # MQTT: a/# matches a itself
    ("home/#", "home/a/b/c", {}),
    ("home/#", "homes/a", None),
    ("home/{room}/#", "home/kitchen/a/b", {"room": "kitchen"}),
    ("home/{room}/#", "home/kitchen", {"room": "kitchen"}),
    ("home/{room}/#", "home", None),
    ("#", "anything/at/all", {}),
    ("#", "$SYS/broker/load", None),  # wildcards never match $ topics at the first level
    ("+/broker", "$SYS/broker", None),
    ("{x}/broker", "$SYS/broker", None),
    ("$SYS/#", "$SYS/broker/load", {}),
]


@pytest.mark.parametrize("template, topic, expected", MATCHES)
def test_bus_template_match(template, topic, expected):
    assert compile_template(template).match(topic) == expected


@pytest.mark.parametrize("template, filter_, names, exact", [
    ("home/bedroom/pillow", "home/bedroom/pillow", (), True),
    ("home/{room}/temperature", "home/+/temperature", ("room",), False),
    ("zigbee2mqtt/{room}_motion", "zigbee2mqtt/+", ("room",), False),
    ("{site}/{room}/t", "+/+/t", ("site", "room"), False),
    ("home/+/door", "home/+/door", (), False),
    ("home/{room}/#", "home/+/#", ("room",), False),
    ("#", "#", (), False),
])
def test_bus_template_filter_and_names(template, filter_, names, exact):
    compiled = compile_template(template)
    assert compiled.filter == filter_
    assert compiled.names == names
    assert compiled.exact is exact


PROBLEMS = [
    ("home/{room}/temperature", []),
    ("home/+/x/#", []),
    ("a//b", []),
    ("", [("the topic is empty", 0)]),
    ("home/{}/t", [("empty `{}`: write the attribute name inside", 5)]),
    ("home/{a}{b}/t", [("a level may hold only one `{name}`", 8)]),
    ("home/#/t", [("`#` must be the last level", 5)]),
    ("home/x#", [("`#` must be a whole level, not mixed with other characters", 6)]),
    ("home/a+b/t", [("`+` must be a whole level, not mixed with other characters", 6)]),
    ("home/+{room}", [("`+` must be a whole level, not mixed with other characters", 5)]),
    ("home/{room/t}", [("unbalanced `{`: no `}` closes it in this level", 5),
                       ("unbalanced `}`: no `{` opens it", 12)]),
    ("home/{room", [("unbalanced `{`: no `}` closes it in this level", 5)]),
    ("home/room}/t", [("unbalanced `}`: no `{` opens it", 9)]),
    ("home/{{room}}", [("unbalanced `{`: no `}` closes it in this level", 5),
                       ("unbalanced `}`: no `{` opens it", 12)]),
    ("home/{1x}/t", [("`{1x}`: expected an attribute name inside the braces", 6)]),
    ("a/{room}/{room}", [("`{room}` appears twice in the topic", 9)]),
    ("a/#/{x}{}", [("`#` must be the last level", 2),
                   ("a level may hold only one `{name}`", 7),
                   ("empty `{}`: write the attribute name inside", 7)]),
]


@pytest.mark.parametrize("template, expected", PROBLEMS)
def test_bus_template_problems(template, expected):
    assert template_problems(template) == expected


def test_bus_template_problem_offsets_point_at_the_culprit():
    template = "home/kitchen/#/x"
    [(_message, offset)] = template_problems(template)
    assert template[offset] == "#"


@pytest.mark.parametrize("template, expected", [
    ("home/{room}/ac/set", []),
    ("home/+/set", [("`+` is a wildcard: a PUBLISH topic cannot hold one", 5)]),
    ("home/#", [("`#` is a wildcard: a PUBLISH topic cannot hold one", 5)]),
])
def test_bus_publish_template_problems(template, expected):
    assert template_problems(template, publish=True) == expected


def test_bus_compile_refuses_a_bad_template():
    with pytest.raises(TemplateError, match=r"`#` must be the last level \(at offset 2\)"):
        compile_template("a/#/b")


FILLS = [
    ("home/{room}/ac/set", {"room": "kitchen"}, "home/kitchen/ac/set"),
    ("home/bedroom/light/set", {}, "home/bedroom/light/set"),
    ("zigbee2mqtt/{room}_light/set", {"room": "hall"}, "zigbee2mqtt/hall_light/set"),
    ("dev/{id}/set", {"id": 42}, "dev/42/set"),
    ("dev/{id}/set", {"id": 2.5}, "dev/2.5/set"),
    ("dev/{on}/set", {"on": True}, "dev/true/set"),
    ("{a}/{b}", {"a": "x", "b": "y", "c": "unused"}, "x/y"),
]


@pytest.mark.parametrize("template, values, expected", FILLS)
def test_bus_fill_template(template, values, expected):
    assert fill_template(template, values) == expected


@pytest.mark.parametrize("template, values, message", [
    ("home/{room}/set", {}, "{room} is null"),
    ("home/{room}/set", {"room": None}, "{room} is null"),
    ("home/{room}/set", {"room": "a/b"}, "is 'a/b', which is not a single topic level"),
    ("home/{room}/set", {"room": "+"}, "which is not a single topic level"),
    ("home/{room}/set", {"room": "#"}, "which is not a single topic level"),
    ("home/{room}/set", {"room": ""}, "which is not a single topic level"),
    ("home/+/set", {}, "PUBLISH topic cannot hold one"),
])
def test_bus_fill_template_refuses(template, values, message):
    with pytest.raises(TemplateError) as info:
        fill_template(template, values)
    assert message in str(info.value)


@pytest.mark.parametrize("outer, inner, covers", [
    ("a/#", "a/+/b", True),
    ("a/#", "a", True),
    ("a/#", "a/#", True),
    ("a/#", "b/c", False),
    ("#", "x/y/z", True),
    ("#", "$SYS/x", False),
    ("+/#", "$SYS/x", False),
    ("a/+", "a/b", True),
    ("a/+", "a/+", True),
    ("a/+", "a/#", False),
    ("a/+", "a/b/c", False),
    ("a/+/c", "a/b/c", True),
    ("a/b", "a/+", False),
    ("a/+/#", "a/b", True),
    ("a/+/#", "a", False),
    ("a", "a/#", False),
])
def test_bus_filter_covers(outer, inner, covers):
    assert filter_covers(outer, inner) is covers


@pytest.mark.parametrize("filters, expected", [
    (["a/b", "a/b"], ["a/b"]),
    (["a/+/b", "a/#"], ["a/#"]),
    (["a/#", "a/+/b", "c"], ["a/#", "c"]),
    (["home/+/temperature", "home/kitchen/temperature", "home/+/door"],
     ["home/+/temperature", "home/+/door"]),
    (["x/+", "x/#", "#"], ["#"]),
    (["$SYS/a", "#"], ["$SYS/a", "#"]),
    (["b", "a"], ["b", "a"]),
    ([], []),
])
def test_bus_merge_subscriptions(filters, expected):
    assert merge_subscriptions(filters) == expected
