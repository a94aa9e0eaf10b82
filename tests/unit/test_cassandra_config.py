"""The Cassandra node's config template and the knobs scripts/services.sh renders into it
(FANOUT_CASSANDRA_MEMTABLE, _MEMTABLE_ALLOCATION, _CONCURRENT_WRITES, _COMMITLOG; README: Cassandra server
settings, Durability of the node).

The knobs are checked by running services.sh's own validation functions (extracted from the script, no
server touched): a misspelled value must stop `up` before a config is written, not start a node with it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "services" / "cassandra" / "cassandra.yaml.in"
SCRIPT = ROOT / "scripts" / "services.sh"


def _knob(call: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``call`` with services.sh's functions ``die``, ``one_of``, ``concurrent_writes``,
    ``commitlog_sync`` and ``render`` defined."""
    text = SCRIPT.read_text()
    names = ("one_of", "concurrent_writes", "commitlog_sync", "render")
    functions = [re.search(rf"^{name}\(\) \{{.*?^\}}$", text, re.S | re.M) for name in names]
    die = re.search(r"^die\(\) .*$", text, re.M)
    assert die and all(functions), f"services.sh no longer defines die and {names}"
    script = "\n".join([die.group(0), *(f.group(0) for f in functions if f), call])
    return subprocess.run(["bash", "-c", f"set -euo pipefail\n{script}"], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, check=False)


def test_the_template_has_exactly_the_placeholders_services_sh_renders() -> None:
    placeholders = set(re.findall(r"@([A-Z_]+)@", TEMPLATE.read_text()))
    rendered = set(re.findall(r'"([A-Z_]+)=\$', SCRIPT.read_text()))
    assert placeholders == {"DIR", "HOST", "TOKEN", "HINTS", "SEEDS", "MEMTABLE", "MEMTABLE_ALLOCATION",
                            "CONCURRENT_WRITES", "COMMITLOG_SYNC"}
    assert placeholders <= rendered


def test_every_memtable_services_sh_accepts_is_a_configuration_of_the_template() -> None:
    allowed = re.search(r"one_of FANOUT_CASSANDRA_MEMTABLE ([a-z ]+)\)", SCRIPT.read_text())
    assert allowed is not None
    block = TEMPLATE.read_text().split("memtable:\n  configurations:\n", 1)[1]
    configured = set(re.findall(r"^    ([a-z]+):$", block, re.M))
    assert set(allowed.group(1).split()) <= configured


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "skiplist heap_buffers 8"),  # the defaults: what the node ran with before the knobs
        ({"FANOUT_CASSANDRA_MEMTABLE": "trie", "FANOUT_CASSANDRA_MEMTABLE_ALLOCATION": "offheap_objects",
          "FANOUT_CASSANDRA_CONCURRENT_WRITES": "32"}, "trie offheap_objects 32"),
    ],
)
def test_the_knobs_default_to_the_current_config_and_take_valid_values(env: dict[str, str], expected: str) -> None:
    call = ('echo "$(one_of FANOUT_CASSANDRA_MEMTABLE skiplist trie) '
            '$(one_of FANOUT_CASSANDRA_MEMTABLE_ALLOCATION heap_buffers offheap_buffers offheap_objects) '
            '$(concurrent_writes)"')
    done = _knob(call, env)
    assert (done.returncode, done.stdout.strip()) == (0, expected)


@pytest.mark.parametrize(
    ("call", "env", "message"),
    [
        ("one_of FANOUT_CASSANDRA_MEMTABLE skiplist trie", {"FANOUT_CASSANDRA_MEMTABLE": "Trie"},
         "FANOUT_CASSANDRA_MEMTABLE must be one of skiplist trie, not 'Trie'"),
        ("concurrent_writes", {"FANOUT_CASSANDRA_CONCURRENT_WRITES": "0"}, "from 1 to 1024, not '0'"),
        ("concurrent_writes", {"FANOUT_CASSANDRA_CONCURRENT_WRITES": "2000"}, "from 1 to 1024, not '2000'"),
        ("concurrent_writes", {"FANOUT_CASSANDRA_CONCURRENT_WRITES": "8#x"}, "not '8#x'"),
        ("one_of FANOUT_CASSANDRA_COMMITLOG periodic group", {"FANOUT_CASSANDRA_COMMITLOG": "batch"},
         "FANOUT_CASSANDRA_COMMITLOG must be one of periodic group, not 'batch'"),
    ],
)
def test_a_bad_knob_stops_services_sh_with_what_to_set(call: str, env: dict[str, str], message: str) -> None:
    done = _knob(call, env)
    assert done.returncode == 1
    assert message in done.stderr


@pytest.mark.parametrize(
    ("env", "lines"),
    [
        ({}, ["commitlog_sync: periodic", "commitlog_sync_period: 10000ms"]),  # the default
        ({"FANOUT_CASSANDRA_COMMITLOG": "group"}, ["commitlog_sync: group", "commitlog_sync_group_window: 10ms"]),
    ],
)
def test_the_commit_log_mode_renders_into_the_config(tmp_path: Path, env: dict[str, str], lines: list[str]) -> None:
    dest = tmp_path / "cassandra.yaml"
    call = (f'render "{TEMPLATE}" "{dest}" "COMMITLOG_SYNC=$(commitlog_sync '
            '"$(one_of FANOUT_CASSANDRA_COMMITLOG periodic group)")"')
    done = _knob(call, env)
    assert done.returncode == 0, done.stderr
    rendered = dest.read_text().splitlines()
    assert [line for line in rendered if line.startswith("commitlog_sync")] == lines
    assert "@COMMITLOG_SYNC@" not in dest.read_text()
