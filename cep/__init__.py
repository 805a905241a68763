"""cep: a complex event processing engine for smart homes, fed by MQTT."""

__version__ = "0.1.0"
