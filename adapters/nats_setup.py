"""`cep cluster setup` and `cep cluster status`: the streams and buckets the workers use,
made idempotently, and what the cluster is doing (see adapters/nats_names.py).

The cluster's settings (partitions, the home topic) live in the `CEP` stream's own
configuration: its subject transform and its metadata, so there is one place to read
them from and nothing to keep in step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cep.adapters.nats_client import ClusterError, describe, json_value, kv_get, kv_snapshot
from cep.adapters.nats_names import (
    CHECKPOINTS,
    FORMAT,
    LEASES,
    OUT_PREFIX,
    OUT_STREAM,
    RULES,
    STREAM,
    TICK_SUBJECTS,
    HomeTopic,
    consumer_name,
    header_key,
    lease_key,
)

if TYPE_CHECKING:
    from nats.js import JetStreamContext

DUPLICATE_WINDOW = 120.0  # seconds: a message sent again within it is stored once
DEFAULT_MAX_AGE = 7 * 86400.0


@dataclass(frozen=True)
class ClusterConfig:
    partitions: int
    home_topic: HomeTopic
    replicas: int
    max_age: float


def _stream_config(config: ClusterConfig) -> Any:
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig, SubjectTransform

    topic = config.home_topic
    return StreamConfig(
        name=STREAM, description="cep: every home's device messages, by partition",
        subjects=[topic.source, TICK_SUBJECTS],
        subject_transform=SubjectTransform(src=topic.source,
                                           dest=topic.transform(config.partitions)),
        retention=RetentionPolicy.LIMITS, storage=StorageType.FILE,
        num_replicas=config.replicas, max_age=config.max_age,
        duplicate_window=DUPLICATE_WINDOW, allow_direct=True,
        metadata={"cep-format": FORMAT, "cep-partitions": str(config.partitions),
                  "cep-home-topic": topic.template})


def _out_config(config: ClusterConfig) -> Any:
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig

    return StreamConfig(
        name=OUT_STREAM, description="cep: every home's output lines",
        subjects=[f"{OUT_PREFIX}.*"], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, num_replicas=config.replicas, max_age=config.max_age,
        duplicate_window=DUPLICATE_WINDOW, allow_direct=True)


BUCKETS = {
    LEASES: "which worker holds which partition, and the workers alive",
    CHECKPOINTS: "each partition's checkpoint: its stream sequence and its homes' states",
    RULES: "the shared rules the workers run, and the homes' own rule sets",
}


def _days(seconds: float) -> str:
    if seconds % 86400 == 0:
        days = int(seconds // 86400)
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{seconds:g} s"


async def setup(js: JetStreamContext, config: ClusterConfig) -> list[str]:
    """Make what is missing; say, per stream and bucket, what was made or found."""
    import nats.js.errors

    lines = []
    topic = config.home_topic
    try:
        existing = (await js.stream_info(STREAM)).config
    except nats.js.errors.NotFoundError:
        existing = None
    except Exception as exc:
        raise ClusterError(f"cannot reach JetStream: {describe(exc)}") from None
    if existing is None:
        await _add(js, _stream_config(config))
        lines.append(f"stream {STREAM}: created: the messages of every home under "
                     f"{topic.template} (subjects {topic.source}), in {config.partitions} "
                     f"partitions by home ({topic.transform(config.partitions)}), "
                     f"{config.replicas} replica{'s' if config.replicas != 1 else ''}, "
                     f"kept {_days(config.max_age)}")
    else:
        found = _read_config(existing)
        if found.partitions != config.partitions or found.home_topic != topic:
            raise ClusterError(
                f"stream {STREAM} already partitions {found.home_topic.template} in "
                f"{found.partitions} partitions; {topic.template} in {config.partitions} "
                "would move homes to other partitions, away from their checkpoints. Give "
                f"--partitions {found.partitions} --home-topic '{found.home_topic.template}', "
                f"or start a new cluster (delete the stream {STREAM} and the buckets first)")
        changes = _update_notes(existing, config)
        if changes:
            await _update(js, _stream_config(config))
            lines.append(f"stream {STREAM}: changed: {', '.join(changes)}")
        else:
            lines.append(f"stream {STREAM}: exists, unchanged ({found.partitions} partitions "
                         f"of {topic.template}, {existing.num_replicas} replicas)")
    try:
        out = (await js.stream_info(OUT_STREAM)).config
    except nats.js.errors.NotFoundError:
        out = None
    if out is None:
        await _add(js, _out_config(config))
        lines.append(f"stream {OUT_STREAM}: created: output lines on {OUT_PREFIX}.<home>, "
                     f"{config.replicas} replicas, kept {_days(config.max_age)}")
    else:
        changes = _update_notes(out, config)
        if changes:
            await _update(js, _out_config(config))
            lines.append(f"stream {OUT_STREAM}: changed: {', '.join(changes)}")
        else:
            lines.append(f"stream {OUT_STREAM}: exists, unchanged")
    for bucket, what in BUCKETS.items():
        lines.append(await _bucket(js, bucket, what, config.replicas))
    return lines


def _update_notes(existing: Any, config: ClusterConfig) -> list[str]:
    notes = []
    if existing.num_replicas != config.replicas:
        notes.append(f"replicas {existing.num_replicas} → {config.replicas}")
    if abs((existing.max_age or 0) - config.max_age) > 1e-6:
        notes.append(f"kept {_days(existing.max_age or 0)} → {_days(config.max_age)}")
    return notes


async def _add(js: JetStreamContext, stream_config: Any) -> None:
    try:
        await js.add_stream(stream_config)
    except Exception as exc:
        raise ClusterError(f"cannot create the stream {stream_config.name}: "
                           f"{describe(exc)}") from None


async def _update(js: JetStreamContext, stream_config: Any) -> None:
    try:
        await js.update_stream(stream_config)
    except Exception as exc:
        raise ClusterError(f"cannot change the stream {stream_config.name}: "
                           f"{describe(exc)}") from None


async def _bucket(js: JetStreamContext, bucket: str, what: str, replicas: int) -> str:
    import nats.js.errors

    try:
        info = await js.stream_info(f"KV_{bucket}")
    except nats.js.errors.NotFoundError:
        info = None
    if info is None:
        try:
            await js.create_key_value(bucket=bucket, description=f"cep: {what}", history=1,
                                      replicas=replicas)
        except Exception as exc:
            raise ClusterError(f"cannot create the key-value bucket {bucket}: "
                               f"{describe(exc)}") from None
        return f"key-value bucket {bucket}: created ({what}), {replicas} replicas"
    if info.config.num_replicas != replicas:
        info.config.num_replicas = replicas
        await _update(js, info.config)
        return f"key-value bucket {bucket}: changed: replicas → {replicas}"
    return f"key-value bucket {bucket}: exists, unchanged"


def _read_config(stream_config: Any) -> ClusterConfig:
    meta = stream_config.metadata or {}
    if meta.get("cep-format") != FORMAT:
        raise ClusterError(
            f"the stream {STREAM} was not made by this cep (its metadata has no "
            f"cep-format {FORMAT}): run `cep cluster setup` on a NATS without it")
    try:
        partitions = int(meta["cep-partitions"])
        topic = HomeTopic.parse(meta["cep-home-topic"])
    except (KeyError, ValueError) as exc:
        raise ClusterError(f"the stream {STREAM}'s metadata is damaged ({exc})") from None
    return ClusterConfig(partitions, topic, stream_config.num_replicas or 1,
                         stream_config.max_age or 0.0)


async def read_config(js: JetStreamContext, url: str) -> ClusterConfig:
    """The cluster's settings; ClusterError when there is no cluster there yet."""
    import nats.js.errors

    try:
        info = await js.stream_info(STREAM)
    except nats.js.errors.NotFoundError:
        raise ClusterError(f"no cep cluster on {url}: the stream {STREAM} is missing; run "
                           f"`cep cluster setup --nats {url}` first") from None
    except Exception as exc:
        raise ClusterError(f"cannot reach JetStream on {url}: {describe(exc)}") from None
    return _read_config(info.config)


