"""Keep-alive connections spread evenly over the HTTP processes that share a port.

uvicorn's processes race to accept on one socket, and the one that wins a burst of
connects takes all of it (it accepts until the queue is empty): eight keep-alive
connections opened together landed 8/0 or 5/3 as often as 4/4, and the process holding
more of them answers slower while the other idles. A client that keeps a pool of
connections to the recommender (an application server, a load generator) makes exactly
that burst.

Each process publishes, in its own slot of a small shared file, how many clients it
served in the last second, with a heartbeat that says it is alive even when it serves
nobody. One that serves more than its fair share, ``ceil(total / live processes)``,
answers one of them with ``Connection: close``, and that client's reconnect lands
wherever the kernel puts it: a few rounds even the split out. HTTP clients reconnect
on their own (botocore, urllib3, wrk), so nobody sees an error.
"""

from __future__ import annotations

import fcntl
import logging
import math
import mmap
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["SLOTS_ENV", "Balancer"]

log = logging.getLogger("pertinent.serving")

SLOTS_ENV = "PERTINENT_HTTP_SLOTS"  # set by `pertinent serve` for its HTTP processes
# (when, clients served): ``when`` is CLOCK_MONOTONIC, one clock for every process of
# the machine, so a step of the wall clock cannot make a live slot look stale.
_SLOT = struct.Struct("<dq")
WINDOW = 1.0  # seconds a client counts as connected after its last request
EVERY = 0.05  # seconds between two looks at the other processes
BEAT = 0.25  # seconds between heartbeats; a slot silent for 4 beats is a dead process


class Balancer:
    """One HTTP process's view of the shared slots. ``should_close`` runs on the event
    loop; the heartbeat thread only writes this process's slot."""

    def __init__(
        self,
        path: Path,
        processes: int,
        *,
        slot: int | None = None,
        window: float = WINDOW,
        every: float = EVERY,
        beat: float | None = BEAT,
    ) -> None:
        self.processes = processes
        self.window = window
        self.every = every
        size = processes * _SLOT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)
            self._map = mmap.mmap(self._fd, size)
        except OSError:
            os.close(self._fd)
            raise
        self.slot = self._claim() if slot is None else slot
        self._claimed_at = time.monotonic()
        self._seen: dict[Any, float] = {}  # client -> when last served
        self._closed: dict[Any, float] = {}  # client -> when told to reconnect
        self._looked = 0.0
        self._count = 0  # clients served in the last window, as of ``_counted_at``
        self._counted_at = 0.0
        self._publish()
        if beat is not None:
            threading.Thread(
                target=self._beat, args=(beat,), name="pertinent-beat", daemon=True
            ).start()

    @classmethod
    def from_env(cls, processes: int) -> Balancer | None:
        path = os.environ.get(SLOTS_ENV)
        if not path or processes < 2:
            return None
        try:
            return cls(Path(path), processes)
        except OSError:
            # Answering unbalanced beats not answering: the connections still work.
            log.warning("keep-alive balancing is off in this process", exc_info=True)
            return None

    def _claim(self) -> int | None:
        """The first slot no live process holds: its byte range stays locked while this
        process lives, so a process that uvicorn restarts takes the dead one's. None when
        all are held (a restart starts the new process before the old one stops):
        ``should_close`` tries again every second."""
        for slot in range(self.processes):
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _SLOT.size, slot * _SLOT.size)
            except OSError:
                continue
            return slot
        return None

    def should_close(self, client: Any) -> bool:
        """Notes that ``client`` was just served; True when its connection should close."""
        now = time.monotonic()
        self._seen[client] = now
        if now - self._looked < self.every:
            return False
        self._looked = now
        if self.slot is None:
            if now - self._claimed_at < 1.0:
                return False
            self._claimed_at = now
            self.slot = self._claim()
            if self.slot is None:
                return False
        for seen in (self._seen, self._closed):
            for c in [c for c, at in seen.items() if now - at > self.window]:
                del seen[c]
        mine = len(self._seen)
        self._count, self._counted_at = mine, now
        self._publish()
        # A client told to reconnect is about to come back, here or elsewhere: it still
        # counts in the total, or this process would close its way below its share.
        total, live = len(self._closed), 0
        for slot in range(self.processes):
            at, count = _SLOT.unpack_from(self._map, slot * _SLOT.size)
            if now - at <= 4 * BEAT:
                live += 1
                total += count
        if mine <= math.ceil(total / max(live, 1)):
            return False
        del self._seen[client]
        self._closed[client] = now
        self._count = mine - 1
        self._publish()
        return True

    def _publish(self) -> None:
        if self.slot is None:
            return
        now = time.monotonic()
        # A process nobody asked for a window has no clients, whatever it last counted.
        count = self._count if now - self._counted_at <= self.window else 0
        _SLOT.pack_into(self._map, self.slot * _SLOT.size, now, count)

    def _beat(self, every: float) -> None:
        while True:
            time.sleep(every)
            self._publish()
