"""Keep-alive connections spread evenly over the HTTP processes that share a port.

uvicorn's processes race to accept on one socket, and the one that wins a burst of
connects takes all of it (it accepts until the queue is empty): eight keep-alive
connections opened together landed 8/0 or 5/3 as often as 4/4, and the process holding
more of them answers slower while the other idles. A client that keeps a pool of
connections to the recommender (an application server, a load generator) makes exactly
that burst.

Each process publishes in its own slot of a small shared file how many clients it
served in the last second; one that serves more than its fair share,
``ceil(total / processes)``, answers one of them with ``Connection: close``, and that
client's reconnect lands wherever the kernel puts it. A few rounds even the split out.
HTTP clients reconnect on their own (botocore, urllib3, wrk), so nobody sees an error.
"""

from __future__ import annotations

import fcntl
import logging
import math
import mmap
import os
import struct
import time
from pathlib import Path
from typing import Any

__all__ = ["SLOTS_ENV", "Balancer"]

log = logging.getLogger("pertinent.serving")

SLOTS_ENV = "PERTINENT_HTTP_SLOTS"  # set by `pertinent serve` for its HTTP processes
_SLOT = struct.Struct("<dq")  # when written (epoch seconds), clients served
WINDOW = 1.0  # seconds a client counts as connected after its last request
EVERY = 0.05  # seconds between two looks at the other processes


class Balancer:
    """One HTTP process's view of the shared slots."""

    def __init__(
        self,
        path: Path,
        processes: int,
        *,
        slot: int | None = None,
        window: float = WINDOW,
        every: float = EVERY,
    ) -> None:
        self.processes = processes
        self.window = window
        self.every = every
        size = processes * _SLOT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)
        self.slot = self._claim() if slot is None else slot
        self._seen: dict[Any, float] = {}  # client -> when last served
        self._closed: dict[Any, float] = {}  # client -> when told to reconnect
        self._looked = 0.0

    @classmethod
    def from_env(cls, processes: int) -> Balancer | None:
        path = os.environ.get(SLOTS_ENV)
        if not path or processes < 2:
            return None
        try:
            return cls(Path(path), processes)
        except (OSError, RuntimeError):
            # Answering unbalanced beats not answering: the connections still work.
            log.warning("keep-alive balancing is off in this process", exc_info=True)
            return None

    def _claim(self) -> int:
        """The first slot no live process holds: its byte range is locked for as long as
        this process lives, so a process that uvicorn restarts takes the dead one's."""
        for slot in range(self.processes):
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _SLOT.size, slot * _SLOT.size)
            except OSError:
                continue
            return slot
        raise RuntimeError(f"all {self.processes} HTTP process slots are taken")

    def should_close(self, client: Any) -> bool:
        """Notes that ``client`` was just served; True when its connection should close."""
        now = time.monotonic()
        self._seen[client] = now
        if now - self._looked < self.every:
            return False
        self._looked = now
        for seen in (self._seen, self._closed):
            for c in [c for c, at in seen.items() if now - at > self.window]:
                del seen[c]
        mine = len(self._seen)
        wall = time.time()
        self._publish(wall, mine)
        # A client told to reconnect is about to come back, here or elsewhere: it still
        # counts in the total, or this process would close its way below its share.
        total = len(self._closed)
        for slot in range(self.processes):
            at, count = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            if wall - at <= self.window:  # a process that died or idles counts nothing
                total += count
        if mine <= math.ceil(total / self.processes):
            return False
        del self._seen[client]
        self._closed[client] = now
        self._publish(wall, mine - 1)
        return True

    def _publish(self, wall: float, count: int) -> None:
        _SLOT.pack_into(self._map, self.slot * _SLOT.size, wall, count)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
