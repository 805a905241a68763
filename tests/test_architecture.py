"""The package is the pipeline: imports point down the stages only, and no two modules
import each other, directly or around a loop (function-level and TYPE_CHECKING imports
count too). The graph is read from the source with `ast`, so nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first; a module may import its own stage and the stages before it.
STAGES = ["language", "checks", "runtime", "adapters", "tools", "cli"]
NO_SYMLINKS_UNDER = ["cep", "adapters", "grammar", "bench"]


def source_modules() -> dict[str, Path]:
    """Module name → file, for the package as it is installed (adapters as cep.adapters)."""
    modules: dict[str, Path] = {}
    for base, prefix in ((ROOT / "cep", ["cep"]), (ROOT / "adapters", ["cep", "adapters"])):
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(prefix + parts)] = path
    return modules


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that the module imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for target in targets:
            # `from cep.language import ast` imports the module cep.language.ast
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = source_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def stage_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the `cep` package itself
    if parts[1] == "__main__":
        return STAGES.index("cli")
    return STAGES.index(parts[1]) if parts[1] in STAGES else None


def test_every_module_belongs_to_a_stage():
    strays = [m for m in source_modules() if m != "cep" and stage_of(m) is None]
    assert strays == [], f"modules outside the stage packages: {strays}"


def test_imports_point_down_the_pipeline():
    upward = []
    for module, targets in import_graph().items():
        own = stage_of(module)
        for target in sorted(targets):
            theirs = stage_of(target)
            if own is not None and theirs is not None and theirs > own:
                upward.append(f"{module} ({STAGES[own]}) imports {target} ({STAGES[theirs]})")
    assert upward == []


def test_the_root_package_imports_no_stage():
    assert import_graph()["cep"] == set()


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycles():
    graph = import_graph()
    # A package's __init__ re-exporting its own modules is not a cycle of the design.
    for module in list(graph):
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
])
def test_the_cycle_finder_finds_cycles(graph, cycle):
    assert find_cycle(graph) == cycle


def test_the_stage_order_is_read_from_the_module_names():
    assert stage_of("cep.language.ast") < stage_of("cep.checks.rules") < \
        stage_of("cep.runtime.engine") < stage_of("cep.adapters.mqtt") < \
        stage_of("cep.tools.view.app") < stage_of("cep.cli.app")


def test_no_symlinks_in_the_source():
    links = [str(p.relative_to(ROOT)) for top in NO_SYMLINKS_UNDER
             for p in [ROOT / top, *(ROOT / top).rglob("*")] if p.is_symlink()]
    assert links == []


def test_each_stage_package_says_what_it_is():
    for stage in STAGES:
        init = (ROOT / "adapters" if stage == "adapters" else ROOT / "cep" / stage) / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 80, f"{init} needs a docstring saying what the stage does"
