"""What homes already have, turned into cep's inputs (`cep import`; see docs/datasets.md).

Public smart-home datasets become traces: each importer reads its format line by line and
yields bus messages; bad lines are reported as FILE:LINE and counted, never fatal.
`write_trace` puts the messages in time order and writes them in the trace format of
docs/cli.md. `zigbee2mqtt` turns zigbee2mqtt's device list into a rule file of CREATE
EVENT declarations.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import tzinfo

from cep.tools.importers.common import ImportRefused, ImportStats, Message, Report, write_trace

FORMATS = ("casas", "ordonez")

__all__ = ["FORMATS", "ImportRefused", "ImportStats", "Message", "read", "write_trace"]


def read(fmt: str, path: str, tz: tzinfo, stats: ImportStats,
         report: Report) -> Iterator[Message]:
    """The messages of a dataset file in format `fmt` (casas or ordonez)."""
    if fmt == "casas":
        from cep.tools.importers.casas import read_casas

        return read_casas(path, tz, stats, report)
    if fmt == "ordonez":
        from cep.tools.importers.ordonez import read_ordonez

        return read_ordonez(path, tz, stats, report)
    raise ValueError(f"unknown dataset format {fmt!r}")
