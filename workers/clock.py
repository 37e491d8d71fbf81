"""Time formats the Resque clients expect, each in one place."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def ruby_failed_at(at: datetime) -> str:
    """``failed_at``/``retried_at`` as Ruby Resque writes them: ``2026/12/03 15:40:42 UTC``."""
    return at.astimezone(UTC).strftime("%Y/%m/%d %H:%M:%S UTC")


def iso_z(at: datetime) -> str:
    """ISO 8601 UTC to the second with ``Z``, as Ruby's ``run_at`` (node-resque parses it too)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_offset(at: datetime) -> str:
    """ISO 8601 with ``+00:00``, the form of Ruby's ``workers:heartbeat`` values."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def ruby_started(at: datetime) -> str:
    """``worker:<id>:started`` as Ruby's ``Time#to_s`` writes it: ``2026-12-03 15:40:37 +0000``."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")


def parse_any(value: str | int | float | None) -> datetime | None:
    """Read a timestamp in any form Resque clients write (Ruby, ISO, JS ``Date``, unix seconds)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    text = value.strip()
    if text.isdigit():
        return parse_any(int(text))
    if " GMT" in text:  # JavaScript's Date#toString: "Thu Dec 03 2026 15:40:37 GMT+0000 (...)"
        base, _, rest = text.partition(" GMT")
        text = f"{base} {rest[:5]}"
    for fmt in ("%Y/%m/%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S %z", "%a %b %d %Y %H:%M:%S %z"):
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
