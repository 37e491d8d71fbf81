"""The floor of a worker's cost per job at a trickle: a process that does nothing but the wake-ups.

It makes the same three wake-ups per job as an idle payq worker slot: the wake-up message, the
reply to a claim (a script that pops the job and notes it in flight) and the reply to a finish (a
script that forgets it and counts it). It runs no job, logs nothing, keeps no state but a counter,
and packs nothing while it runs: its commands are built once, its replies parsed by hiredis.

Usage: python floor_worker.py REDIS_PORT QUEUE_KEY WAKE_CHANNEL
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Callable
from typing import Any, cast

import hiredis
import uvloop

CLAIM = b"local job = redis.call('LPOP', KEYS[1]) if job then redis.call('SET', KEYS[2], job) end return job"
FINISH = b"redis.call('DEL', KEYS[1]) return redis.call('INCR', KEYS[2])"


def command(*parts: bytes) -> bytes:
    """One command in Redis's wire format, packed by hiredis as payq packs its own (workers.pipe)."""
    packed: bytes = hiredis.pack_command(parts)  # type: ignore[arg-type]
    return packed


def evalsha(script: bytes, *keys: bytes) -> bytes:
    return command(b"EVALSHA", hashlib.sha1(script).hexdigest().encode(), b"%d" % len(keys), *keys)


class Connection(asyncio.Protocol):
    """One connection to Redis: each reply is handed to ``on_reply``."""

    def __init__(self, on_reply: Callable[[Any], None]) -> None:
        self.on_reply = on_reply
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            self.on_reply(reply)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


async def main(port: int, queue_key: bytes, channel: bytes) -> None:
    loop = asyncio.get_running_loop()
    claim = evalsha(CLAIM, queue_key, b"floor:in-flight")
    finish = evalsha(FINISH, b"floor:in-flight", b"resque:stat:processed")
    commands: Connection | None = None

    def on_command_reply(reply: Any) -> None:
        assert commands is not None
        if isinstance(reply, bytes) and reply.startswith(b"{"):  # a job was claimed: finish it
            commands.send(finish)

    def on_message(reply: Any) -> None:
        assert commands is not None
        if isinstance(reply, list) and reply[0] == b"message":
            commands.send(claim)

    _, commands = await loop.create_connection(lambda: Connection(on_command_reply), "127.0.0.1", port)
    commands.send(command(b"SCRIPT", b"LOAD", CLAIM) + command(b"SCRIPT", b"LOAD", FINISH))
    _, subscription = await loop.create_connection(lambda: Connection(on_message), "127.0.0.1", port)
    subscription.send(command(b"SUBSCRIBE", channel))
    await asyncio.Event().wait()  # until the bench stops it


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()))
