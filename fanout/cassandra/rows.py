"""How an ``Activity`` maps onto the CQL columns it is stored in, and back.

``target`` and ``extra`` may be null; ``extra`` is stored as JSON text (msgspec), never pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from ..activity import Activity

# the columns every timeline read selects, in the order ``activity_from_row`` unpacks them
ACTIVITY_COLUMNS: Final = "ts, activity_id, actor, verb, object, target, extra"

_encoder = msgspec.json.Encoder()
_extra_decoder = msgspec.json.Decoder(dict[str, Any])


def encode_extra(extra: dict[str, Any]) -> str:
    """The ``extra`` column's text for an activity's (non-null) ``extra``."""
    return _encoder.encode(extra).decode()


def activity_from_row(row: Sequence[Any]) -> Activity:
    """The activity of a row holding ``ACTIVITY_COLUMNS``."""
    ts, activity_id, actor, verb, obj, target, extra = row
    return Activity(
        id=activity_id,
        actor=actor,
        verb=verb,
        object=obj,
        ts=ts,
        target=target,
        extra=None if extra is None else _extra_decoder.decode(extra),
    )
