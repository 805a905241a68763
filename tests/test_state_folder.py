"""The state folder's files (adapters/state.py): checkpoints whole or refused, journals read
to the last whole line, and every refusal saying what is wrong and how to go on."""

from __future__ import annotations

import json

import pytest

from cep.adapters.state import (
    CHECKPOINT,
    StateError,
    StateFolder,
    read_journal,
    rules_fingerprint,
)
from cep.checks.loader import load_texts

RULES = "CREATE EVENT A (x INT) FROM TOPIC 'a';\n@name('r') SELECT x FROM A;\n"


def folder(tmp_path, fingerprint="f1"):
    return StateFolder(tmp_path / "state", fingerprint, ["home.epl"])


def written(tmp_path, body=None):
    state = folder(tmp_path)
    state.lock()
    state.checkpoint(body or {"engine": {"started": False}, "outputs": 3}, 1_700_000_000.0)
    return state


def test_a_checkpoint_reads_back_with_its_journal(tmp_path):
    state = written(tmp_path)
    journal = state.journal
    assert journal is not None
    journal.message(1.5, "home/a", b'{"x": 1}', 1, False, 7, False)
    journal.message(2.5, "home/b", b"\xff\xfe", 0, True, 0, False)  # not UTF-8
    journal.printed(3)
    journal.acknowledged(3)
    state.release()
    again = folder(tmp_path)
    again.lock()
    saved = again.load()
    assert saved is not None
    assert saved.body == {"engine": {"started": False}, "outputs": 3}
    assert saved.written == 1_700_000_000.0
    messages = saved.journal.messages
    assert [(m.ts, m.topic, m.payload, m.qos, m.retain, m.mid) for m in messages] == [
        (1.5, "home/a", b'{"x": 1}', 1, False, 7), (2.5, "home/b", b"\xff\xfe", 0, True, 0)]
    assert saved.journal.printed == 3 and saved.journal.acknowledged == {3}
    assert not saved.journal.torn


def test_a_new_checkpoint_starts_a_new_journal_and_drops_the_old(tmp_path):
    state = written(tmp_path)
    first = state.journal.path
    state.journal.printed(0)
    state.checkpoint({"engine": {}, "outputs": 1}, 1_700_000_001.0)
    assert not first.exists()
    assert state.journal.path != first and state.journal.path.read_bytes() == b""
    header = json.loads((tmp_path / "state" / CHECKPOINT).read_text().splitlines()[0])
    assert header["generation"] == 2 and header["format"] == "cep-state"


def test_a_cut_off_last_line_is_noted_not_fatal(tmp_path):
    state = written(tmp_path)
    state.journal.printed(0)
    state.release()
    path = next((tmp_path / "state").glob("journal-*.jsonl"))
    with open(path, "ab") as out:
        out.write(b'{"m": [1.0, "a", "x"')  # a write cut off by the kill
    journal = read_journal(path)
    assert journal.torn and journal.printed == 0


def test_a_damaged_journal_line_is_refused_with_what_is_lost(tmp_path):
    state = written(tmp_path)
    for n in range(4):
        state.journal.printed(n)
        state.journal.flush()
    state.release()
    path = next((tmp_path / "state").glob("journal-*.jsonl"))
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"p":1', b'"p":7')  # its checksum no longer matches
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(StateError) as caught:
        read_journal(path)
    assert str(caught.value) == (f"{path}:2: the journal is damaged (checksum mismatch); 2 "
                                 f"later entries and this one cannot be trusted")


@pytest.mark.parametrize("edit,words", [
    (lambda h, b: ({**h, "version": 99}, b), "was written in state format version 99, this "
                                             "cep reads version 1"),
    (lambda h, b: ({**h, "format": "other"}, b), "is not a cep state file"),
    (lambda h, b: (h, b[:-5] + b"0000}"), "damaged: its content does not match its checksum"),
    (lambda h, b: ({**h, "rules": "f2"}, b), "was written by another rule set (home.epl, "
                                             "fingerprint f2), not by these rules"),
])
def test_a_checkpoint_that_does_not_fit_is_refused(tmp_path, edit, words):
    written(tmp_path).release()
    path = tmp_path / "state" / CHECKPOINT
    head, body = path.read_bytes().split(b"\n")[:2]
    header, body = edit(json.loads(head), body)
    path.write_bytes(json.dumps(header).encode() + b"\n" + body + b"\n")
    state = folder(tmp_path)
    state.lock()
    with pytest.raises(StateError) as caught:
        state.load()
    assert words in str(caught.value)
    assert "--fresh" in str(caught.value)


def test_a_journal_without_its_checkpoint_is_refused(tmp_path):
    written(tmp_path).release()
    (tmp_path / "state" / CHECKPOINT).unlink()
    state = folder(tmp_path)
    state.lock()
    with pytest.raises(StateError, match="a journal without its checkpoint"):
        state.load()


def test_the_lock_keeps_a_second_user_out(tmp_path):
    first = folder(tmp_path)
    first.lock()
    second = folder(tmp_path)
    with pytest.raises(StateError, match="is in use by another cep"):
        second.lock()
    first.release()
    second.lock()  # free again once the first lets go
    second.release()


def test_fresh_clears_the_folder(tmp_path):
    state = written(tmp_path)
    state.clear()
    assert state.load() is None


def test_the_fingerprint_follows_the_rules_not_their_layout():
    def fingerprint(text):
        loaded = load_texts([("home.epl", text)])
        assert loaded.ok
        return rules_fingerprint(loaded.files)

    same = fingerprint(RULES)
    assert fingerprint("-- a comment\n" + RULES.replace(";", " ;")) == same
    assert fingerprint(RULES.replace("SELECT x", "SELECT x + 1 AS x")) != same


def test_an_integer_beyond_64_bits_reads_back_exactly(tmp_path):
    state = written(tmp_path, {"engine": {"big": 2**70}, "outputs": 0})
    state.release()
    again = folder(tmp_path)
    again.lock()
    saved = again.load()
    assert saved is not None and saved.body["engine"]["big"] == 2**70
