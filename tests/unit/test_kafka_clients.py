"""The one Kafka client factory: every kind of client, with every security protocol (configuration only)."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fanout import ConfigError, Settings
from fanout.kafka import REDACTED, KafkaClients

KINDS = ("producer", "consumer", "admin")
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed CA certificate and a client certificate with an encrypted key (openssl)."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "client.pem", where / "client.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-days", "1", "-subj", "/CN=fanout-test",
         "-keyout", str(key), "-out", str(cert), "-passout", "pass:keypass"],
        check=True, capture_output=True,
    )
    return {"cafile": str(cert), "certfile": str(cert), "keyfile": str(key), "password": "keypass"}


def _settings(protocol: str, tls: dict[str, str], mechanism: str = "PLAIN") -> Settings:
    return Settings(
        kafka_bootstrap="kafka-1:9093,kafka-2:9093",
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="svc-fanout" if protocol.startswith("SASL") else "",
        kafka_sasl_password="s3cret-pw" if protocol.startswith("SASL") else "",
        kafka_ssl_cafile=tls["cafile"],
        kafka_ssl_certfile=tls["certfile"],
        kafka_ssl_keyfile=tls["keyfile"],
        kafka_ssl_key_password=tls["password"],
    ).validated()


async def _build(clients: KafkaClients, kind: str) -> AsyncIterator[Any]:
    """Yield the inner AIOKafkaClient of a freshly built client (closed afterwards, never connected)."""
    if kind == "producer":
        producer = clients.producer("fanout-test")
        try:
            yield producer.client
        finally:
            await producer.stop()
    elif kind == "consumer":
        consumer = clients.consumer("fanout-test", group_id="g")
        try:
            yield consumer._client
        finally:
            await consumer.stop()
    else:
        yield clients.admin_client()._client


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_every_client_gets_the_security_settings(kind: str, protocol: str, tls_files: dict[str, str]) -> None:
    clients = KafkaClients(_settings(protocol, tls_files, "SCRAM-SHA-256"))
    async for client in _build(clients, kind):
        assert client._bootstrap_servers == "kafka-1:9093,kafka-2:9093"
        assert client._security_protocol == protocol
        if protocol in ("SSL", "SASL_SSL"):
            assert client._ssl_context is not None
            assert client._ssl_context.cert_store_stats()["x509_ca"] == 1  # our CA file, loaded
        else:
            assert client._ssl_context is None
        if protocol.startswith("SASL"):
            assert client._sasl_mechanism == "SCRAM-SHA-256"
            assert client._sasl_plain_username == "svc-fanout"
            assert client._sasl_plain_password == "s3cret-pw"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_mechanisms(mechanism: str, tls_files: dict[str, str]) -> None:
    async for client in _build(KafkaClients(_settings("SASL_PLAINTEXT", tls_files, mechanism)), "producer"):
        assert client._sasl_mechanism == mechanism


def test_describe_redacts_secrets(tls_files: dict[str, str]) -> None:
    shown = KafkaClients(_settings("SASL_SSL", tls_files)).describe()
    assert shown["sasl_plain_password"] == REDACTED
    assert "s3cret-pw" not in repr(shown) and "keypass" not in repr(shown)
    assert shown["sasl_plain_username"] == "svc-fanout"


def test_unreadable_tls_files_are_a_config_error(tmp_path: Path, tls_files: dict[str, str]) -> None:
    settings = _settings("SSL", {**tls_files, "cafile": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match="cannot load the Kafka TLS files"):
        KafkaClients(settings).connection_options()
    wrong_password = _settings("SSL", {**tls_files, "password": "nope"})
    with pytest.raises(ConfigError, match="cannot load the Kafka TLS files"):
        KafkaClients(wrong_password).connection_options()


async def test_producers_are_durable_unless_overridden() -> None:
    """acks=all and idempotence by default; plaintext needs no TLS or SASL options."""
    clients = KafkaClients(Settings())
    assert clients.connection_options() == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    durable = clients.producer("fanout-test")
    fast = clients.producer("fanout-test", acks=1, enable_idempotence=False)
    try:
        assert durable._sender._acks == -1 and durable._txn_manager is not None
        assert fast._sender._acks == 1 and fast._txn_manager is None
    finally:
        await durable.stop()
        await fast.stop()


async def test_consumers_read_committed_records_unless_overridden() -> None:
    """Records of aborted transactions are never read (issue: a service's exactly-once producer
    aborting a transaction must not fan anything out); a caller may still ask otherwise."""
    clients = KafkaClients(Settings())
    default = clients.consumer("fanout-test")
    everything = clients.consumer("fanout-test", isolation_level="read_uncommitted")
    try:
        assert default._isolation_level == "read_committed"
        assert everything._isolation_level == "read_uncommitted"
    finally:
        await default.stop()
        await everything.stop()
