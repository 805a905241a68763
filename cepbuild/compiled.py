"""The compiled build: with CEP_COMPILE=1, `pip install .` compiles the engine's hot modules
with mypyc (setup.py calls `extensions`).  Everything else, and the default build, is pure
Python; both give the same output (CI runs the replay goldens, the scenarios and the
pattern-semantics tests against the compiled build).

The modules are compiled as the package installs (`cep.adapters` is the top-level
`adapters/` folder of the checkout): a copy of the sources in that layout is made under
build/, as `.ci/typecheck` does for mypy.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / "build" / "mypyc-stage"   # the sources in the installed layout
TARGET = ROOT / "build" / "mypyc-c"      # the C code mypyc writes

# What runs for every event or line of a replay (and what it calls); not the parser, the
# checks or the tools.  A class of a module left out may not inherit from one compiled
# here (mypyc refuses at run time: "interpreted classes cannot inherit from compiled"), so
# timer_at.py, whose states are the matcher's, is in (tests/test_compiled_build.py checks
# this).  cep.runtime.recurrence is left out: mypyc (1.x to 2.4) writes C that does not
# compile for its iterator class, and it runs once a day of event time.
COMPILED = [
    "cep/runtime/aggregates.py",
    "cep/runtime/agents.py",
    "cep/runtime/changes.py",
    "cep/runtime/clock.py",
    "cep/runtime/contexts.py",
    "cep/runtime/convert.py",
    "cep/runtime/engine.py",
    "cep/runtime/events.py",
    "cep/runtime/every_then.py",
    "cep/runtime/expressions.py",
    "cep/runtime/faults.py",
    "cep/runtime/instances.py",
    "cep/runtime/lasting.py",
    "cep/runtime/like.py",
    "cep/runtime/limits.py",
    "cep/runtime/matcher.py",
    "cep/runtime/named_windows.py",
    "cep/runtime/output.py",
    "cep/runtime/pattern_compiler.py",
    "cep/runtime/positions.py",
    "cep/runtime/rate.py",
    "cep/runtime/screen.py",
    "cep/runtime/snapshot.py",
    "cep/runtime/timer_at.py",
    "cep/runtime/windows.py",
    "cep/adapters/badmessages.py",
    "cep/adapters/bus.py",
    "cep/adapters/fused.py",
    "cep/adapters/isotimes.py",
    "cep/adapters/jsonlib.py",
    "cep/adapters/payload.py",
    "cep/adapters/replay.py",
    "cep/adapters/trace.py",
]


BUILDING = {"bdist_wheel", "build_ext", "build", "install"}  # setup.py commands that compile


def stage_sources() -> Path:
    """A fresh copy of cep/ with adapters/ as cep/adapters/, under build/."""
    if STAGE.exists():
        shutil.rmtree(STAGE)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc")
    shutil.copytree(ROOT / "cep", STAGE / "cep", ignore=ignore)
    shutil.copytree(ROOT / "adapters", STAGE / "cep" / "adapters", ignore=ignore)
    return STAGE


def extensions() -> list[Any]:
    """The extension modules of the compiled build (mypyc's, one shared library `cep__mypyc`
    with a module per compiled file)."""
    if "editable_wheel" in sys.argv:
        raise SystemExit("CEP_COMPILE=1 builds a wheel: use `pip install .`, not `-e`")
    try:
        from mypyc.build import mypycify
    except ImportError:
        if not BUILDING & set(sys.argv):  # (asked what the build needs: mypy comes next)
            return []
        raise SystemExit("CEP_COMPILE=1 needs mypy (which carries mypyc): "
                         "pip install mypy, or let pip's build isolation install it") from None
    stage = stage_sources()
    paths = [str(stage / module) for module in COMPILED]
    options = ["--config-file", str(ROOT / "pyproject.toml"),
               "--cache-dir", str(ROOT / "build" / "mypyc-cache")]
    return list(mypycify([*options, *paths], opt_level="3", group_name="cep",
                         target_dir=str(TARGET)))
