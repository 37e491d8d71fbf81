from __future__ import annotations

import logging

import pytest

from workers.jobs import load_registry


async def test_log_job_logs_one_line_per_payment(caplog: pytest.LogCaptureFixture) -> None:
    spec = load_registry().get("log")
    payment = {"id": "bitcoin:ab:1", "network": "bitcoin", "amount": "0.00150000", "currency": "BTC"}
    with caplog.at_level(logging.INFO, logger="workers.builtin_jobs"):
        await spec.func({**payment, "address": "bc1q", "confirmations": 3, "request_id": "req-7"})
    [record] = caplog.records
    assert record.getMessage() == (
        "payment received id=bitcoin:ab:1 network=bitcoin amount=0.00150000 currency=BTC address=bc1q "
        "confirmations=3 request_id=req-7"
    )
    assert spec.is_async


async def test_log_job_logs_other_arguments_as_they_are(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="workers.builtin_jobs"):
        await load_registry().get("log").func(1, "two")
    assert [r.getMessage() for r in caplog.records] == ["job performed class=log args=(1, 'two')"]
