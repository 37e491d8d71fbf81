"""The exceptions payq raises on purpose, under one base."""


class PayqError(Exception):
    """Base of every error payq raises on purpose."""


class InvalidPayment(PayqError):
    """A payment or webhook body is malformed; `field` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidSignature(PayqError):
    """A webhook's signature, timestamp or token does not verify."""
