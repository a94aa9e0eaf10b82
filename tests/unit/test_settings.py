from __future__ import annotations

import pytest

from fanout import ConfigError, Settings


def test_defaults_are_the_embedded_mode() -> None:
    settings = Settings.from_env({})
    assert settings.store == "memory"
    assert settings.chunk_size == 100
    assert settings.follow_activity_limit == 5000


def test_environment_overrides_each_type() -> None:
    settings = Settings.from_env(
        {
            "FANOUT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "FANOUT_KAFKA_SASL_USERNAME": "svc",
            "FANOUT_KAFKA_SASL_PASSWORD": "s3cret",
            "FANOUT_CHUNK_SIZE": "250",
            "FANOUT_ACTIVE_WINDOW_DAYS": "1.5",
            "FANOUT_CASSANDRA_HOSTS": "10.0.0.1, 10.0.0.2",
            "FANOUT_STORE": "cassandra",
            "UNRELATED": "x",
        }
    )
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.chunk_size == 250
    assert settings.active_window_days == 1.5
    assert settings.cassandra_hosts == ("10.0.0.1", "10.0.0.2")
    assert settings.store == "cassandra"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"FANOUT_CHUNK_SIZE": "many"}, "FANOUT_CHUNK_SIZE='many' is not a valid int"),
        ({"FANOUT_CHUNK_SIZE": "0"}, "FANOUT_CHUNK_SIZE must be >= 1"),
        ({"FANOUT_TRIM_TRACKED_FEEDS": "-1"}, "FANOUT_TRIM_TRACKED_FEEDS, FANOUT_MEMORY_GRACE_SECONDS and"),
        ({"FANOUT_MEMORY_GRACE_SECONDS": "-1"}, "FANOUT_MEMORY_GRACE_SECONDS and FANOUT_CASSANDRA_TTL_SECONDS"),
        ({"FANOUT_STORE": "redis"}, "FANOUT_STORE must be 'memory' or 'cassandra'"),
        ({"FANOUT_KAFKA_SECURITY_PROTOCOL": "TLS"}, "FANOUT_KAFKA_SECURITY_PROTOCOL must be one of"),
        ({"FANOUT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "needs FANOUT_KAFKA_SASL_USERNAME"),
        ({"FANOUT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "FANOUT_KAFKA_SASL_MECHANISM": "GSSAPI",
          "FANOUT_KAFKA_SASL_USERNAME": "u", "FANOUT_KAFKA_SASL_PASSWORD": "p"}, "FANOUT_KAFKA_SASL_MECHANISM"),
        ({"FANOUT_KAFKA_SSL_KEYFILE": "/k.pem"}, "needs FANOUT_KAFKA_SSL_CERTFILE"),
        ({"FANOUT_KAFKA_REPLICATION_FACTOR": "-1"}, "FANOUT_KAFKA_REPLICATION_FACTOR and"),
        ({"FANOUT_KAFKA_REPLICATION_FACTOR": "2", "FANOUT_KAFKA_MIN_INSYNC_REPLICAS": "3"},
         "FANOUT_KAFKA_MIN_INSYNC_REPLICAS=3 is above FANOUT_KAFKA_REPLICATION_FACTOR=2"),
        ({"FANOUT_CASSANDRA_REPLICATION": "0"}, "FANOUT_CASSANDRA_REPLICATION must be >= 1"),
        ({"FANOUT_CASSANDRA_CONSISTENCY": "MOST"}, "FANOUT_CASSANDRA_CONSISTENCY='MOST' is not one of"),
        ({"FANOUT_CASSANDRA_WRITE_CONSISTENCY": "SERIAL"}, "FANOUT_CASSANDRA_WRITE_CONSISTENCY='SERIAL'"),
        ({"FANOUT_CASSANDRA_READ_CONSISTENCY": "quorum!"}, "FANOUT_CASSANDRA_READ_CONSISTENCY"),
        ({"FANOUT_LOW_BATCH_MAX_RECORDS": "0"}, "FANOUT_LOW_BATCH_MAX_RECORDS must be >= 1"),
        ({"FANOUT_FOLLOWS_BATCH_MAX_RECORDS": "0"}, "FANOUT_FOLLOWS_BATCH_MAX_RECORDS must be >= 1"),
        # nan passed every `<= 0` check: an HTTP backend call without a bound hung its POST for good
        ({"FANOUT_HTTP_BACKEND_TIMEOUT_SECONDS": "nan"}, "FANOUT_HTTP_BACKEND_TIMEOUT_SECONDS='nan' is not a valid"),
        ({"FANOUT_AGENT_STALL_TIMEOUT_S": "inf"}, "FANOUT_AGENT_STALL_TIMEOUT_S='inf' is not a valid float"),
        ({"FANOUT_ACTIVE_WINDOW_DAYS": "-NaN"}, "FANOUT_ACTIVE_WINDOW_DAYS='-NaN' is not a valid float"),
        # settings that reached a server (or a driver) unchecked: a traceback, or exit 75 "try again later"
        ({"FANOUT_KAFKA_BOOTSTRAP": "127.0.0.1:abc"}, "FANOUT_KAFKA_BOOTSTRAP='127.0.0.1:abc'"),
        ({"FANOUT_KAFKA_BOOTSTRAP": ""}, "FANOUT_KAFKA_BOOTSTRAP is empty"),
        ({"FANOUT_KAFKA_BOOTSTRAP": "k1:9092,:9092"}, "FANOUT_KAFKA_BOOTSTRAP=':9092'"),
        ({"FANOUT_KAFKA_BOOTSTRAP": "k1:70000"}, "port 1-65535"),
        ({"FANOUT_KAFKA_BOOTSTRAP": "[kafka:9092"}, "FANOUT_KAFKA_BOOTSTRAP='[kafka:9092'"),
        ({"FANOUT_KAFKA_BOOTSTRAP": "[::1"}, "FANOUT_KAFKA_BOOTSTRAP='[::1'"),
        ({"FANOUT_KAFKA_BOOTSTRAP": "[::1]9092"}, "FANOUT_KAFKA_BOOTSTRAP='[::1]9092'"),
        ({"FANOUT_CASSANDRA_HOSTS": "[::1]"}, "without brackets"),
        ({"FANOUT_CASSANDRA_PROTOCOL_VERSION": "6"}, "FANOUT_CASSANDRA_PROTOCOL_VERSION must be 0"),
        ({"FANOUT_CASSANDRA_HOSTS": ""}, "FANOUT_CASSANDRA_HOSTS is empty"),
        ({"FANOUT_CASSANDRA_HOSTS": "127.0.0.1:9042"}, "give the port in FANOUT_CASSANDRA_PORT"),
        ({"FANOUT_CASSANDRA_PORT": "70000"}, "FANOUT_CASSANDRA_PORT must be within 1-65535"),
        ({"FANOUT_CASSANDRA_PORT": "0"}, "FANOUT_CASSANDRA_PORT must be within 1-65535"),
        ({"FANOUT_CASSANDRA_PROTOCOL_VERSION": "-1"}, "FANOUT_CASSANDRA_PROTOCOL_VERSION must be 0"),
        ({"FANOUT_CASSANDRA_READ_CONSISTENCY": "ANY"}, "ANY, which is for writes only"),
        ({"FANOUT_CASSANDRA_CONSISTENCY": "any"}, "ANY, which is for writes only"),
        ({"FANOUT_CASSANDRA_PASSWORD": "secret"}, "FANOUT_CASSANDRA_PASSWORD needs FANOUT_CASSANDRA_USERNAME"),
        ({"FANOUT_FOLLOW_ACTIVITY_LIMIT": "-5"}, "FANOUT_FOLLOW_ACTIVITY_LIMIT and FANOUT_ACTIVE_WINDOW_DAYS must"),
        ({"FANOUT_ACTIVE_WINDOW_DAYS": "-1"}, "FANOUT_ACTIVE_WINDOW_DAYS must be >= 0"),
        ({"FANOUT_MAX_EVENT_BYTES": "0"}, "FANOUT_MAX_EVENT_BYTES must be >= 1024"),
        ({"FANOUT_ACTIVITIES_PARTITIONS": "0"}, "FANOUT_ACTIVITIES_PARTITIONS"),
        ({"FANOUT_LOW_PARTITIONS": "-3"}, "must be >= 1"),
        ({"FANOUT_FEED_KINDS": "timeline,time:line"}, "take names without ':', not 'time:line'"),
        ({"FANOUT_USER_FEED_KIND": "us:er"}, "take names without ':', not 'us:er'"),
    ],
)
def test_bad_values_say_which_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert words in str(caught.value)


