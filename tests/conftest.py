"""Shared fixtures: real servers on free ports, real databases, real S3."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DATASETS = SHARED / "datasets"
PG_ADMIN_URL = os.environ.get(
    "PERTINENT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

# Dummy credentials: the server accepts any signature when no access keys are configured.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`pertinent serve` in a child process, as a user would run it."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PERTINENT_HOME": str(home),
            "PERTINENT_WORKERS": str(workers),
            "PERTINENT_POLL_INTERVAL": "0.05",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"

    def start(self) -> Server:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pertinent", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=region)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def pz(server: Server) -> Any:
    return server.client("personalize")


@pytest.fixture(scope="session")
def rt(server: Server) -> Any:
    return server.client("personalize-runtime")


@pytest.fixture
def unique() -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


def wait_status(
    describe: Callable[[], dict[str, Any]],
    done: tuple[str, ...] = ("ACTIVE", "CREATE FAILED"),
    timeout: float = 300,
) -> dict[str, Any]:
    """Poll a Describe* call until its resource reaches one of ``done``."""
    deadline = time.time() + timeout
    while True:
        res = describe()
        if res.get("status") in done:
            return res
        if time.time() > deadline:
            raise TimeoutError(f"still {res.get('status')} after {timeout}s: {res}")
        time.sleep(0.1)


def postgres_available() -> bool:
    try:
        engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session, dropped afterwards."""
    if not postgres_available():
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    name = f"pertinent_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
