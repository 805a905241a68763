"""Tools built on the runtime and the adapters, for people writing and watching rules:
`testing` (scenario files and `cep test`), `graph` (the network and state machines as
Mermaid or DOT), `importers` (public smart-home datasets to traces) and `view` (the
rich terminal view of contexts, partial matches and fired events)."""
