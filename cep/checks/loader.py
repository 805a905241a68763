"""Loading a rule set: files and folders → parsed files → checked catalog."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cep.checks import Catalog, check
from cep.language import ast
from cep.language.diagnostics import Diagnostics, RuleError, SourceMap
from cep.language.parser import parse_text, without_cycle_collection
from cep.language.sources import BadEncoding, decode


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


def load_texts(texts: list[tuple[str, str]],
               bad: dict[str, BadEncoding] | None = None) -> LoadedRules:
    """Parse and check rule texts given as (path, text) pairs; `bad` says where a file read
    from bytes stopped being UTF-8: that file is refused whole (an error at its first bad
    byte, and none of its statements read)."""
    loaded = LoadedRules()
    for path, text in texts:
        loaded.sources.add(path, text)
        problem = (bad or {}).get(path)
        if problem is not None:
            loaded.diagnostics.error(problem.message, ast.Span(path, problem.line, problem.col,
                                                               problem.line, problem.col + 1))
            loaded.files.append(ast.RuleFile(path, (), ast.Span(path, 1, 1, 1, 1)))
            continue
        loaded.files.append(parse_text(text, path, loaded.diagnostics))
    with without_cycle_collection():  # the checks make no reference cycles either
        loaded.catalog = check(loaded.files, loaded.diagnostics)
    return loaded


def read_rule_file(path: str) -> tuple[str, BadEncoding | None]:
    """A rule file's text (raises OSError for an unreadable one), and where it is not UTF-8."""
    with open(path, "rb") as handle:
        return decode(handle.read())


def load_paths(paths: list[str]) -> LoadedRules:
    """Read files (raises OSError for an unreadable one), parse and check them. A file that
    is not UTF-8 is refused, with an error at its first bad byte."""
    texts: list[tuple[str, str]] = []
    bad: dict[str, BadEncoding] = {}
    for path in expand_paths(paths):
        text, problem = read_rule_file(path)
        texts.append((path, text))
        if problem is not None:
            bad[path] = problem
    return load_texts(texts, bad)
