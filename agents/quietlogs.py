"""Readable logs while Cassandra is away: the driver's warnings once a minute, on one line.

During a Cassandra outage cassandra-driver logs every reconnection attempt of every connection
as a WARNING with a full traceback ("[control connection] Error connecting to ...": about twenty
lines each). ``QuietDriverLogs`` is a logging filter on the driver's loggers: a warning or error
keeps its first line and the exception's type and message (the traceback goes), and each distinct
message is printed at most once a minute; the others are counted in ``suppressed``.
"""

from __future__ import annotations

import importlib
import logging
import time

REPEAT_EVERY_S = 60.0
DRIVER_LOGGER = "cassandra"
PREPARE_FAILED = "Error preparing query:"  # the driver's line before ``Session.prepare`` raises (not its per-host ones)


class LoggerFamilyFilter(logging.Filter):
    """A filter installed on a logger and every logger below it (``aiokafka``, ``aiokafka.conn``, ...):
    a filter on a logger sees only that logger's own records, so it goes on each of them."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._last: dict[tuple[str, object], float] = {}

    def repeated(self, record: logging.LogRecord, every: float) -> bool:
        """Whether the same message (logger and format) was let through less than ``every`` s ago;
        if not, it counts as let through now."""
        key = (record.name, record.msg)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < every:
            return True
        self._last[key] = now
        return False

    def _loggers(self) -> list[logging.Logger]:
        names = [n for n in logging.root.manager.loggerDict if n.startswith(self.name + ".")]
        return [logging.getLogger(n) for n in [self.name, *names]]

    def install(self) -> None:
        for logger in self._loggers():
            logger.addFilter(self)

    def uninstall(self) -> None:
        for logger in self._loggers():
            logger.removeFilter(self)


class OncePerMinute(LoggerFamilyFilter):
    """Filter for a client library's loggers (``install``/``uninstall``): warnings and errors on one
    line, each distinct one at most once per ``repeat_every`` seconds (see the module docstring)."""

    def __init__(self, name: str, repeat_every: float = REPEAT_EVERY_S) -> None:
        super().__init__(name)
        self.repeat_every = repeat_every
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if self.repeated(record, self.repeat_every):
            self.suppressed += 1
            return False
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} {type(error).__name__}: {error}".replace("\n", " ")
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class QuietDriverLogs(OncePerMinute):
    """``OncePerMinute`` on cassandra-driver's loggers."""

    def __init__(self, repeat_every: float = REPEAT_EVERY_S) -> None:
        super().__init__(DRIVER_LOGGER, repeat_every)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and record.msg == PREPARE_FAILED:
            return False  # the store raises it, with the same message and what to do (``fanout migrate``)
        return super().filter(record)

    def install(self) -> None:
        importlib.import_module("cassandra.cluster")  # the driver is imported lazily: its loggers exist from here on
        super().install()
