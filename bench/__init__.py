"""Benchmarks, run from a checkout (they are not part of the installed package).

    python -m bench engine   engine workloads: events per second, ratio to decoding
    python -m bench ab       side by side with Siddhi on the A→B workload
    python -m bench windowed side by side with Siddhi on a windowed average per room
    python -m bench memory   the A→B workload over a simulated day: RSS and live state
    python -m bench memory-keys  a new partition key every 10 events: RSS and live instances
    python -m bench mqtt     live latency and throughput against a real broker
    python -m bench state    checkpoint size and time, and start-up, with a big state
    python -m bench view     what the terminal view costs a replay
    python -m bench check    how long `cep check` takes on large generated rule sets
    python -m bench cluster  workers on a NATS JetStream cluster: rate, CPU, latency, failover

Numbers, never pass/fail: docs/performance.md and docs/live.md keep recorded results.
"""
