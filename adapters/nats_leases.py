"""Leases: which worker holds which partition, by compare-and-set on the key's revision.

A lease (`p.<n>` in the `cep-leases` bucket) says which worker holds partition n and
until when (`expires`, wall-clock seconds).  Its holder renews it every heartbeat with
an update that names the revision it last wrote: if anyone else wrote the key in
between, the update fails and the holder knows at once that the partition is no longer
its own.  A lease that is not renewed expires; another worker then takes it with the
same compare-and-set (two claimants: one update wins, the other fails).  The holder stops
working on a partition `margin` seconds before its lease would expire unrenewed (a
worker cut off from NATS fences itself), so two workers never act on one partition as
long as their clocks agree within that margin.

Workers say they are alive with a presence key (`w.<name>`) renewed the same way.  The
share of each: the partitions divided among the workers alive, in name order (the first
`partitions % workers` get one more); a worker holding more than its share gives the rest
back, at once, when another holds fewer than its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cep.adapters.nats_client import json_value
from cep.adapters.nats_names import lease_key


@dataclass
class Lease:
    partition: int
    worker: str | None
    instance: str | None
    expires: float
    revision: int

    def held(self, now: float) -> bool:
        return self.worker is not None and self.expires > now


def read_leases(entries: dict[str, tuple[bytes, int]], partitions: int) -> list[Lease]:
    """Every partition's lease from a snapshot of the bucket (a missing or unreadable key:
    free, revision 0)."""
    leases = []
    for number in range(partitions):
        value, revision = entries.get(lease_key(number), (b"", 0))
        data = json_value(value) if value else None
        if isinstance(data, dict) and isinstance(data.get("worker"), str):
            try:
                expires = float(data.get("expires", 0))
            except (TypeError, ValueError):
                expires = 0.0
            instance = data.get("instance")
            leases.append(Lease(number, data["worker"],
                                instance if isinstance(instance, str) else None,
                                expires, revision))
        else:
            leases.append(Lease(number, None, None, 0.0, revision))
    return leases


def alive_workers(entries: dict[str, tuple[bytes, int]], now: float) -> dict[str, dict[str, Any]]:
    """The workers whose presence has not expired, by name."""
    alive = {}
    for key, (value, _) in entries.items():
        if not key.startswith("w."):
            continue
        data = json_value(value)
        if isinstance(data, dict) and isinstance(data.get("worker"), str):
            try:
                if float(data.get("expires", 0)) > now:
                    alive[data["worker"]] = data
            except (TypeError, ValueError):
                continue
    return alive


def fair_share(workers: list[str], me: str, partitions: int) -> int:
    """How many partitions `me` should hold among `workers` (it is one of them)."""
    names = sorted(set(workers) | {me})
    index = names.index(me)
    base, extra = divmod(partitions, len(names))
    return base + (1 if index < extra else 0)


def lease_value(worker: str, instance: str, expires: float, since: float) -> dict[str, Any]:
    return {"worker": worker, "instance": instance, "expires": expires, "since": since}


@dataclass
class Plan:
    claim: list[int]
    release: list[int]


def plan(leases: list[Lease], mine: set[int], alive: dict[str, dict[str, Any]], me: str,
         now: float) -> Plan:
    """What to claim and what to give back now (see the module docstring)."""
    partitions = len(leases)
    share = fair_share(list(alive), me, partitions)
    if len(mine) < share:
        free = [lease.partition for lease in leases
                if lease.partition not in mine and not lease.held(now)]
        return Plan(claim=free[:share - len(mine)], release=[])
    if len(mine) > share:
        held: dict[str, int] = {}
        for lease in leases:
            if lease.held(now) and lease.worker is not None:
                held[lease.worker] = held.get(lease.worker, 0) + 1
        waiting = any(held.get(name, 0) < fair_share(list(alive), name, partitions)
                      for name in alive if name != me)
        if waiting:
            return Plan(claim=[], release=sorted(mine)[share - len(mine):])
    return Plan(claim=[], release=[])