async def status(js: JetStreamContext, url: str, now: float | None = None) -> dict[str, Any]:
    """What the cluster is doing, as data (`cep cluster status` prints it)."""
    import nats.js.errors

    now = time.time() if now is None else now
    config = await read_config(js, url)
    info = await js.stream_info(STREAM)
    leases_kv = await js.key_value(LEASES)
    checkpoints_kv = await js.key_value(CHECKPOINTS)
    entries = await kv_snapshot(leases_kv)
    workers = []
    for key, (value, _) in sorted(entries.items()):
        record = json_value(value)
        if key.startswith("w.") and isinstance(record, dict):
            expires = float(record.get("expires", 0))
            workers.append({"name": record.get("worker"), "host": record.get("host"),
                            "pid": record.get("pid"), "alive": expires > now,
                            "heartbeat_age": round(now - float(record.get("beat", 0)), 3),
                            "partitions": record.get("partitions", []),
                            "homes": record.get("homes", {})})
    partitions = []
    for number in range(config.partitions):
        lease = json_value(entries.get(lease_key(number), (b"", 0))[0])
        owner = None
        if isinstance(lease, dict) and float(lease.get("expires", 0)) > now:
            owner = lease.get("worker")
        header_entry = await kv_get(checkpoints_kv, header_key(number))
        head = json_value(header_entry[0]) if header_entry else None
        lag: int | None = None
        try:
            consumer = await js.consumer_info(STREAM, consumer_name(number))
            lag = (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)
        except nats.js.errors.NotFoundError:
            pass
        except nats.js.errors.APIError:  # being made anew by a worker just now
            pass
        row: dict[str, Any] = {"partition": number, "worker": owner, "lag": lag,
                               "homes": None, "checkpoint_seq": None, "checkpoint_age": None}
        if isinstance(head, dict):
            row["homes"] = head.get("homes")
            row["checkpoint_seq"] = head.get("seq")
            row["checkpoint_age"] = round(now - float(head.get("written", now)), 3)
        partitions.append(row)
    return {"stream": {"name": STREAM, "messages": info.state.messages,
                       "first_seq": info.state.first_seq, "last_seq": info.state.last_seq,
                       "partitions": config.partitions,
                       "home_topic": config.home_topic.template,
                       "replicas": config.replicas},
            "workers": workers, "partitions": partitions}


