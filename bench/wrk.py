"""Driving a server with ``wrk`` and reading what it and the server spent (bench only)."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU so far of a process, its threads and the processes it started
    (a server's HTTP processes and job workers)."""
    total = 0.0
    for one in _tree(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        one = todo.pop()
        out.append(one)
        for task in Path(f"/proc/{one}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return out


def parse_wrk(text: str) -> dict[str, float]:
    units = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
    out: dict[str, float] = {}
    pattern = r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$"
    for pct, value, unit in re.findall(pattern, text, re.M):
        out[f"p{pct}_ms"] = float(value) * units[unit]
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["errors"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: (.*)$", text, re.M)
    out["socket_errors"] = float(sum(int(n) for n in re.findall(r"\d+", m.group(1)))) if m else 0
    return out


@contextlib.contextmanager
def paused(pid: int | None) -> Iterator[None]:
    """Stop another process (a long benchmark sharing the machine) while we time."""
    if pid is None:
        yield
        return
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def run_wrk(
    url: str,
    server_pid: int,
    *,
    connections: int,
    duration: int,
    threads: int = 1,
    script: Path | None = None,
    pause_pid: int | None = None,
) -> dict[str, float]:
    """One closed-loop wrk run: its latency and throughput, plus the CPU the server and
    wrk used per request (two cores are shared by both)."""
    cmd: Sequence[str] = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
        *(["-s", str(script)] if script is not None else []), url,
    ]  # fmt: skip
    with paused(pause_pid):
        before_server = cpu_seconds(server_pid)
        before_client = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - started
    after_client = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = parse_wrk(out)
    requests = max(stats["requests"], 1.0)
    server_cpu = cpu_seconds(server_pid) - before_server
    client_cpu = (after_client.ru_utime - before_client.ru_utime) + (
        after_client.ru_stime - before_client.ru_stime
    )
    stats["server_cpu_us_per_request"] = server_cpu / requests * 1e6
    stats["client_cpu_us_per_request"] = client_cpu / requests * 1e6
    stats["server_cpu_share"] = server_cpu / wall
    stats["client_cpu_share"] = client_cpu / wall
    return stats
