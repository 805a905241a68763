"""Adapters between the engine and the outside world: the MQTT bus mapping (topics and
payloads to events), traces (read, write, record), live MQTT, and the two drivers that
feed the engine, `replay` (a trace in event time) and `live` (a broker in real time).

Shipped as `cep.adapters`: a wheel carries this folder as `cep/adapters/`, and a source
checkout registers it under that name when `cep` is imported.
"""