def test_write_only_any_may_still_be_the_write_level() -> None:
    settings = Settings.from_env({"FANOUT_CASSANDRA_CONSISTENCY": "ANY", "FANOUT_CASSANDRA_READ_CONSISTENCY": "ONE"})
    assert (settings.write_consistency, settings.read_consistency) == ("ANY", "ONE")
    # what aiokafka's get_ip_port_afi takes: host names and IPv4 with or without a port, IPv6 in
    # brackets with or without one, bare IPv6 (port 9092), a stray comma (skipped)
    many = " k1:9092, k2 ,[::1]:9093,10.0.0.1:9094,[fe80::1%eth0]:9092,[::1],2001:db8::beef,::,k3:9092,"
    assert Settings.from_env({"FANOUT_KAFKA_BOOTSTRAP": many}).kafka_bootstrap == many
    for version in ("0", "3", "4", "5"):
        Settings.from_env({"FANOUT_CASSANDRA_PROTOCOL_VERSION": version})
    Settings.from_env({"FANOUT_CASSANDRA_HOSTS": "::1,fe80::1,10.0.0.1,cassandra-1"})


def test_secrets_are_redacted() -> None:
    settings = Settings.from_env({
        "FANOUT_CASSANDRA_USERNAME": "app", "FANOUT_CASSANDRA_PASSWORD": "hunter2",
        "FANOUT_KAFKA_SASL_PASSWORD": "swordfish",
        "FANOUT_KAFKA_SSL_KEY_PASSWORD": "opensesame",
    })
    for secret in ("hunter2", "swordfish", "opensesame"):
        assert secret not in repr(settings)
        assert secret not in str(settings)
    assert "cassandra_password='***'" in str(settings)
    assert settings.cassandra_password == "hunter2"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.chunk_size = 5  # type: ignore[misc]
    assert settings.replace(chunk_size=5).chunk_size == 5


