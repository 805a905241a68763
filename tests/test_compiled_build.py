"""The compiled build's module list (cepbuild/compiled.py) and the default build.

mypyc compiles the modules of `COMPILED` to native classes; a class of a module left out
cannot inherit from one of them (the compiled build then fails at run time with
"interpreted classes cannot inherit from compiled"), so every such base must be compiled
too. The build itself is CI's (`.ci/run`); here, what can be known from the sources.
"""

import ast
import sys
from pathlib import Path

import pytest

from cep import __version__
from cep.cli import main
from cep.runtime import engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after the installed cep: the checkout's `cepbuild` only

from cepbuild import backend  # noqa: E402
from cepbuild.compiled import COMPILED  # noqa: E402


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "adapters":
        parts.insert(0, "cep")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def compiled_modules() -> set[str]:
    return {module_of(ROOT / path.replace("cep/adapters/", "adapters/")) for path in COMPILED}


def test_every_listed_module_exists():
    for path in COMPILED:
        assert (ROOT / path.replace("cep/adapters/", "adapters/")).is_file(), path


def interpreted_subclasses_of_compiled() -> list[str]:
    compiled = compiled_modules()
    found = []
    sources = [*(ROOT / "cep").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")]
    for path in sources:
        module = module_of(path)
        if module in compiled:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.asname or alias.name: node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module
                    for alias in node.names}
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for base in node.bases:
                if isinstance(base, ast.Subscript):
                    base = base.value
                if isinstance(base, ast.Name) and imported.get(base.id) in compiled:
                    found.append(f"{module}.{node.name}({base.id} of {imported[base.id]})")
    return found


def test_no_class_left_interpreted_inherits_from_a_compiled_one():
    assert interpreted_subclasses_of_compiled() == []


def test_the_check_finds_such_a_class(monkeypatch):
    listed = compiled_modules()
    monkeypatch.setattr(sys.modules[__name__], "compiled_modules",
                        lambda: listed - {"cep.runtime.timer_at"})
    assert "cep.runtime.timer_at.AtNode(Node of cep.runtime.matcher)" in \
        interpreted_subclasses_of_compiled()


def test_the_default_build_asks_for_no_compiler(monkeypatch):
    monkeypatch.delenv("CEP_COMPILE", raising=False)
    assert backend._compiling() == []
    monkeypatch.setenv("CEP_COMPILE", "1")
    assert any(requirement.startswith("mypy") for requirement in backend._compiling())


def test_version_names_the_build(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    build = "pure Python" if engine.__file__.endswith(".py") else "compiled with mypyc"
    assert capsys.readouterr().out == f"cep {__version__} ({build})\n"
