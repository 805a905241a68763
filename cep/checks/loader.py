"""Loading a rule set: files and folders → parsed files → checked catalog."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cep.checks import Catalog, check
from cep.language import ast
from cep.language.diagnostics import Diagnostics, RuleError, SourceMap
from cep.language.parser import parse_text


@dataclass
class LoadedRules:
    """Everything known after loading: the files, the catalog and what was found wrong."""

    files: list[ast.RuleFile] = field(default_factory=list)
    catalog: Catalog = field(default_factory=Catalog)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    sources: SourceMap = field(default_factory=SourceMap)

    @property
    def ok(self) -> bool:
        return not self.diagnostics.has_errors()

    def raise_for_errors(self) -> None:
        if not self.ok:
            raise RuleError(self.diagnostics.sorted(), self.sources)


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given; folders become every `*.epl` inside (recursively), in name order."""
    result: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found: list[str] = []
            for root, _dirs, names in os.walk(path):
                found.extend(os.path.join(root, n) for n in names if n.endswith(".epl"))
            result.extend(sorted(found))
        else:
            result.append(path)
    return result


def load_texts(texts: list[tuple[str, str]]) -> LoadedRules:
    """Parse and check rule texts given as (path, text) pairs."""
    loaded = LoadedRules()
    for path, text in texts:
        loaded.sources.add(path, text)
        loaded.files.append(parse_text(text, path, loaded.diagnostics))
    loaded.catalog = check(loaded.files, loaded.diagnostics)
    return loaded


def load_paths(paths: list[str]) -> LoadedRules:
    """Read files (raises OSError for an unreadable one), parse and check them."""
    texts: list[tuple[str, str]] = []
    for path in expand_paths(paths):
        with open(path, encoding="utf-8") as handle:
            texts.append((path, handle.read()))
    return load_texts(texts)
