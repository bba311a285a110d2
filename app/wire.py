"""Socket messages as text, encoded off the event loop when they can be large.

A state message carries the whole run (every step's state: up to 400 steps of a
five-actor scenario, megabytes of JSON); encoding it on the loop stalled every other
client for as long. Small messages (notices, errors, acks) are encoded in place: the
thread hop would cost more than they do.
"""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread

# Messages with any of these keys carry a run or an exploration.
LARGE = ("steps", "outcomes", "state")


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


async def encode_off_loop(message: dict[str, Any]) -> str:
    if any(key in message for key in LARGE):
        return await anyio.to_thread.run_sync(encode, message)
    return encode(message)
