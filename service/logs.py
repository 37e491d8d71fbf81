"""How payq logs: one plain format for every process, with URL tokens (secrets) blanked out."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class RedactTokens(logging.Filter):
    """Blank out ``token=`` values (URL tokens are secrets) in every line, uvicorn's access log included."""

    _TOKEN = re.compile(r"([?&]token=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        # Keep the merged message, so that the formatter does not merge the arguments in a second time.
        record.msg, record.args = self.redact(record.getMessage()), None
        return True

    @classmethod
    def redact(cls, message: str) -> str:
        return cls._TOKEN.sub(r"\1<redacted>", message) if "token=" in message else message


class PayqFormatter(logging.Formatter):
    """payq's line format, with the timestamp's date and time worked out once per second rather than for
    every line (a busy worker writes thousands of lines a second)."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self.stamp(record.created, record.msecs)

    def stamp(self, created: float, msecs: float) -> str:
        second, stamp = self._second
        if int(created) != second:
            stamp = time.strftime(self.default_time_format, self.converter(created))
            self._second = (int(created), stamp)
        return f"{stamp},{int(msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        """The standard formatter's line, put together directly when the record carries no exception
        or stack (every line but a failure's), instead of through the format string."""
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        return self.line(record.asctime, record.levelname, record.name, record.message)

    def info_line(self, name: str, message: str) -> str:
        """The line ``format`` gives an info record of logger ``name``, made now with ``message`` merged."""
        created = time.time()
        return self.line(self.stamp(created, (created - int(created)) * 1000), "INFO", name, message)

    @staticmethod
    def line(asctime: str, levelname: str, name: str, message: str) -> str:
        """``LOG_FORMAT`` filled in."""
        return f"{asctime} {levelname} {name} {message}"


class TurnBufferedHandler(logging.StreamHandler[TextIO]):
    """Writes to stderr once per turn of the event loop rather than once per line.

    A busy worker or API process logs a line per job or request, many of them in a single turn of its
    event loop; a write call for each is a good part of what the line costs. Lines logged on the loop's
    thread at info and below are gathered and written together when the turn ends. Warnings and
    errors, and every line logged where no loop runs (a job in a thread, start-up, shutdown), are
    written at once, after whatever was gathered before them, so the order of lines never changes.
    So are the lines of the loggers named in ``at_once``: uvicorn's ``uvicorn.error`` says when the
    server starts and stops, and on SIGTERM uvicorn ends by raising the signal again with its default
    action, which ends the process before the loop's next turn and before exit handlers. The gathered
    lines are written at exit too (logging flushes its handlers then); only a process killed outright
    can lose the lines of its last turn.
    """

    def __init__(self, stream: TextIO | None = None, at_once: tuple[str, ...] = ("uvicorn.error",)) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.at_once = frozenset(at_once)
        self._lines: list[str] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._gather(line, record.levelno >= logging.WARNING or record.name in self.at_once)

    def write_info(self, name: str, message: str) -> bool:
        """Write an info line of logger ``name`` from its merged message, the same bytes as ``emit``
        writes for its record, where this handler's lines are payq's own format with only token
        redaction in between (``workers.logs.log_info``); otherwise return False and write nothing."""
        formatter = self.formatter
        if (
            self.level > logging.INFO
            or type(formatter) is not PayqFormatter
            or any(type(f) is not RedactTokens for f in self.filters)
        ):
            return False
        line = formatter.info_line(name, RedactTokens.redact(message))
        self.acquire()
        try:
            self._gather(line, name in self.at_once)
        finally:
            self.release()
        return True

    def _gather(self, line: str, at_once: bool) -> None:
        self._lines.append(line + self.terminator)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop runs on this thread
            loop = None
        if loop is None or at_once:
            self.flush()
        elif self._flush_on is not loop:  # the turn's first line (or a loop that stopped before its flush)
            self._flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            self._flush_on = None
            if not self._lines:  # every write is flushed already
                return
            text, self._lines = "".join(self._lines), []
            try:
                self.stream.write(text)
                self.stream.flush()
            except Exception:  # reported through logging's own last resort; these lines are lost
                self.handleError(logging.makeLogRecord({"msg": text}))
        finally:
            self.release()


def uvicorn_log_config(level: str) -> dict[str, object]:
    """payq's log format for uvicorn and every worker process it starts, with URL tokens redacted."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactTokens}},
        "formatters": {"plain": {"()": PayqFormatter}},
        "handlers": {
            "stderr": {
                "()": TurnBufferedHandler,
                "formatter": "plain",
                "filters": ["redact"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {name: {"handlers": [], "propagate": True} for name in _UVICORN_LOGGERS},
    }


def configure_logging(level: str) -> None:
    """Configure logging once, at the entry point of a payq process."""
    # payq's log format names no source file, thread or process: skip collecting them for every line
    # (a worker at info logs a line per job; see the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = TurnBufferedHandler()
    handler.setFormatter(PayqFormatter())
    handler.addFilter(RedactTokens())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
