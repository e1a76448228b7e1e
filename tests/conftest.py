"""Shared fixtures: real servers on free ports, real databases, real S3."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pertinent.testing import ServerProcess, wait_status  # noqa: F401  (re-exported)

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


Server = ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Neural recipes train a few epochs here: the tests check behaviour, bench/ quality.
    # One torch thread: the suite's two xdist workers already fill the two cores.
    env = {"PERTINENT_MAX_EPOCHS": "10", "PERTINENT_TORCH_THREADS": "1"}
    srv = Server(tmp_path_factory.mktemp("server"), env=env).start()
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
