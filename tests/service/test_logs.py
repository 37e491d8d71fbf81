"""payq's log lines: the standard format, written with the timestamp worked out once per second."""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from service.logs import LOG_FORMAT, PayqFormatter, RedactTokens, TurnBufferedHandler
from workers.logs import log_info


def record(created: float, msg: str, *args: object) -> logging.LogRecord:
    line = logging.LogRecord("payq.test", logging.INFO, __file__, 1, msg, args, None)
    line.created, line.msecs = created, (created - int(created)) * 1000
    return line


@pytest.mark.parametrize(
    "times",
    [
        [1_764_790_000.001, 1_764_790_000.999, 1_764_790_001.0, 1_764_790_001.5],
        [1_764_790_059.999, 1_764_790_060.0, 1_764_790_059.5],  # a clock that steps back
    ],
)
def test_formatter_writes_what_the_standard_formatter_writes(times: list[float]) -> None:
    fast, standard = PayqFormatter(), logging.Formatter(LOG_FORMAT)

    for created in times:
        assert fast.format(record(created, "job performed class=%s", "noop")) == standard.format(
            record(created, "job performed class=%s", "noop")
        )


def test_formatter_writes_a_failure_with_its_traceback_and_stack_as_the_standard_formatter_does() -> None:
    fast, standard = PayqFormatter(), logging.Formatter(LOG_FORMAT)
    try:
        raise ValueError("kaboom")
    except ValueError:
        failure = record(1_764_790_000.25, "job failed class=%s", "noop")
        failure.exc_info = sys.exc_info()
    stacked = record(1_764_790_000.5, "where")
    stacked.stack_info = "Stack (most recent call last):\n  here"

    for line in (failure, stacked):
        expected = standard.format(copy.copy(line))
        assert fast.format(copy.copy(line)) == expected
        assert "kaboom" in expected or "here" in expected


def test_redaction_blanks_url_tokens_and_merges_the_arguments_once() -> None:
    line = record(1_764_790_000.0, '"POST %s HTTP/1.1" %d', "/payments/bitcoin?token=s3cret&x=1", 202)

    assert RedactTokens().filter(line)

    assert line.args is None
    assert line.getMessage() == '"POST /payments/bitcoin?token=<redacted>&x=1 HTTP/1.1" 202'
    assert "s3cret" not in PayqFormatter().format(line)


