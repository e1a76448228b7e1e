"""Identifiers minted on the request path (request ids, recommendation ids).

They must be unique, not secret: a per-process generator seeded from the OS once (and
again in a forked child) costs no system call per request. ``os.urandom`` per request
released the GIL for a syscall, and under load the event loop then waited to get it
back behind the scoring thread: 5-10 % of a cheap request's time in profiles.
"""

from __future__ import annotations

import os
import random

_rng = random.Random(os.urandom(32))


def _reseed() -> None:
    _rng.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)


def random_hex() -> str:
    """128 random bits as 32 hex digits."""
    return f"{_rng.getrandbits(128):032x}"


def request_id() -> str:
    """A random UUID-shaped (version 4) request id."""
    h = random_hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"
