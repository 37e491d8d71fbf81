"""How payq logs: one plain format for every process, with URL tokens (secrets) blanked out."""

from __future__ import annotations

import logging
import re
import sys
import time

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class RedactTokens(logging.Filter):
    """Blank out ``token=`` values (URL tokens are secrets) in every line, uvicorn's access log included."""

    _TOKEN = re.compile(r"([?&]token=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            message = self._TOKEN.sub(r"\1<redacted>", message)
        # Keep the merged message, so that the formatter does not merge the arguments in a second time.
        record.msg, record.args = message, None
        return True


class PayqFormatter(logging.Formatter):
    """payq's line format, with the timestamp's date and time worked out once per second rather than for
    every line (a busy worker writes thousands of lines a second)."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second, stamp = self._second
        if int(record.created) != second:
            stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (int(record.created), stamp)
        return f"{stamp},{int(record.msecs):03d}"


def uvicorn_log_config(level: str) -> dict[str, object]:
    """payq's log format for uvicorn and every worker process it starts, with URL tokens redacted."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactTokens}},
        "formatters": {"plain": {"()": PayqFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
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
    logging.basicConfig(level=level.upper(), stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(PayqFormatter())
        handler.addFilter(RedactTokens())