def test_reads_and_writes_take_the_one_consistency_unless_told_apart() -> None:
    default = Settings.from_env({})
    assert (default.write_consistency, default.read_consistency) == ("LOCAL_QUORUM", "LOCAL_QUORUM")
    both = Settings.from_env({"FANOUT_CASSANDRA_CONSISTENCY": "one"})
    assert (both.write_consistency, both.read_consistency) == ("ONE", "ONE")
    apart = Settings.from_env({"FANOUT_CASSANDRA_CONSISTENCY": "ONE", "FANOUT_CASSANDRA_WRITE_CONSISTENCY": "QUORUM",
                               "FANOUT_CASSANDRA_READ_CONSISTENCY": "local_one"})
    assert (apart.write_consistency, apart.read_consistency) == ("QUORUM", "LOCAL_ONE")


def test_a_cluster_from_the_environment() -> None:
    settings = Settings.from_env({
        "FANOUT_KAFKA_BOOTSTRAP": "127.0.0.1:9092,127.0.0.2:9092,127.0.0.3:9092",
        "FANOUT_CASSANDRA_HOSTS": "127.0.0.1,127.0.0.2,127.0.0.3",
        "FANOUT_CASSANDRA_REPLICATION": "3",
        "FANOUT_KAFKA_REPLICATION_FACTOR": "3",
        "FANOUT_KAFKA_MIN_INSYNC_REPLICAS": "2",
    })
    assert settings.cassandra_hosts == ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    assert (settings.cassandra_replication, settings.kafka_replication_factor) == (3, 3)
    assert settings.kafka_min_insync_replicas == 2


def test_a_misspelt_variable_is_named_once_with_the_setting_it_resembles(caplog: pytest.LogCaptureFixture) -> None:
    env = {"FANOUT_CHUNKSIZE": "5", "FANOUT_MAX_LENGHT": "10", "FANOUT_QWXZ_VK": "1", "FANOUT_MAX_LENGTH": "20",
           "FANOUT_NODES": "3", "FANOUT_CASSANDRA_HEAP": "1G", "FANOUT_TEST_LOG_DIR": "/tmp", "OTHER_CHUNKSIZE": "1"}
    with caplog.at_level("WARNING", logger="fanout.settings"):
        settings = Settings.from_env(env)
        Settings.from_env(env)  # a second read: no second line
    assert settings.chunk_size == 100 and settings.max_length == 20
    assert [r.getMessage() for r in caplog.records] == [
        "FANOUT_CHUNKSIZE is not a fanout setting (did you mean FANOUT_CHUNK_SIZE?): ignored",
        "FANOUT_MAX_LENGHT is not a fanout setting (did you mean FANOUT_MAX_LENGTH?): ignored",
        "FANOUT_QWXZ_VK is not a fanout setting: ignored",
    ]