def format_status(data: dict[str, Any]) -> list[str]:
    """`cep cluster status` as text."""
    stream = data["stream"]
    lines = [f"stream {stream['name']}: {stream['messages']:,} messages (sequences "
             f"{stream['first_seq']:,} to {stream['last_seq']:,}), {stream['partitions']} "
             f"partitions of {stream['home_topic']}, {stream['replicas']} replicas"]
    alive = [w for w in data["workers"] if w["alive"]]
    lines.append(f"workers alive: {len(alive)}")
    for worker in data["workers"]:
        state = "alive" if worker["alive"] else "gone"
        lines.append(f"  {worker['name']}: {state}, pid {worker['pid']} on {worker['host']}, "
                     f"last heartbeat {worker['heartbeat_age']:.1f} s ago, partitions "
                     f"{', '.join(map(str, worker['partitions'])) or 'none'}")
    lines.append(f"{'partition':>9}  {'worker':<16} {'lag':>8} {'homes':>7}  last checkpoint")
    for row in data["partitions"]:
        lag = "-" if row["lag"] is None else f"{row['lag']:,}"
        homes = "-" if row["homes"] is None else f"{row['homes']:,}"
        if row["checkpoint_seq"] is None:
            checkpoint = "none yet"
        else:
            checkpoint = (f"{row['checkpoint_age']:.1f} s ago, at stream sequence "
                          f"{row['checkpoint_seq']:,}")
        lines.append(f"{row['partition']:>9}  {row['worker'] or '(free)':<16} {lag:>8} "
                     f"{homes:>7}  {checkpoint}")
    return lines
