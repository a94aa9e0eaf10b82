"""One frozen settings object, read from ``FANOUT_*`` environment variables.

Nothing else in the project reads ``os.environ``. Every field has a default that works on a
developer machine with ``make up``; ``Settings.from_env()`` overrides fields from the
environment, ``dataclasses.replace`` overrides them in code and tests.

    FANOUT_STORE=memory|cassandra         timeline store of the eager mode (the pipeline uses Cassandra)
    FANOUT_KAFKA_BOOTSTRAP=127.0.0.1:9092
    FANOUT_KAFKA_SECURITY_PROTOCOL=PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL (see fanout.kafka)
    FANOUT_CASSANDRA_HOSTS=127.0.0.1      comma separated (a cluster: 127.0.0.1,127.0.0.2,127.0.0.3)
    FANOUT_CASSANDRA_REPLICATION=1        replication factor of the keyspace `fanout migrate` creates
    FANOUT_CHUNK_SIZE=100                 follower feeds per chunk message
    ...                                   (one variable per field, upper-cased)
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError

_PREFIX = "FANOUT_"
# ``FANOUT_*`` names that are not settings: the service scripts' (scripts/services.sh) and the test
# suites'; any other unknown name is most likely a misspelt setting, and gets a warning
_OTHER_NAMES = frozenset({
    "FANOUT_NODES", "FANOUT_KAFKA_HEAP", "FANOUT_CASSANDRA_HEAP", "FANOUT_SERVICES_TIMEOUT",
    "FANOUT_CASSANDRA_COMMITLOG", "FANOUT_CASSANDRA_CONCURRENT_WRITES", "FANOUT_CASSANDRA_MEMTABLE",
    "FANOUT_CASSANDRA_MEMTABLE_ALLOCATION",
})
_OTHER_PREFIXES = ("FANOUT_TEST_", "FANOUT_CHAOS_")
_warned: set[str] = set()  # unknown names already warned about by this process
_SECRET_FIELDS = frozenset({"cassandra_password", "kafka_sasl_password", "kafka_ssl_key_password"})
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Cassandra consistency levels of reads and writes (the serial levels are for lightweight transactions)
CONSISTENCY_LEVELS = ("ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE")


@dataclass(frozen=True, slots=True)
class Settings:
    # the eager mode's store (the pipeline always uses Cassandra)
    store: str = "memory"  # memory | cassandra

    # fanout behaviour
    chunk_size: int = 100
    # followers the planner reads per request (fanout.followers); larger pages mean fewer round trips
    # for a large account's post (README: "The planner")
    follower_page_size: int = 5000
    follow_activity_limit: int = 5000
    max_length: int = 1000
    trim_every: int = 50  # a feed is trimmed about once every this many inserts into it (README: Trimming)
    trim_tracked_feeds: int = 500_000  # feeds whose inserts a writer counts exactly (~200 B each); 0: none
    active_window_days: float = 7.0
    # hybrid fanout (fanout.pull): accounts with more followers are merged at read time; 0 = off
    pull_threshold: int = 10_000
    pull_drain_seconds: float = 600.0  # an account that crossed back down is merged this long more
    feed_kinds: tuple[str, ...] = ("timeline",)  # feeds of followers that an activity fans into
    user_feed_kind: str = "user"
    # aggregated feeds (fanout.aggregation): `kind=rule` (fanout.grouping.RULES); notification kinds
    # are aggregated kinds with seen/read state. Activities reach them as followers' kinds or by `to`.
    aggregated_kinds: tuple[str, ...] = ("aggregated=verb_day", "notification=verb_object_day")
    notification_kinds: tuple[str, ...] = ("notification",)
    aggregated_max_activities: int = 15  # activities a group shows, newest first (counts cover all)

    # kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "fanout."
    activities_partitions: int = 6
    follows_partitions: int = 3
    high_partitions: int = 8
    low_partitions: int = 2
    activities_retention_ms: int = -1  # keep the log: replay rebuilds feeds
    chunks_retention_ms: int = 30 * 86_400_000  # high/low: a backlog waits 30 days (alert on lag long before)
    kafka_replication_factor: int = 0  # of the topics `fanout topics create` makes; 0: min(3, brokers)
    kafka_min_insync_replicas: int = 0  # their min.insync.replicas; 0: replication factor - 1 (at least 1)
    # kafka security (fanout.kafka builds every client from these)
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    kafka_sasl_mechanism: str = "PLAIN"  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_cafile: str = ""  # empty: the system's trusted CAs
    kafka_ssl_certfile: str = ""  # client certificate (PEM), for brokers that require one
    kafka_ssl_keyfile: str = ""
    kafka_ssl_key_password: str = ""

    # writers
    batch_max_records: int = 100  # records per batch; a writer batch of 100 chunks is <= 10,000 rows
    batch_max_wait_ms: int = 50
    # the LOW lane's writers (inactive followers: throughput, not latency) may take larger batches
    # with longer waits (more rows per feed partition); HIGH writers keep the two above. Defaults
    # equal HIGH's: 500 / 500 ms broke the stop bound (a batch must finish within --grace, 6 s)
    # in tests/integration/test_pipeline_priority.py on a loaded 2-core box
    low_batch_max_records: int = 100
    low_batch_max_wait_ms: int = 50
    max_in_flight: int = 128
    # store requests in flight of a LOW writer process (0: max_in_flight): fewer LOW requests queued
    # at the node leave HIGH writes less to wait behind
    low_max_in_flight: int = 0
    # niceness a LOW writer process adds to its own (os.nice; 0: none): where the CPU is short, the
    # HIGH writers, the planner and the servers get more of it (make bench case 3, medians of three
    # interleaved series: HIGH p99 under full load ~1.2-1.7 s -> ~0.93-1.15 s at 10, deliveries/s
    # 3-11% lower; README "Priorities", also on autogroups and cgroups)
    low_nice: int = 10
    # followers whose events of one batch the follows agent applies at once (each follower's in order)
    follows_concurrency: int = 32
    # follow events a follows agent's batch takes: more followers' runs at once, fewer commits
    # (make bench case 8: 100 -> 250 gave 1,670-1,900 -> 2,083-2,326 follows/s; 500 as 250)
    follows_batch_max_records: int = 250
    # actors whose activity events of one batch the planner plans at once (each actor's in order)
    planner_concurrency: int = 16

    # agents' runtime (fanout.agents.base, fanout.agents.health)
    agent_retry_attempts: int = 5  # tries of a retriable store error inside a batch, then re-fetch it
    agent_retry_within_s: float = 10.0  # ... and for at most this long
    agent_stall_timeout_s: float = 300.0  # no commit for this long with work pending: exit non-zero

    # cassandra
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)
    cassandra_port: int = 9042
    cassandra_keyspace: str = "fanout"
    cassandra_replication: int = 1  # replication factor of the keyspace (SimpleStrategy)
    cassandra_consistency: str = "LOCAL_QUORUM"  # of reads and writes, unless one of the two below is set
    cassandra_write_consistency: str = ""  # "" = cassandra_consistency
    cassandra_read_consistency: str = ""  # "" = cassandra_consistency
    cassandra_ttl_seconds: int = 0  # 0 = no TTL (the memory store honours it too)
    cassandra_protocol_version: int = 5  # Cassandra 4.0+: 5; older: 4; 0 = let the driver negotiate
    cassandra_write_mode: str = "replica_batch"  # or "partition_batch", "concurrent": fanout/cassandra/batching.py
    cassandra_password: str = ""
    cassandra_username: str = ""

    # delivery traces (fanout.tracing) expire this long after they are written; 0 = never
    trace_ttl_seconds: int = 7 * 86_400

    # the memory store: deletes are forgotten after this long, as Cassandra's gc_grace_seconds
    memory_grace_seconds: int = 864_000

    # limits of the wire contract (also the largest body the HTTP API takes)
    max_event_bytes: int = 64 * 1024
    # an event's `time` lies within [accepted - max_past_days, accepted + max_future_skew_seconds],
    # accepted = the Kafka record timestamp (the clock in the eager mode and when producing)
    max_future_skew_seconds: int = 600  # clocks of producers may run a little fast; 10 min at the top at most
    max_past_days: int = 3650  # backfills and imports of up to 10 years of history

    # the HTTP API (fanout serve)
    http_max_limit: int = 100  # the largest `limit` of a page
    http_backend_timeout_seconds: float = 5.0  # a backend call that takes longer answers 503

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``FANOUT_*`` variables (default: the process environment)."""
        if environ is None:
            import os

            environ = os.environ
        _warn_unknown(environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        values.update(overrides)
        return cls(**values).validated()

    def validated(self) -> Settings:
        if self.chunk_size < 1:
            raise ConfigError("FANOUT_CHUNK_SIZE must be >= 1")
        if self.follower_page_size < 1:
            raise ConfigError("FANOUT_FOLLOWER_PAGE_SIZE must be >= 1")
        if self.store not in ("memory", "cassandra"):
            raise ConfigError(f"FANOUT_STORE must be 'memory' or 'cassandra', not {self.store!r}")
        if self.max_length < 1 or self.trim_every < 1:
            raise ConfigError("FANOUT_MAX_LENGTH and FANOUT_TRIM_EVERY must be >= 1")
        if self.trim_tracked_feeds < 0 or self.memory_grace_seconds < 0 or self.cassandra_ttl_seconds < 0:
            raise ConfigError(
                "FANOUT_TRIM_TRACKED_FEEDS, FANOUT_MEMORY_GRACE_SECONDS and FANOUT_CASSANDRA_TTL_SECONDS must be >= 0"
            )
        if self.pull_threshold < 0 or self.pull_drain_seconds < 0:
            raise ConfigError("FANOUT_PULL_THRESHOLD and FANOUT_PULL_DRAIN_SECONDS must be >= 0 (threshold 0: off)")
        if self.trace_ttl_seconds < 0:
            raise ConfigError("FANOUT_TRACE_TTL_SECONDS must be >= 0 (0: traces never expire)")
        if self.low_max_in_flight < 0:
            raise ConfigError("FANOUT_LOW_MAX_IN_FLIGHT must be >= 0 (0: FANOUT_MAX_IN_FLIGHT)")
        if not 0 <= self.low_nice <= 19:
            raise ConfigError("FANOUT_LOW_NICE must be within 0-19 (0: the LOW writers keep their niceness)")
        if min(self.max_in_flight, self.follows_concurrency, self.planner_concurrency) < 1:
            raise ConfigError("FANOUT_MAX_IN_FLIGHT, FANOUT_FOLLOWS_CONCURRENCY and FANOUT_PLANNER_CONCURRENCY "
                              "must be >= 1")
        if min(self.batch_max_records, self.low_batch_max_records) < 1 or min(
            self.batch_max_wait_ms, self.low_batch_max_wait_ms
        ) < 0:
            raise ConfigError("FANOUT_BATCH_MAX_RECORDS and FANOUT_LOW_BATCH_MAX_RECORDS must be >= 1, "
                              "FANOUT_BATCH_MAX_WAIT_MS and FANOUT_LOW_BATCH_MAX_WAIT_MS >= 0")
        if self.follows_batch_max_records < 1:
            raise ConfigError("FANOUT_FOLLOWS_BATCH_MAX_RECORDS must be >= 1")
        if self.max_future_skew_seconds < 0 or self.max_past_days < 0:
            raise ConfigError("FANOUT_MAX_FUTURE_SKEW_SECONDS and FANOUT_MAX_PAST_DAYS must be >= 0")
        if self.http_max_limit < 1 or self.http_backend_timeout_seconds <= 0:
            raise ConfigError("FANOUT_HTTP_MAX_LIMIT must be >= 1 and FANOUT_HTTP_BACKEND_TIMEOUT_SECONDS > 0")
        if self.agent_retry_attempts < 1 or self.agent_retry_within_s <= 0 or self.agent_stall_timeout_s <= 0:
            raise ConfigError("FANOUT_AGENT_RETRY_ATTEMPTS must be >= 1, FANOUT_AGENT_RETRY_WITHIN_S and "
                              "FANOUT_AGENT_STALL_TIMEOUT_S > 0")
        if self.follow_activity_limit < 0 or self.active_window_days < 0:
            raise ConfigError("FANOUT_FOLLOW_ACTIVITY_LIMIT and FANOUT_ACTIVE_WINDOW_DAYS must be >= 0")
        if self.max_event_bytes < 1024:
            raise ConfigError("FANOUT_MAX_EVENT_BYTES must be >= 1024 (the wire contract's default is 65536)")
        if min(self.activities_partitions, self.follows_partitions, self.high_partitions, self.low_partitions) < 1:
            raise ConfigError("FANOUT_ACTIVITIES_PARTITIONS, FANOUT_FOLLOWS_PARTITIONS, FANOUT_HIGH_PARTITIONS and "
                              "FANOUT_LOW_PARTITIONS must be >= 1")
        self._validate_servers()
        self._validate_kafka_security()
        self._validate_replication()
        self._validate_aggregation()
        return self

    def _validate_replication(self) -> None:
        if self.kafka_replication_factor < 0 or self.kafka_min_insync_replicas < 0:
            raise ConfigError("FANOUT_KAFKA_REPLICATION_FACTOR and FANOUT_KAFKA_MIN_INSYNC_REPLICAS must be >= 0 "
                              "(0: chosen from the number of brokers)")
        if 0 < self.kafka_replication_factor < self.kafka_min_insync_replicas:
            raise ConfigError(
                f"FANOUT_KAFKA_MIN_INSYNC_REPLICAS={self.kafka_min_insync_replicas} is above "
                              f"FANOUT_KAFKA_REPLICATION_FACTOR={self.kafka_replication_factor}: no write could succeed"
            )
        if self.cassandra_replication < 1:
            raise ConfigError("FANOUT_CASSANDRA_REPLICATION must be >= 1")
        for name in ("cassandra_consistency", "cassandra_write_consistency", "cassandra_read_consistency"):
            level = getattr(self, name)
            if level.upper() not in CONSISTENCY_LEVELS and not (level == "" and name != "cassandra_consistency"):
                raise ConfigError(f"{_PREFIX}{name.upper()}={level!r} is not one of {', '.join(CONSISTENCY_LEVELS)}")
        if self.read_consistency == "ANY":
            raise ConfigError("the read consistency is ANY, which is for writes only: set "
                              "FANOUT_CASSANDRA_READ_CONSISTENCY (ONE, LOCAL_QUORUM, ...)")

    @property
    def write_consistency(self) -> str:
        """The consistency level of writes: ``cassandra_write_consistency``, else ``cassandra_consistency``."""
        return (self.cassandra_write_consistency or self.cassandra_consistency).upper()

    @property
    def read_consistency(self) -> str:
        """The consistency level of reads: ``cassandra_read_consistency``, else ``cassandra_consistency``."""
        return (self.cassandra_read_consistency or self.cassandra_consistency).upper()

    def aggregation(self) -> dict[str, str]:
        """The aggregated feed kinds and the name of each one's grouping rule."""
        kinds: dict[str, str] = {}
        for entry in self.aggregated_kinds:
            kind, _, rule = entry.partition("=")
            kinds[kind] = rule
        return kinds

    def _validate_aggregation(self) -> None:
        from .grouping import RULES

        for kind in (*self.feed_kinds, self.user_feed_kind):
            if not kind or ":" in kind:  # a feed id is kind:user, split at the first ':'
                raise ConfigError(f"FANOUT_FEED_KINDS and FANOUT_USER_FEED_KIND take names without ':', not {kind!r}")
        for entry in self.aggregated_kinds:
            kind, _, rule = entry.partition("=")
            if not kind or ":" in kind or rule not in RULES:
                raise ConfigError(f"FANOUT_AGGREGATED_KINDS entry {entry!r} must be `kind=rule` with a rule of "
                                  f"{', '.join(RULES)}")
        kinds = self.aggregation()
        if self.user_feed_kind in kinds or any(k not in kinds for k in self.notification_kinds):
            raise ConfigError("FANOUT_NOTIFICATION_KINDS must be aggregated kinds (FANOUT_AGGREGATED_KINDS), "
                              "and the user feed kind cannot be aggregated")
        if self.aggregated_max_activities < 1:
            raise ConfigError("FANOUT_AGGREGATED_MAX_ACTIVITIES must be >= 1")

    def _validate_servers(self) -> None:
        """Addresses and connection settings: a mistake here is a setting to change, not an outage."""
        if not self.kafka_bootstrap.strip():
            raise ConfigError("FANOUT_KAFKA_BOOTSTRAP is empty: give host:port[,host:port...] of the brokers")
        for entry in (e.strip() for e in self.kafka_bootstrap.split(",")):
            if entry and not _broker_address(entry):
                raise ConfigError(f"FANOUT_KAFKA_BOOTSTRAP={entry!r} is not host:port (a port 1-65535; "
                                  "an IPv6 address with a port in brackets: [::1]:9092)")
        if not self.cassandra_hosts:
            raise ConfigError("FANOUT_CASSANDRA_HOSTS is empty: give the nodes' host names or addresses")
        for host in self.cassandra_hosts:
            if "[" in host or "]" in host:
                raise ConfigError(f"FANOUT_CASSANDRA_HOSTS takes IPv6 addresses without brackets, not {host!r} "
                                  "(the port goes in FANOUT_CASSANDRA_PORT)")
            if host.count(":") == 1:
                raise ConfigError(f"FANOUT_CASSANDRA_HOSTS takes host names or addresses, not {host!r}: "
                                  "give the port in FANOUT_CASSANDRA_PORT")
        if not 1 <= self.cassandra_port <= 65535:
            raise ConfigError(f"FANOUT_CASSANDRA_PORT must be within 1-65535, not {self.cassandra_port}")
        if self.cassandra_protocol_version not in (0, 3, 4, 5):  # 6 is a beta the driver refuses
            raise ConfigError("FANOUT_CASSANDRA_PROTOCOL_VERSION must be 0 (let the driver negotiate), 3, 4 or 5, "
                              f"not {self.cassandra_protocol_version}")
        if self.cassandra_password and not self.cassandra_username:
            raise ConfigError("FANOUT_CASSANDRA_PASSWORD needs FANOUT_CASSANDRA_USERNAME")

    def _validate_kafka_security(self) -> None:
        protocol = self.kafka_security_protocol
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(f"FANOUT_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                              f"not {protocol!r}")
        if protocol.startswith("SASL_"):
            if self.kafka_sasl_mechanism not in SASL_MECHANISMS:
                raise ConfigError(f"FANOUT_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, "
                                  f"not {self.kafka_sasl_mechanism!r}")
            if not self.kafka_sasl_username or not self.kafka_sasl_password:
                raise ConfigError(f"{protocol} needs FANOUT_KAFKA_SASL_USERNAME and FANOUT_KAFKA_SASL_PASSWORD")
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ConfigError("FANOUT_KAFKA_SSL_KEYFILE needs FANOUT_KAFKA_SSL_CERTFILE (the client certificate)")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes).validated()

    def topic(self, name: str) -> str:
        """Full topic name: ``activities``, ``follows``, ``high``, ``low``, ``dead``."""
        return f"{self.topic_prefix}{name}"

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value:
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__


def _broker_address(entry: str) -> bool:
    """Whether aiokafka reads ``entry`` as a broker address (``get_ip_port_afi``): ``host``,
    ``host:port``, ``[ipv6]``, ``[ipv6]:port`` or a bare IPv6 address (port 9092)."""
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("9092" if not rest else "")
        return bool(host and bracket and "]" not in rest and port.isdigit() and 1 <= int(port) <= 65535)
    if ":" not in entry:
        return "]" not in entry
    try:
        ipaddress.IPv6Address(entry.split("%")[0])
        return True
    except ValueError:
        host, _, port = entry.rpartition(":")
        return bool(host) and "[" not in host and "]" not in host and port.isdigit() and 1 <= int(port) <= 65535


def _warn_unknown(environ: Mapping[str, str]) -> None:
    """One warning per ``FANOUT_*`` variable that names no setting (a misspelt one would
    otherwise be ignored without a word), with the closest setting's name when there is one."""
    settings = [f.name.upper() for f in fields(Settings)]  # the names without the prefix
    for name in sorted(environ):
        if (not name.startswith(_PREFIX) or name.removeprefix(_PREFIX) in settings or name in _OTHER_NAMES
                or name in _warned or name.startswith(_OTHER_PREFIXES)):
            continue
        _warned.add(name)
        close = difflib.get_close_matches(name.removeprefix(_PREFIX), settings, n=1)
        hint = f" (did you mean {_PREFIX}{close[0]}?)" if close else ""
        logging.getLogger(__name__).warning("%s is not a fanout setting%s: ignored", name, hint)


def _parse(name: str, type_: Any, raw: str) -> Any:
    type_name = type_ if isinstance(type_, str) else getattr(type_, "__name__", str(type_))
    env_name = _PREFIX + name.upper()
    try:
        if type_name == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            number = float(raw)
            if not math.isfinite(number):  # nan passes every `< 0` check, and a nan or inf timeout never ends
                raise ValueError(raw)
            return number
        if type_name.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError:
        rule = " (a finite number)" if type_name == "float" else ""
        raise ConfigError(f"{env_name}={raw!r} is not a valid {type_name}{rule}") from None
