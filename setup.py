"""Everything about the package is in pyproject.toml; this file only adds the compiled
build's extension modules when CEP_COMPILE=1 (cepbuild/compiled.py)."""

import os
import sys

from setuptools import setup

if os.environ.get("CEP_COMPILE", "") == "1":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cepbuild.compiled import extensions

    setup(ext_modules=extensions())
else:
    setup()
