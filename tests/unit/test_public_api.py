"""Lock the public API: its names and every public signature.

A change to ``fanout.__all__`` or to a signature of an exported function, class or method fails
here with a diff. When the change is deliberate, regenerate the snapshot:

    .venv/bin/python tests/unit/test_public_api.py > tests/unit/public_api.txt
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import fanout

SNAPSHOT = Path(__file__).with_name("public_api.txt")


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _members(cls: type) -> list[str]:
    lines = []
    for name, member in sorted(vars(cls).items()):
        if name.startswith("_") and name not in ("__init__", "__aenter__", "__enter__"):
            continue
        if isinstance(member, property):
            lines.append(f"    {name}: property")
        elif isinstance(member, classmethod | staticmethod):
            lines.append(f"    {name}{_signature(member.__func__)}  [{type(member).__name__}]")
        elif inspect.isfunction(member):
            prefix = "async " if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member) else ""
            lines.append(f"    {prefix}{name}{_signature(member)}")
    fields = getattr(cls, "__struct_fields__", None) or getattr(cls, "_fields", None)
    if fields:
        lines.insert(0, f"    fields: {', '.join(fields)}")
    return lines


def describe_api() -> str:
    """One line per exported name, then one per public member of exported classes."""
    lines = []
    for name in sorted(fanout.__all__):
        obj = getattr(fanout, name)
        if name == "__version__":
            lines.append("__version__: str")
        elif inspect.isclass(obj):
            bases = ", ".join(b.__name__ for b in obj.__bases__)
            lines.append(f"class {name}({bases})")
            lines.extend(_members(obj))
        elif callable(obj) and not hasattr(obj, "__origin__"):
            lines.append(f"def {name}{_signature(obj)}")
        else:
            lines.append(f"{name} = {obj!r}")
    return "\n".join(lines) + "\n"


def test_exported_names_exist() -> None:
    for name in fanout.__all__:
        assert hasattr(fanout, name), name


def test_names_and_signatures_match_the_snapshot() -> None:
    actual = describe_api()
    expected = SNAPSHOT.read_text()
    if actual != expected:
        import difflib

        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "snapshot", "now"))
        raise AssertionError(f"the public API changed (regenerate the snapshot if deliberate):\n{diff}")


def test_errors_form_one_tree() -> None:
    for name in ("ConfigError", "InvalidEvent", "UnknownVersion", "UnknownActivity", "ForeignActivity", "StoreError"):
        assert issubclass(getattr(fanout, name), fanout.FanoutError)
    assert fanout.StoreError("x").retriable is True
    assert fanout.InvalidEvent("x").retriable is False


def test_memory_store_satisfies_the_store_protocol() -> None:
    assert isinstance(fanout.MemoryStore(), fanout.Store)


def test_production_classes_load_lazily_and_exist() -> None:
    assert fanout.CassandraStore.__module__.startswith("fanout.cassandra")
    assert fanout.Producer.__module__ == "fanout.producer"
    assert hasattr(fanout.SyncProducer, "send_activity")


if __name__ == "__main__":
    print(describe_api(), end="")
