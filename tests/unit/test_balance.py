"""Keep-alive connections spread over HTTP processes (serving/balance.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pertinent.serving.balance import SLOTS_ENV, Balancer


def test_the_process_with_more_than_its_share_closes_until_even(tmp_path: Path) -> None:
    path = tmp_path / "slots"
    busy = Balancer(path, 2, slot=0, every=0.0, beat=None)
    idle = Balancer(path, 2, slot=1, every=0.0, beat=None)
    assert not idle.should_close(("127.0.0.1", 9000))  # one client there
    closed = [c for c in range(7) if busy.should_close(("127.0.0.1", 8000 + c))]
    # Seven clients against one: the busy side keeps ceil(8 / 2) = 4 and tells three to
    # reconnect (they still count in the total while they do).
    assert len(closed) == 3
    assert all(not busy.should_close(("127.0.0.1", 8000 + c)) for c in range(7) if c not in closed)


def test_an_even_split_closes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "slots"
    a = Balancer(path, 2, slot=0, every=0.0, beat=None)
    b = Balancer(path, 2, slot=1, every=0.0, beat=None)
    for _ in range(3):
        for c in range(4):
            assert not a.should_close(("a", c))
            assert not b.should_close(("b", c))


def test_a_quiet_process_is_room_for_the_busy_ones_clients(tmp_path: Path) -> None:
    path = tmp_path / "slots"
    quiet = Balancer(path, 2, slot=1, every=0.0, window=0.05, beat=0.02)
    for c in range(6):
        quiet.should_close(("q", c))
    busy = Balancer(path, 2, slot=0, every=0.0, window=0.05, beat=None)
    time.sleep(0.2)  # the quiet one's heartbeat now says: alive, nobody served
    assert not busy.should_close(("b", 0))
    assert busy.should_close(("b", 1))  # two clients, two processes: one moves


def test_a_dead_process_is_no_room(tmp_path: Path) -> None:
    path = tmp_path / "slots"
    dead = Balancer(path, 2, slot=1, every=0.0, beat=None)
    dead.should_close(("d", 0))
    alone = Balancer(path, 2, slot=0, every=0.0, beat=None)
    time.sleep(1.1)  # four heartbeats missed
    # Sending clients away would only bring them back here: all stay.
    assert not any(alone.should_close(("a", c)) for c in range(4))


def test_each_process_claims_its_own_slot(tmp_path: Path) -> None:
    path = tmp_path / "slots"
    code = (
        "import sys; from pathlib import Path; from pertinent.serving.balance import Balancer;"
        f"b = Balancer(Path({str(path)!r}), 3); print(b.slot, flush=True); sys.stdin.read()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    # Each holds its slot until told to stop: three get one, the fourth none (it would
    # try again once one is free).
    claimed = sorted(p.stdout.readline().strip() for p in procs if p.stdout is not None)
    for p in procs:
        p.communicate("")
    assert claimed == ["0", "1", "2", "None"]


def test_a_process_that_cannot_balance_still_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SLOTS_ENV, str(tmp_path / "missing" / "slots"))
    assert Balancer.from_env(2) is None  # the file cannot be opened: no balancing
    monkeypatch.setenv(SLOTS_ENV, str(tmp_path / "slots"))
    assert Balancer.from_env(1) is None  # one process has nobody to balance with
    found = Balancer.from_env(2)
    assert found is not None and found.slot == 0
