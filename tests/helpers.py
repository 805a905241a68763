"""Small helpers shared by the tests."""

from __future__ import annotations

from cep.loader import LoadedRules, load_texts

PRELUDE = """
CREATE EVENT A (x INT, s STRING, f FLOAT, b BOOL, t TIMESTAMP) FROM TOPIC 'home/{s}/a';
CREATE EVENT B (v FLOAT, s STRING) FROM TOPIC 'home/b';
"""


def load(text: str, path: str = "test.epl") -> LoadedRules:
    return load_texts([(path, text)])


def diagnostics_text(loaded: LoadedRules) -> list[str]:
    """`line:col: severity: message` for every diagnostic, in file order."""
    return [f"{d.span.line}:{d.span.col}: {d.severity}: {d.message}"
            for d in loaded.diagnostics.sorted()]
