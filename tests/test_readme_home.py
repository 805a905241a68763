"""The README's "your own home in ten minutes" works as written: the example device list
imports, the rule file of the README checks with it, and a scenario over it passes."""

import json
import re
from pathlib import Path

from cep.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Your own home in ten minutes")
    return text[start:text.index("\n## ", start + 1)]


def test_the_readme_home_imports_checks_and_tests(tmp_path, capsys):
    section = _section()
    (rules,) = re.findall(r"```sql\n(.*?)```", section, re.S)
    devices = tmp_path / "devices.epl"
    assert main(["import", "zigbee2mqtt", str(ROOT / "docs/examples/zigbee2mqtt-devices.json"),
                 "--out", str(devices)]) == 0
    (tmp_path / "my-home.epl").write_text(rules, encoding="utf-8")
    capsys.readouterr()
    assert main(["check", str(devices), str(tmp_path / "my-home.epl")]) == 0
    out, err = capsys.readouterr()
    assert err.strip().endswith("0 errors, 1 warning")
    assert "HallLight is declared but no rule or context reads it" in out
    line = {"ts": "2026-12-05T18:05:00+01:00", "topic": "zigbee2mqtt/Front Door",
            "payload": {"contact": False, "battery": 97}}
    motion = {"ts": "2026-12-05T18:05:40+01:00", "topic": "zigbee2mqtt/Hall Motion",
              "payload": {"occupancy": True, "illuminance_lux": 12}}
    (tmp_path / "trace.jsonl").write_text(json.dumps(line) + "\n" + json.dumps(motion) + "\n")
    (tmp_path / "scenario.toml").write_text('rules = ["devices.epl", "my-home.epl"]\n'
                                            'trace = "trace.jsonl"\n'
                                            'expected = "expected.jsonl"\n')
    (tmp_path / "expected.jsonl").write_text("")
    assert main(["test", "--update", str(tmp_path / "scenario.toml")]) == 0
    written = [json.loads(x) for x in (tmp_path / "expected.jsonl").read_text().splitlines()]
    assert [(o["rule"], o["topic"], o["payload"]) for o in written] == [
        ("door_opened", "home/notify", {"text": "the front door opened"}),
        ("hall_light", "zigbee2mqtt/Hall Light/set", {"state": "ON"})]
    assert main(["test", str(tmp_path / "scenario.toml")]) == 0
