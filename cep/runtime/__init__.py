"""Stage 3, the runtime: a checked catalog compiled into an event processing network and
run in event time, deterministically.

`engine` owns the clock (`clock`: timers in deadline order), routes each event by type to
the agents that read it and to the context runtimes (`contexts`, with `recurrence` for
recurring times and `geometry`/`positions` for spatial contexts); `agents` are the
compiled rules; `pattern_compiler` turns a pattern's AST into the state machines of
`matcher` (with `lasting` for `X FOR d` and `timer_at` for `timer:at`, `sun` for sun
times); `expressions` compiles expressions to closures once (with `like`, LIKE without
backtracking, `convert` for `cast` and the bus's conversions); `windows` and `aggregates`
keep views and their aggregates incrementally, `named_windows` the engine-wide ones,
`changes` the memory of `changed()`, and `rate` the OUTPUT clauses; `events` is the event
record; `output` formats the output lines.
`limits` holds what no message may exceed (the range of times, what MQTT accepts of an
action) and `faults` reports what failed, once a minute per kind. Nothing here reads the
wall clock or knows about MQTT: the adapters feed it.
"""
