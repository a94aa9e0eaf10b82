"""Targeted activities: ``to`` names extra feeds (``kind:user``) that an activity reaches.

"u1 liked your post" goes to the post owner's ``notification`` feed, who need not follow u1
(GetStream's ``to`` field). The codec checks each target's shape (``TARGET_PATTERN``, at most
``MAX_TARGETS``); ``check_targets`` checks what depends on the settings: the kind is one fanout
knows (``known_kinds``), and not the user feed's: that one holds its user's own posts only, the
source that follows copy, rebuilds and pulled accounts' readers read (a post of another actor
there would spread to whoever follows that user, out of reach of its remove). The planner sends
target feeds through the same chunk messages and priorities as followers (``fanout.targeting``),
and a remove reaches them as well: the registry keeps the targets with the activity.
"""

from __future__ import annotations

from typing import Final

from .errors import InvalidEvent
from .settings import Settings

MAX_TARGETS: Final = 100
TARGET_PATTERN: Final = r"^[^:]{1,64}:[\s\S]+$"
MAX_TARGET_CHARS: Final = 64 + 1 + 256


def known_kinds(settings: Settings) -> tuple[str, ...]:
    """Every feed kind: followers' kinds, the author's own, aggregated and notification kinds."""
    kinds = (*settings.feed_kinds, settings.user_feed_kind, *settings.aggregation())
    return tuple(dict.fromkeys(kinds))


def split_target(target: str) -> tuple[str, str]:
    """``kind:user`` -> (kind, user); the user part may itself hold colons."""
    kind, _, user = target.partition(":")
    return kind, user


def check_targets(targets: list[str] | tuple[str, ...] | None, settings: Settings) -> None:
    """Refuse (``InvalidEvent``, reason ``target``) a target whose kind fanout does not know, or
    the user feed's."""
    if not targets:
        return
    kinds = known_kinds(settings)
    for i, target in enumerate(targets):
        kind, user = split_target(target)
        if kind not in kinds or not user:
            targetable = [k for k in kinds if k != settings.user_feed_kind]
            raise InvalidEvent(
                f"activity event: `$.to[{i}]` is {target!r:.80}; a target is `kind:user` with a kind of "
                f"{', '.join(targetable)} (FANOUT_FEED_KINDS, FANOUT_AGGREGATED_KINDS)", reason="target")
        if kind == settings.user_feed_kind:
            raise InvalidEvent(
                f"activity event: `$.to[{i}]` is {target!r:.80}; a {kind} feed holds its own user's posts only "
                f"(what a follow copies, a rebuild and a pulled account's readers read): target a follower's, "
                f"an aggregated or a notification kind", reason="target")
        if len(user.encode()) > 256:
            raise InvalidEvent(f"activity event: `$.to[{i}]` names a user over 256 bytes of UTF-8", reason="oversize")
