"""Checking large rule sets: `python -m bench check [--rules N] [--repeat R] [--form F]`.

Generates a rule file of N rules (default 10,000), each over its own event type (so 2N
statements, plus a partitioned context per 100 rules), in four kinds taking turns: a
filtered stream with a PUBLISH payload, a pattern with tags and `timer:within`, an
INSERT INTO whose derived type the next rule reads, and a rule in a partitioned context.
Then times `python -m cep check FILE` as a whole process (start-up included, with compiled
modules kept as in an installed cep; the best and the median of R runs), and splits one
in-process run into its phases.

Forms: `lines` (one statement per line), `one-line` (the whole file on one line),
`errors` (like `lines`, but every rule misspells its event type: N errors, each with a
"did you mean"). Numbers, not pass/fail: docs/performance.md ("Checking large rule
sets") keeps recorded results.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

FORMS = ("lines", "one-line", "errors")


def rule_set(count: int, form: str = "lines") -> str:
    """The text of a rule set of `count` rules in `form` (see the module docstring)."""
    statements: list[str] = []
    for i in range(count):
        read = f"Ex{i}" if form == "errors" else f"E{i}"
        statements.append(f"CREATE EVENT E{i} (room STRING, value FLOAT, on BOOL) "
                          f"FROM TOPIC 'home/{{room}}/sensor{i}'")
        kind = i % 4
        if kind == 0:
            statements.append(
                f"@name('r{i}') SELECT room, value * 2 AS double FROM {read}(value > {i % 50} "
                f"AND on = true) PUBLISH 'out/{{room}}/{i}' PAYLOAD {{\"v\": double}} QOS 1")
        elif kind == 1:
            statements.append(
                f"@name('r{i}') SELECT a.room AS room, b.value - a.value AS rise "
                f"FROM PATTERN [every a={read}(value > 20) -> b={read}(room = a.room AND "
                f"value > a.value) where timer:within(10 min)]")
        elif kind == 2:
            statements.append(f"@name('r{i}') INSERT INTO D{i} SELECT room, value "
                              f"FROM {read}(value BETWEEN 5 AND 30)")
            statements.append(f"@name('r{i}d') SELECT room, max(value, 10) AS level FROM D{i} "
                              f"WHERE room LIKE 'k%' PUBLISH 'alert/{{room}}'")
        else:
            if i % 100 == 3:
                statements.append(f"CREATE CONTEXT P{i // 100} PARTITION BY room")
            statements.append(f"@name('r{i}') CONTEXT P{i // 100} SELECT context.key AS room, "
                              f"value FROM {read} WHERE value > 1.5")
    separator = " " if form == "one-line" else "\n"
    return separator.join(statement + ";" for statement in statements) + "\n"


def time_process(path: str, repeat: int,
                 env: dict[str, str]) -> tuple[list[float], list[float], int]:
    """Wall and CPU seconds (user + system: what other work on the machine disturbs less)
    of each run of `python -m cep check path` (output discarded), and its exit status."""
    walls: list[float] = []
    cpus: list[float] = []
    status = 0
    for _ in range(repeat):
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "cep", "check", path], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, code, usage = os.wait4(child.pid, 0)
        walls.append(time.perf_counter() - started)
        cpus.append(usage.ru_utime + usage.ru_stime)
        child.returncode = status = os.waitstatus_to_exitcode(code)
    return walls, cpus, status


def installed_like(folder: str) -> dict[str, str]:
    """The environment for the timed processes: compiled modules kept (in `folder`, not in
    the checkout), as in an installed cep, even where PYTHONDONTWRITEBYTECODE is set; and
    the parser's tables cached as usual. A first run fills both."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(folder, "pycache")
    warm = os.path.join(folder, "warm.epl")
    with open(warm, "w", encoding="utf-8") as out:
        out.write(rule_set(4))
    time_process(warm, 1, env)
    return env


def phases(path: str) -> dict[str, float]:
    """Seconds of each phase of one in-process check: read, cut, parse, AST, checks."""
    from cep.checks import check
    from cep.checks.loader import read_rule_file
    from cep.language import ast
    from cep.language.diagnostics import Diagnostics
    from cep.language.parser import (
        lark_parser,
        parse_tree,
        split_statements,
        too_deep,
        without_cycle_collection,
    )
    from cep.language.sources import normalise
    from cep.language.transformer import ToAst

    lark_parser()  # loaded (from the cache) before the clock starts, as at start-up
    clock = time.perf_counter()
    spent: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        spent[name] = now - clock
        clock = now

    with without_cycle_collection():  # as `cep check` runs them
        text, _ = read_rule_file(path)
        text = normalise(text)
        lap("read")
        chunks, _ = split_statements(text)
        lap("cut into statements")
        trees = [parse_tree(chunk) for chunk in chunks]
        lap("parse (Lark)")
        diagnostics = Diagnostics()
        to_ast = ToAst(path, diagnostics)
        statements = [to_ast.transform(tree, chunk.line, chunk.col)
                      for tree, chunk in zip(trees, chunks) if too_deep(tree) is None]
        lap("nesting + AST")
        del trees
        check([ast.RuleFile(path, tuple(statements), ast.NO_SPAN)], diagnostics)
        lap("checks")
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=10_000, help="rules (default 10,000)")
    parser.add_argument("--repeat", type=int, default=3, help="process runs (default 3)")
    parser.add_argument("--form", choices=(*FORMS, "all"), default="all",
                        help="which rule file (default: all three)")
    args = parser.parse_args(argv)
    forms = FORMS if args.form == "all" else (args.form,)
    with tempfile.TemporaryDirectory() as folder:
        env = installed_like(folder)
        for form in forms:
            path = os.path.join(folder, f"{form}.epl")
            text = rule_set(args.rules, form)
            with open(path, "w", encoding="utf-8") as out:
                out.write(text)
            statements = text.count(";")
            walls, cpus, status = time_process(path, args.repeat, env)
            print(f"{form}: {args.rules:,} rules, {statements:,} statements, "
                  f"{len(text) / 1e6:.1f} MB")
            print(f"  cep check  wall best {min(walls):6.2f} s, median "
                  f"{statistics.median(walls):6.2f} s; CPU best {min(cpus):6.2f} s, median "
                  f"{statistics.median(cpus):6.2f} s  (exit {status}, {args.repeat} runs)")
            split = phases(path)
            total = sum(split.values())
            print("  in-process " + ", ".join(f"{name} {seconds:.2f} s"
                                              for name, seconds in split.items())
                  + f" (total {total:.2f} s)")
    return 0
