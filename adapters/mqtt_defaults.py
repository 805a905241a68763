"""The MQTT options' defaults, kept apart from the client (cep.adapters.mqtt) so that the
command line can show them in its help without loading paho-mqtt, which with the ssl,
http and email modules it brings costs a replay a sixth of its start-up."""

PASSWORD_ENV = "CEP_MQTT_PASSWORD"  # read when the URL names a user but no password
CONNECT_TIMEOUT = 10.0     # seconds for the TCP connection and TLS handshake, then the CONNACK
INBOX_SIZE = 10_000        # received messages waiting for the engine (adapters/live.py Inbox)
