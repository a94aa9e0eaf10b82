"""The one factory for Kafka clients: every producer, consumer and admin client comes from here.

    clients = KafkaClients(settings)
    producer = clients.producer("fanout-planner")            # acks=all, idempotent
    consumer = clients.consumer("fanout-writer-high", group_id=..., enable_auto_commit=False)
    async with clients.admin() as admin:                      # started, closed on exit
        await admin.list_topics()

Connection and security come from ``Settings`` (``FANOUT_KAFKA_*``): the bootstrap servers,
``kafka_security_protocol`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), ``kafka_sasl_mechanism``
(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with ``kafka_sasl_username``/``kafka_sasl_password``, and for
TLS ``kafka_ssl_cafile`` plus an optional client certificate (``kafka_ssl_certfile``,
``kafka_ssl_keyfile``, ``kafka_ssl_key_password``). ``describe()`` shows the options with secrets
redacted; nothing here prints or logs a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from .errors import ConfigError
from .settings import Settings

REDACTED = "***"
_SECRET_OPTIONS = frozenset({"sasl_plain_password"})


class KafkaClients:
    """Builds aiokafka clients that share the settings' connection and security options."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def connection_options(self) -> dict[str, Any]:
        """The options every client takes: bootstrap servers, security protocol, TLS, SASL."""
        s = self.settings
        options: dict[str, Any] = {
            "bootstrap_servers": s.kafka_bootstrap,
            "security_protocol": s.kafka_security_protocol,
        }
        if s.kafka_security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self._ssl_context()
        if s.kafka_security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = s.kafka_sasl_mechanism
            options["sasl_plain_username"] = s.kafka_sasl_username
            options["sasl_plain_password"] = s.kafka_sasl_password
        return options

    def _ssl_context(self) -> ssl.SSLContext:
        s = self.settings
        try:
            context: ssl.SSLContext = create_ssl_context(
                cafile=s.kafka_ssl_cafile or None,
                certfile=s.kafka_ssl_certfile or None,
                keyfile=s.kafka_ssl_keyfile or None,
                password=s.kafka_ssl_key_password or None,
            )
            return context
        except (OSError, ssl.SSLError) as exc:  # FileNotFoundError is an OSError
            raise ConfigError(
                "cannot load the Kafka TLS files (FANOUT_KAFKA_SSL_CAFILE/CERTFILE/KEYFILE/KEY_PASSWORD): "
                f"{type(exc).__name__}: {exc}"
            ) from None

    def describe(self) -> dict[str, Any]:
        """The connection options as text, secrets redacted (for logs and error messages)."""
        shown: dict[str, Any] = {}
        for name, value in self.connection_options().items():
            if name in _SECRET_OPTIONS and value:
                value = REDACTED
            elif name == "ssl_context":
                cafile = self.settings.kafka_ssl_cafile or "system default"
                client_cert = "yes" if self.settings.kafka_ssl_certfile else "no"
                value = f"SSLContext(cafile={cafile}, client certificate={client_cert})"
            shown[name] = value
        return shown

    def producer(self, client_id: str, **options: Any) -> AIOKafkaProducer:
        """A producer with ``acks=all`` and idempotence (override any option by keyword)."""
        defaults: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": 5}
        return AIOKafkaProducer(client_id=client_id, **{**self.connection_options(), **defaults, **options})

    def consumer(self, client_id: str, *topics: str, **options: Any) -> AIOKafkaConsumer:
        """A consumer (subscribe later, or pass ``topics``); manual commits are the caller's choice.

        It reads committed records only (``isolation_level="read_committed"``): what a service
        produced in a Kafka transaction it aborted is never seen, and one still open holds the
        reading back at its first record until it commits or aborts (the broker aborts it after
        the producer's ``transaction.timeout.ms``), as in every other language's client."""
        defaults: dict[str, Any] = {"isolation_level": "read_committed"}
        return AIOKafkaConsumer(*topics, client_id=client_id, **{**self.connection_options(), **defaults, **options})

    def admin_client(self, client_id: str = "fanout-admin") -> AIOKafkaAdminClient:
        """An admin client, not started (``admin()`` starts and closes one for you)."""
        return AIOKafkaAdminClient(client_id=client_id, **self.connection_options())

    @contextlib.asynccontextmanager
    async def admin(self, client_id: str = "fanout-admin") -> AsyncIterator[AIOKafkaAdminClient]:
        """``async with clients.admin() as admin``: a started admin client, closed on exit."""
        client = self.admin_client(client_id)
        await client.start()
        try:
            yield client
        finally:
            await client.close()


class MissingTopics(ConfigError):
    """Some pipeline topics do not exist (nothing creates them implicitly)."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"missing Kafka topic(s): {', '.join(missing)}; run `fanout topics create` first")
        self.missing = missing


async def require_topics(clients: KafkaClients, names: list[str]) -> None:
    """Raise ``MissingTopics`` naming each of ``names`` that does not exist.

    A plain listing of every topic: unlike a metadata request for the topics themselves, it never
    makes a broker with ``auto.create.topics.enable`` create them.
    """
    async with clients.admin() as admin:
        existing = set(await admin.list_topics())
    missing = [name for name in names if name not in existing]
    if missing:
        raise MissingTopics(missing)


class Acks:
    """The broker acknowledgements still to come for records a producer sent.

    ``add`` the future ``producer.send`` returned; ``await flush()`` waits for every one added so
    far (raising the first failure); ``discard()`` forgets them (their batch will be re-sent).
    """

    _PRUNE_AT = 10_000

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[Any]] = []

    def add(self, future: asyncio.Future[Any]) -> None:
        self._futures.append(future)
        if len(self._futures) > self._PRUNE_AT:  # bulk senders that rarely flush: keep memory flat
            self._futures = [f for f in self._futures if not f.done() or f.cancelled() or f.exception()]

    async def flush(self) -> None:
        pending, self._futures = self._futures, []
        if pending:
            await asyncio.gather(*pending)

    def discard(self) -> None:
        self._futures = []


__all__ = ["REDACTED", "Acks", "KafkaClients", "MissingTopics", "require_topics"]
