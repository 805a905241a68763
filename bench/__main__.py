"""`python -m bench COMMAND [options]`: see the package docstring, or `--help`."""

from __future__ import annotations

import importlib
import sys

import bench

COMMANDS = {
    "engine": ("bench.engine", "main"),
    "ab": ("bench.ab", "main"),
    "memory": ("bench.ab", "memory_main"),
    "memory-keys": ("bench.keys", "main"),
    "windowed": ("bench.windowed", "main"),
    "mqtt": ("bench.mqtt", "main"),
    "state": ("bench.state", "main"),
    "view": ("bench.view", "main"),
    "check": ("bench.check", "main"),
    "cluster": ("bench.cluster", "main"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(bench.__doc__)
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module, function = COMMANDS[argv[0]]
    return int(getattr(importlib.import_module(module), function)(argv[1:]))


raise SystemExit(main(sys.argv[1:]))
