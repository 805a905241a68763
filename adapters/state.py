"""The state folder of a live run (`cep run --state DIR`): a checkpoint and a journal.

    DIR/lock                 held (flock) by the one process using the folder
    DIR/checkpoint.json      the last checkpoint: a header line, then the body line
    DIR/journal-G.jsonl      what happened since checkpoint G was written

The checkpoint's header says what wrote it and how to check the body:
`{"format": "cep-state", "version": 1, "rules": FINGERPRINT, "rule_files": [...],
"generation": G, "written": UNIX_TIME, "sha256": HEX, "bytes": N}`; the body is one JSON
object: `engine` (cep.runtime.snapshot), `outputs` (the number of the next output),
`pending` (outputs made before the checkpoint whose action the broker had not yet
acknowledged: sent again at start-up), `recent` (keys of the last messages taken in,
to know a redelivered one) and `record_at` (the size of the --record trace at the
checkpoint).  It is written to a temporary file, synced and renamed over the old one:
a checkpoint is whole or absent, never half written.

The journal holds one entry per line, each followed by a space and the CRC-32 of the
entry's text (8 hex digits): `{"m": [ts, topic, payload, qos, retain, mid, dup]}` for a
message taken in (payload as text, or `{"b64": ...}` when not UTF-8), `{"p": n}` when
output n has been written out and `{"a": n}` when the broker acknowledged output n's
action.  Messages are appended and synced *before* the broker gets their acknowledgement
(see adapters/live.py), so a message is in the journal or still the broker's.  A new
checkpoint starts journal G+1; the old one is removed only after the new checkpoint is
in place, so a stop at any instant leaves one checkpoint and its journal.

Nothing in the folder is code: it is read as JSON data and checked (the fingerprint of
the rules that wrote it, the format version, the checksums) before it is used.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import socket
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cep.adapters.jsonlib import dumps_compact, loads
from cep.language import ast
from cep.language.parser import without_cycle_collection
from cep.language.printer import format_file
from cep.runtime.snapshot import FORMAT, VERSION

CHECKPOINT = "checkpoint.json"
LOCK = "lock"

Json = Any


class StateError(Exception):
    """The state folder cannot be used as it is (in use, another rule set, damaged): the
    message says what is wrong and what to do."""


def rules_fingerprint(files: Iterable[ast.RuleFile]) -> str:
    """The rule set as the engine compiles it (comments and layout do not count)."""
    digest = hashlib.sha256()
    for rule_file in files:
        digest.update(format_file(rule_file).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _user_state_home() -> Path:
    home = os.environ.get("XDG_STATE_HOME")
    return Path(home) if home else Path.home() / ".local" / "state"


def default_state_dir(client_id: str) -> Path:
    """`$XDG_STATE_HOME/cep/CLIENT_ID` (`~/.local/state/cep/...` when it is not set)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", client_id) or "cep"
    return _user_state_home() / "cep" / safe


def stable_client_id(anchor: str) -> str:
    """`cep-HOST-XXXXXXXX`: the same for the same host and `anchor` (the state folder, or
    the rule files), so that a restarted run finds its broker session again."""
    digest = hashlib.sha256(f"{socket.gethostname()}\0{anchor}".encode()).hexdigest()[:8]
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:20] or "host"
    return f"cep-{host}-{digest}"


def _crc(text: str) -> str:
    return f"{zlib.crc32(text.encode('utf-8')):08x}"


def payload_data(payload: bytes) -> Json:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(payload).decode("ascii")}


def payload_bytes(data: Json) -> bytes:
    if type(data) is str:
        return data.encode("utf-8")
    if type(data) is dict and type(data.get("b64")) is str:
        return base64.b64decode(data["b64"], validate=True)
    raise ValueError("not a saved payload")


@dataclass
class JournalMessage:
    ts: float
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    dup: bool


@dataclass
class Journal:
    """What a journal held: the messages in order, the outputs written and acknowledged."""

    messages: list[JournalMessage] = field(default_factory=list)
    printed: int = -1  # outputs up to this number were written out (they go in order)
    acknowledged: set[int] = field(default_factory=set)
    torn: bool = False  # the last line was cut off (a stop while writing it): not used


@dataclass
class Saved:
    """A checkpoint and its journal, read and checked."""

    header: dict[str, Json]
    body: dict[str, Json]
    journal: Journal

    @property
    def written(self) -> float:
        return float(self.header.get("written", 0.0))


