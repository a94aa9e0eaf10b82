"""The project's broker never creates topics implicitly (issue 10.7): a producer publishing before
`fanout topics create`, or with a misspelled prefix, would get one-partition topics with 7-day
retention that `topics create` then keeps."""

from __future__ import annotations

from pathlib import Path

CONFIG = Path(__file__).resolve().parents[2] / "services" / "kafka" / "server.properties.in"


def _properties() -> dict[str, str]:
    lines = [line.strip() for line in CONFIG.read_text().splitlines()]
    pairs = [line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")]  # @QUORUM@: lines
    return {key.strip(): value.strip() for key, value in pairs}


def test_the_broker_does_not_auto_create_topics() -> None:
    assert _properties()["auto.create.topics.enable"] == "false"
