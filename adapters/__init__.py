"""Adapters between the engine and the outside: the MQTT bus mapping, traces, live MQTT.

Imported as `cep.adapters` (`cep/adapters` links to this folder).
"""