class JournalWriter:
    """Appends entries, each handed to the OS as it is written (a killed process loses
    none), but for the `printed` note, which waits for the next entry or `flush()` (a
    kill may lose the last one: those lines are then written again); `sync()` takes
    everything to the disk (a power cut loses nothing synced).  `acknowledged` may come
    from another thread (paho's) than the rest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: IO[bytes] = open(path, "ab", buffering=0)
        self._printed = -1  # the last output written out ...
        self._noted = -1    # ... and the last one the journal says so of
        self.entries = 0

    def _line(self, entry: Json) -> bytes:
        try:
            text = dumps_compact(entry)
        except TypeError:  # (an integer beyond orjson's 64 bits)
            text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False).encode("utf-8")
        self.entries += 1
        return b"%s %08x\n" % (text, zlib.crc32(text))

    def _write(self, data: bytes) -> None:
        try:
            self._out.write(data)
        except OSError as exc:
            raise StateError(f"cannot write the journal {self.path}: {exc.strerror}; what "
                             f"was not journaled was not acknowledged either, so the broker "
                             f"still has it: make room and start cep again") from exc

    def _note(self) -> bytes:
        """The `printed` entry, when outputs were written since the last one."""
        if self._printed == self._noted:
            return b""
        self._noted = self._printed
        return self._line({"p": self._printed})

    def message(self, ts: float, topic: str, payload: bytes, qos: int, retain: bool,
                mid: int, dup: bool) -> None:
        line = self._line({"m": [ts, topic, payload_data(payload), qos, retain, mid, dup]})
        self._write(self._note() + line)

    def printed(self, number: int) -> None:
        """Outputs up to `number` are written out (noted with the next entry or flush)."""
        self._printed = number

    def acknowledged(self, number: int) -> None:
        self._write(self._line({"a": number}))

    def flush(self) -> None:
        """The `printed` note to the OS."""
        note = self._note()
        if note:
            self._write(note)

    def sync(self) -> None:
        self.flush()
        try:
            os.fsync(self._out.fileno())
        except OSError as exc:
            raise StateError(f"cannot write the journal {self.path}: {exc.strerror}; what "
                             f"was not journaled was not acknowledged either, so the broker "
                             f"still has it: make room and start cep again") from exc

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._out.close()


def _journal_path(folder: Path, generation: int) -> Path:
    return folder / f"journal-{generation}.jsonl"


def read_journal(path: Path) -> Journal:
    """A journal's entries; raises StateError at a damaged line (but a cut-off last line,
    which a stop while writing leaves, is only noted: it was never acknowledged)."""
    journal = Journal()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return journal
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from exc
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:  # no newline at the end: the last write was cut off
        lines.pop()
        journal.torn = True
    for number, raw in enumerate(lines, 1):
        try:
            text, crc = raw.decode("utf-8").rsplit(" ", 1)
            if _crc(text) != crc:
                raise ValueError("checksum")
            entry = json.loads(text)
            _take_entry(journal, entry)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            left = len(lines) - number
            raise StateError(
                f"{path}:{number}: the journal is damaged ({_why(exc)}); {left} later "
                f"entr{'y' if left == 1 else 'ies'} and this one cannot be trusted") from None
    return journal


def _why(exc: BaseException) -> str:
    return "checksum mismatch" if str(exc) == "checksum" else "not a journal entry"


def _take_entry(journal: Journal, entry: Json) -> None:
    if type(entry) is not dict or len(entry) != 1:
        raise ValueError("entry")
    ((kind, body),) = entry.items()
    if kind == "m":
        ts, topic, payload, qos, retain, mid, dup = body
        if type(topic) is not str or type(qos) is not int or type(mid) is not int:
            raise ValueError("entry")
        journal.messages.append(JournalMessage(float(ts), topic, payload_bytes(payload), qos,
                                               bool(retain), mid, bool(dup)))
    elif kind == "p" and type(body) is int:
        journal.printed = max(journal.printed, body)
    elif kind == "a" and type(body) is int:
        journal.acknowledged.add(body)
    else:
        raise ValueError("entry")


class StateFolder:
    """One live run's state folder: see the module docstring."""

    def __init__(self, path: Path, fingerprint: str, rule_files: list[str]) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.rule_files = rule_files
        self.generation = 0
        self.journal: JournalWriter | None = None
        self._lock: IO[str] | None = None

    # ---------------------------------------------------------------- the lock
    def lock(self) -> None:
        """Take the folder for this process; StateError when another one has it."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle = open(self.path / LOCK, "a+", encoding="utf-8")
        except OSError as exc:
            raise StateError(f"cannot use the state folder {self.path}: "
                             f"{exc.strerror}") from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise StateError(f"the state folder {self.path} is in use by another cep "
                             f"(process {holder}): one run per state folder; give this one "
                             f"its own with --state DIR") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def release(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self._lock is not None:
            self._lock.close()  # (closing drops the flock)
            self._lock = None

    # ---------------------------------------------------------------- reading
    def clear(self) -> None:
        """`--fresh`: forget what the folder holds."""
        for item in self.path.iterdir():
            if item.name == CHECKPOINT or re.fullmatch(r"journal-\d+\.jsonl", item.name) \
                    or item.name.endswith(".tmp"):
                item.unlink()

    def load(self) -> Saved | None:
        """The checkpoint and its journal, checked; None for an empty folder."""
        path = self.path / CHECKPOINT
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if any(re.fullmatch(r"journal-\d+\.jsonl", p.name) for p in self.path.iterdir()):
                raise StateError(f"{self.path}: a journal without its checkpoint (removed?): "
                                 f"the state cannot be rebuilt; {FRESH_HINT}") from None
            return None
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc.strerror}") from exc
        header, body = self._checked(path, data)
        self.generation = header["generation"]
        journal = read_journal(_journal_path(self.path, self.generation))
        return Saved(header, body, journal)

    def _checked(self, path: Path, data: bytes) -> tuple[dict[str, Json], dict[str, Json]]:
        head, _, rest = data.partition(b"\n")
        try:
            header = json.loads(head)
            assert type(header) is dict
        except (ValueError, AssertionError):
            raise StateError(f"{path}: damaged: its first line is not a checkpoint header; "
                             f"{FRESH_HINT}") from None
        if header.get("format") != FORMAT:
            raise StateError(f"{path} is not a cep state file; {FRESH_HINT}")
        if header.get("version") != VERSION:
            raise StateError(f"{path} was written in state format version "
                             f"{header.get('version')}, this cep reads version {VERSION}; "
                             f"{FRESH_HINT}")
        if header.get("rules") != self.fingerprint:
            files = ", ".join(map(str, header.get("rule_files") or [])) or "?"
            raise StateError(
                f"{path} was written by another rule set ({files}, fingerprint "
                f"{header.get('rules')}), not by these rules ({', '.join(self.rule_files)}, "
                f"fingerprint {self.fingerprint}); the state of one rule set cannot run "
                f"another. Use --state DIR for a folder of this rule set's own, or "
                f"--fresh to start this folder empty (its saved state is then lost)")
        body_bytes = rest.rstrip(b"\n")
        if type(header.get("generation")) is not int or \
                hashlib.sha256(body_bytes).hexdigest() != header.get("sha256"):
            raise StateError(f"{path}: damaged: its content does not match its checksum "
                             f"({len(body_bytes):,} of {header.get('bytes', '?')} bytes); "
                             f"the saved state is lost; {FRESH_HINT}")
        try:
            with without_cycle_collection():
                body = json.loads(body_bytes) if header.get("codec") == "json" \
                    else loads(body_bytes)
            assert type(body) is dict
        except (ValueError, AssertionError):
            raise StateError(f"{path}: damaged: not JSON; {FRESH_HINT}") from None
        return header, body

    # ---------------------------------------------------------------- writing
    def checkpoint(self, body: dict[str, Json], now: float) -> int:
        """Write a checkpoint (atomically) and start its journal; returns its size."""
        codec = None
        try:
            text = dumps_compact(body)
        except TypeError:  # orjson's: an integer beyond 64 bits, which it would read as a float
            codec = "json"
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False).encode("utf-8")
        generation = self.generation + 1
        header = {"format": FORMAT, "version": VERSION, "rules": self.fingerprint,
                  "rule_files": self.rule_files, "generation": generation,
                  "written": now, "sha256": hashlib.sha256(text).hexdigest(),
                  "bytes": len(text)}
        if codec is not None:
            header["codec"] = codec  # (read back with the standard library, exactly)
        head = json.dumps(header, ensure_ascii=False).encode("utf-8")
        new_journal = _journal_path(self.path, generation)
        tmp = self.path / (CHECKPOINT + ".tmp")
        try:
            new_journal.write_bytes(b"")  # (empty, before the checkpoint that names it)
            with open(tmp, "wb") as out:
                out.write(head + b"\n" + text + b"\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path / CHECKPOINT)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StateError(f"cannot write a checkpoint into {self.path}: {exc.strerror}; "
                             f"the last checkpoint and its journal are still there (what "
                             f"was not journaled was not acknowledged): make room and start "
                             f"cep again") from exc
        _sync_dir(self.path)
        old = self.generation
        if self.journal is not None:
            self.journal.close()
        self.generation = generation
        self.journal = JournalWriter(new_journal)
        if old != generation:
            _journal_path(self.path, old).unlink(missing_ok=True)
        return len(head) + len(text) + 2

    def open_journal(self) -> JournalWriter:
        """Append to the loaded checkpoint's journal (after recovery, until the next
        checkpoint)."""
        if self.journal is None:
            self.journal = JournalWriter(_journal_path(self.path, self.generation))
        return self.journal


FRESH_HINT = "--fresh starts this state folder empty (what it holds is then lost)"


def _sync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
