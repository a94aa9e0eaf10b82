"""Signal handling for every long-running command: one helper, two steps.

    stop = asyncio.Event()
    with stop_on_signals(stop, task=asyncio.current_task()):
        await agent.run(stop)

The first SIGINT/SIGTERM sets ``stop``: the command finishes the batch in progress (within its
grace period) and exits. A second one cancels ``task`` at once (the batch is abandoned,
uncommitted, and re-delivered later). Off the main thread (an embedding application owns the
signals) the helper does nothing; pass ``enabled=False`` to turn it off explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger("fanout.agents")

DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(
    stop: asyncio.Event,
    *,
    task: asyncio.Task[object] | None = None,
    signals: tuple[signal.Signals, ...] = DEFAULT_SIGNALS,
    announce: Callable[[str], None] | None = None,
    enabled: bool = True,
) -> Iterator[None]:
    """First signal: set ``stop``; second: cancel ``task``. ``announce`` receives what happens."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    say = announce or log.warning
    loop = asyncio.get_running_loop()

    def handle(sig: signal.Signals) -> None:
        if stop.is_set():
            say(f"second {sig.name}: stopping now, abandoning the batch in progress (not committed)")
            if task is not None:
                task.cancel()
            return
        say(f"{sig.name}: stopping after the batch in progress ({sig.name} again to abandon it)")
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, handle, sig)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
