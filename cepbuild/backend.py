"""The build backend: setuptools', asking for more when the compiled build is asked for
with CEP_COMPILE=1 (see `cepbuild.compiled`): mypy, which carries mypyc, and what mypy
must see to check the modules it compiles as CI checks them (the project's dependencies
and their type stubs).

The default build is pure Python and needs neither mypy nor a C compiler.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (
    build_editable,
    build_sdist,
    build_wheel,
    get_requires_for_build_sdist,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]

MYPYC = ["mypy>=1.10", "types-python-dateutil"]  # mypyc comes with mypy


def compile_requested() -> bool:
    """CEP_COMPILE=1: build the compiled variant."""
    return os.environ.get("CEP_COMPILE", "") == "1"


def _compiling() -> list[str]:
    """What the compiled build needs beyond setuptools (nothing for the default one)."""
    if not compile_requested():
        return []
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml")
                            .read_text(encoding="utf-8"))["project"]
    return [*MYPYC, *project["dependencies"]]


def get_requires_for_build_wheel(config_settings: dict[str, object] | None = None) -> list[str]:
    return [*_setuptools.get_requires_for_build_wheel(config_settings), *_compiling()]


def get_requires_for_build_editable(config_settings: dict[str, object] | None = None
                                    ) -> list[str]:
    return [*_setuptools.get_requires_for_build_editable(config_settings), *_compiling()]
