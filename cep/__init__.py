"""cep: a complex event processing engine for smart homes, fed by MQTT.

The package is the pipeline, one subpackage per stage, each importing only the stages
below it: `language` (rule text to AST) ← `checks` (AST to a checked catalog) ←
`runtime` (the engine) ← `adapters` (MQTT, traces, replay and live drivers) ←
`tools` (scenarios, graphs, dataset importers, the terminal view) ← `cli`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"


def _adapters_from_checkout() -> None:
    """In a source checkout the adapters live in the top-level `adapters/` folder; an
    installed wheel carries them as `cep/adapters/`. Either way they import as
    `cep.adapters`: here the checkout's folder is registered under that name."""
    here = Path(__file__).resolve().parent
    folder = here.parent / "adapters"
    if (here / "adapters").is_dir() or not (folder / "__init__.py").is_file():
        return
    spec = importlib.util.spec_from_file_location(
        "cep.adapters", folder / "__init__.py", submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["cep.adapters"] = module
    spec.loader.exec_module(module)
    globals()["adapters"] = module  # what the import system does for a found subpackage


_adapters_from_checkout()
