"""Jobs every payq worker can perform."""

from __future__ import annotations

import logging

from workers.codec import JSONValue
from workers.jobs import job

logger = logging.getLogger(__name__)


@job("log")
async def log_payment(*args: JSONValue) -> None:
    """Log the payment a job carries: one info line. The default job for every network.

    A coroutine, so the worker runs it on its event loop instead of handing it to a thread.
    """
    payment = args[0] if len(args) == 1 and isinstance(args[0], dict) else None
    if payment is None:
        logger.info("job performed class=log args=%s", args)
        return
    logger.info(
        "payment received id=%s network=%s amount=%s currency=%s address=%s confirmations=%s request_id=%s",
        payment.get("id"),
        payment.get("network"),
        payment.get("amount"),
        payment.get("currency"),
        payment.get("address"),
        payment.get("confirmations"),
        payment.get("request_id"),
    )