class Writes:
    """A stream that remembers each write call."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def buffered_logger(stream: Writes) -> logging.Logger:
    handler = TurnBufferedHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"payq.test.buffered.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


async def test_lines_of_one_loop_turn_are_written_together_when_the_turn_ends() -> None:
    stream = Writes()
    log = buffered_logger(stream)

    for n in range(3):
        log.info("job performed n=%d", n)
    assert stream.writes == []
    await asyncio.sleep(0)

    assert stream.writes == ["INFO job performed n=0\nINFO job performed n=1\nINFO job performed n=2\n"]
    log.info("next turn")
    await asyncio.sleep(0)
    assert stream.writes[1:] == ["INFO next turn\n"]


async def test_a_warning_is_written_at_once_after_the_lines_before_it() -> None:
    stream = Writes()
    log = buffered_logger(stream)

    log.info("job performed")
    log.warning("job failed")

    assert "".join(stream.writes) == "INFO job performed\nWARNING job failed\n"


async def test_a_line_of_uvicorns_lifecycle_logger_is_written_at_once_after_the_lines_before_it() -> None:
    stream = Writes()
    log = buffered_logger(stream)
    handler = log.handlers[0]

    log.info("request served")
    handler.handle(logging.makeLogRecord({"name": "uvicorn.error", "levelno": logging.INFO, "levelname": "INFO",
                                          "msg": "Finished server process"}))  # fmt: skip

    assert "".join(stream.writes) == "INFO request served\nINFO Finished server process\n"


async def test_a_line_from_a_thread_keeps_its_place() -> None:
    stream = Writes()
    log = buffered_logger(stream)

    log.info("on the loop")
    await asyncio.to_thread(log.info, "in a thread")
    log.info("on the loop again")
    await asyncio.sleep(0)

    assert "".join(stream.writes) == "INFO on the loop\nINFO in a thread\nINFO on the loop again\n"


def test_lines_left_by_a_loop_that_stopped_are_written_by_the_next_loop_or_at_exit() -> None:
    stream = Writes()
    log = buffered_logger(stream)

    def stop_and_log(loop: asyncio.AbstractEventLoop) -> None:
        loop.stop()  # this turn is the loop's last: it never runs the flush scheduled for it
        log.info("last turn")

    loop = asyncio.new_event_loop()
    loop.call_soon(stop_and_log, loop)
    loop.run_forever()
    loop.close()
    assert stream.writes == []

    async def log_once() -> None:
        log.info("another loop")

    asyncio.run(log_once())
    assert "".join(stream.writes) == "INFO last turn\nINFO another loop\n"

    log.info("no loop")
    assert "".join(stream.writes).endswith("INFO no loop\n")


# --- log_info: the per-job and per-webhook lines without a LogRecord where payq's handler is the only one --


def payq_logger(stream: Writes, name: str = "payq.test.quick") -> tuple[logging.Logger, list[logging.LogRecord]]:
    """A logger set up as configure_logging sets up the root one, and the records logging makes for it."""
    handler = TurnBufferedHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(PayqFormatter())
    handler.addFilter(RedactTokens())
    logger = logging.getLogger(f"{name}.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    records: list[logging.LogRecord] = []
    make_record = logger.makeRecord

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        records.append(made := make_record(*args, **kwargs))  # type: ignore[arg-type]
        return made

    logger.makeRecord = counting  # type: ignore[method-assign]
    return logger, records


STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
LINE = "job performed class=%s queue=%s url=%s duration_ms=%.1f"
ARGS = ("noop", "bitcoin:incoming", "/payments/bitcoin?token=s3cret&x=1", 0.25)


async def test_an_info_line_by_the_short_way_is_the_line_logging_writes_and_keeps_its_place() -> None:
    stream = Writes()
    log, records = payq_logger(stream)

    log.info(LINE, *ARGS)
    log_info(log, LINE, *ARGS)
    log.warning("job failed")

    lines = "".join(stream.writes).splitlines()
    assert len(records) == 2  # the short way made no record of its own
    assert [re.match(STAMP, line) is not None for line in lines] == [True, True, True]
    through_logging, short_way, warning = (re.sub(STAMP, "", line) for line in lines)
    assert short_way == through_logging
    assert short_way == f"INFO {log.name} job performed class=noop queue=bitcoin:incoming " + (
        "url=/payments/bitcoin?token=<redacted>&x=1 duration_ms=0.2"
    )
    assert warning == f"WARNING {log.name} job failed"


async def test_an_info_line_below_the_loggers_level_is_neither_written_nor_recorded() -> None:
    stream = Writes()
    log, records = payq_logger(stream)
    log.setLevel(logging.WARNING)

    log_info(log, LINE, *ARGS)
    await asyncio.sleep(0)

    assert (stream.writes, records) == ([], [])


def other_handler(log: logging.Logger, stream: Writes) -> None:
    log.addHandler(logging.StreamHandler(stream))


def filter_on_logger(log: logging.Logger, stream: Writes) -> None:
    log.addFilter(lambda record: True)


def filter_on_handler(log: logging.Logger, stream: Writes) -> None:
    log.handlers[0].addFilter(lambda record: True)


def another_format(log: logging.Logger, stream: Writes) -> None:
    log.handlers[0].setFormatter(logging.Formatter("%(levelname)s %(message)s"))


def handler_at_warning(log: logging.Logger, stream: Writes) -> None:
    log.handlers[0].setLevel(logging.WARNING)


@pytest.mark.parametrize(
    "change", [other_handler, filter_on_logger, filter_on_handler, another_format, handler_at_warning]
)
async def test_an_info_line_goes_through_logging_where_the_set_up_is_not_payqs_alone(
    change: Callable[[logging.Logger, Writes], None],
) -> None:
    stream, logged_elsewhere = Writes(), Writes()
    log, records = payq_logger(stream)
    change(log, logged_elsewhere)

    log_info(log, LINE, *ARGS)
    await asyncio.sleep(0)

    assert [(record.levelno, record.getMessage()[:13]) for record in records] == [(logging.INFO, "job performed")]


async def test_an_info_line_reaches_a_handler_of_a_parent_logger_through_logging() -> None:
    parent_stream, child_stream = Writes(), Writes()
    parent, _ = payq_logger(parent_stream, "payq.test.parent")
    child = logging.getLogger(f"{parent.name}.child")
    child.addHandler(logging.StreamHandler(child_stream))
    child.setLevel(logging.INFO)

    log_info(child, "job performed")
    await asyncio.sleep(0)

    assert child_stream.writes == ["job performed\n"]
    assert re.sub(STAMP, "", "".join(parent_stream.writes)) == f"INFO {child.name} job performed\n"


# A payq process as it configures its logging, logging one line by log_info and printing how many
# records logging made for it.
PROCESS = """
import asyncio, logging, logging.config
from service.logs import configure_logging, uvicorn_log_config
from workers.logs import log_info

{configure}
log = logging.getLogger("workers.runtime")
records = []
make_record = log.makeRecord
log.makeRecord = lambda *args, **kwargs: records.append(1) or make_record(*args, **kwargs)


async def main():
    log_info(log, "job performed class=%s url=%s", "noop", "/payments?token=s3cret")

asyncio.run(main())
print(len(records))
"""


@pytest.mark.parametrize(
    "configure",
    ['configure_logging("info")', 'logging.config.dictConfig(uvicorn_log_config("info"))'],
    ids=["worker", "api under uvicorn"],
)
def test_payqs_own_configurations_take_the_short_way(configure: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROCESS.format(configure=configure)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert done.stdout == "0\n"
    assert re.fullmatch(
        STAMP + r"INFO workers\.runtime job performed class=noop url=/payments\?token=<redacted>\n", done.stderr
    )
