"""Resque job encoding: write node-resque's format, read node-resque's and Ruby's.

payq writes ``{"class","queue","args"}`` as compact UTF-8 JSON, byte for byte what node-resque's
``JSON.stringify`` would produce for the same values, so that node-resque can find payq's jobs and
failures by value (``LREM``). Reading accepts Ruby's ``{"class","args"}`` and resque-scheduler's
``{"class","args","queue"}`` too. The raw bytes read from Redis are always kept: anything removed or
pushed back by value uses them, never a re-encoding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypeAlias

import orjson

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
JSONObject: TypeAlias = dict[str, JSONValue]

_MAX_SAFE_INTEGER = 2**53 - 1
_whitespace = " \t\n\r"
_decoder = json.JSONDecoder()


class MalformedJob(ValueError):
    """A queue entry that is not a Resque job."""


@dataclass(frozen=True, slots=True)
class Job:
    """A Resque job as read from Redis, with the exact bytes it was stored as."""

    class_name: str
    args: list[JSONValue]
    queue: str | None
    raw: bytes

    def as_dict(self) -> JSONObject:
        return {"class": self.class_name, "queue": self.queue, "args": self.args}


_LEAVES = frozenset({str, int, bool, type(None)})


def _normalise(value: JSONValue) -> JSONValue:
    """Give values the form JavaScript would print: an integral float is an integer."""
    cls = type(value)
    if cls in _LEAVES:
        return value
    if cls is dict:  # the common case, a job's argument: only its floats and containers need a look
        return {k: v if type(v) in _LEAVES else _normalise(v) for k, v in value.items()}  # type: ignore[union-attr]
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= _MAX_SAFE_INTEGER:
            return int(value)
        return value
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def dumps(value: JSONValue) -> bytes:
    """Compact UTF-8 JSON as JavaScript's ``JSON.stringify`` writes it."""
    return orjson.dumps(_normalise(value))


def encode_job(
    queue: str, class_name: str, args: list[JSONValue] | tuple[JSONValue, ...], *, plain: bool = False
) -> bytes:
    """Encode a job as node-resque does: ``{"class","queue","args"}``.

    ``plain`` says the arguments hold no floats (a payment's job argument, say), so there is nothing to
    give JavaScript's form and they are written as they are.
    """
    job: JSONValue = {"class": class_name, "queue": queue, "args": list(args)}
    return orjson.dumps(job) if plain else dumps(job)


def decode_job(raw: bytes) -> Job:
    """Decode a job written by payq, node-resque, Ruby Resque or resque-scheduler."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJob(f"job is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedJob("job is not a JSON object")
    class_name = data.get("class")
    if not isinstance(class_name, str) or not class_name:
        raise MalformedJob("job has no class")
    args = data.get("args", [])
    if args is None:
        args = []
    elif not isinstance(args, list):
        args = [args]
    queue = data.get("queue")
    return Job(class_name, args, queue if isinstance(queue, str) else None, bytes(raw))


def member_raw(raw: bytes, key: str) -> bytes | None:
    """The exact bytes of a top-level member's value in a JSON object, or None if it is absent.

    Used to lift a job out of a worker record or a failure entry without re-encoding it, so that it
    can be pushed back, or matched by value, byte for byte.
    """
    text = raw.decode("utf-8")
    pos = _skip(text, 0)
    if text[pos : pos + 1] != "{":
        raise MalformedJob("not a JSON object")
    pos = _skip(text, pos + 1)
    if text[pos : pos + 1] == "}":
        return None
    while True:
        if text[pos : pos + 1] != '"':
            raise MalformedJob("object key expected")
        name, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
        pos = _skip(text, pos)
        if text[pos : pos + 1] != ":":
            raise MalformedJob("':' expected")
        start = _skip(text, pos + 1)
        try:
            _, end = _decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            raise MalformedJob(str(exc)) from exc
        if name == key:
            return text[start:end].encode("utf-8")
        pos = _skip(text, end)
        if text[pos : pos + 1] == "}":
            return None
        if text[pos : pos + 1] != ",":
            raise MalformedJob("',' expected")
        pos = _skip(text, pos + 1)


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _whitespace:
        pos += 1
    return pos
