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
    busy = Balancer(path, 2, slot=0, every=0.0)
    idle = Balancer(path, 2, slot=1, every=0.0)
    assert not idle.should_close(("127.0.0.1", 9000))  # one client there
    closed = [c for c in range(7) if busy.should_close(("127.0.0.1", 8000 + c))]
    # Seven clients against one: the busy side closes every client past ceil(8 / 2) = 4
    # that it sees, and keeps four.
    assert len(closed) == 3
    assert all(not busy.should_close(("127.0.0.1", 8000 + c)) for c in range(7) if c not in closed)


def test_an_even_split_closes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "slots"
    a, b = Balancer(path, 2, slot=0, every=0.0), Balancer(path, 2, slot=1, every=0.0)
    for _ in range(3):
        for c in range(4):
            assert not a.should_close(("a", c))
            assert not b.should_close(("b", c))


def test_a_process_that_went_quiet_counts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "slots"
    gone = Balancer(path, 2, slot=1, every=0.0, window=0.05)
    for c in range(6):
        gone.should_close(("g", c))
    alone = Balancer(path, 2, slot=0, every=0.0, window=0.05)
    time.sleep(0.1)
    # The other slot's six are stale: the total is this process's own two, so its share
    # is one and the second client is told to reconnect.
    assert not alone.should_close(("a", 0))
    assert alone.should_close(("a", 1))


def test_each_process_claims_its_own_slot(tmp_path: Path) -> None:
    path = tmp_path / "slots"
    code = (
        "import time; from pathlib import Path; from pertinent.serving.balance import Balancer;"
        f"b = Balancer(Path({str(path)!r}), 3); print(b.slot, flush=True); time.sleep(2)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    slots = sorted(int(p.stdout.readline()) for p in procs if p.stdout is not None)
    for p in procs:
        p.wait()
    assert slots == [0, 1, 2]


def test_a_process_that_cannot_balance_still_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SLOTS_ENV, str(tmp_path / "missing" / "slots"))
    assert Balancer.from_env(2) is None  # the file cannot be opened: no balancing
    monkeypatch.setenv(SLOTS_ENV, str(tmp_path / "slots"))
    assert Balancer.from_env(1) is None  # one process has nobody to balance with
    found = Balancer.from_env(2)
    assert found is not None and found.slot == 0
