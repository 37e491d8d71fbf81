"""payq's log lines: the standard format, written with the timestamp worked out once per second."""

from __future__ import annotations

import logging

import pytest

from service.logs import LOG_FORMAT, PayqFormatter, RedactTokens


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


def test_redaction_blanks_url_tokens_and_merges_the_arguments_once() -> None:
    line = record(1_764_790_000.0, '"POST %s HTTP/1.1" %d', "/payments/bitcoin?token=s3cret&x=1", 202)

    assert RedactTokens().filter(line)

    assert line.args is None
    assert line.getMessage() == '"POST /payments/bitcoin?token=<redacted>&x=1 HTTP/1.1" 202'
    assert "s3cret" not in PayqFormatter().format(line)
